"""Records out of a benchmark file: JSONL or a JSON array, text a tokenizer cannot take, identity.

Split from ``data.py`` (the schema): this is about bytes and characters.
Bytes that are not UTF-8 decode to U+DC80..U+DCFF (``surrogateescape``) so the
schema check can name the record and field that holds them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any, Callable

from .errors import DataError

__all__ = ["records_sha256", "jsonl_objects", "array_objects", "check_text"]


def records_sha256(objects: Iterable[Any]) -> str:
    """sha256 of the records' canonical JSON (sorted keys, ASCII, no spaces), one per line.

    The benchmark's identity: independent of line endings, a BOM, key order,
    whitespace and JSONL versus a JSON array; any change to a value changes it.
    """
    h = hashlib.sha256()
    for obj in objects:
        h.update(json.dumps(obj, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode("ascii"))
        h.update(b"\n")
    return h.hexdigest()


def jsonl_objects(raw: bytes, path: str) -> list[tuple[int, Any]]:
    """``(line number, decoded object)`` per non-empty line."""
    out = []
    # Bytes that are not UTF-8 decode to U+DC80..U+DCFF (surrogateescape) so that parse_record
    # can name the record and field that holds them. Split on "\n" alone: str.splitlines() also
    # splits on U+2028, U+0085 and form feeds, which JSON writers leave raw inside strings.
    for lineno, line_bytes in enumerate(raw.split(b"\n"), start=1):
        line = line_bytes.removesuffix(b"\r").decode("utf-8", errors="surrogateescape")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"is not valid JSON ({exc.msg} at column {exc.colno}).", line=lineno,
                            fix="each line must hold one complete JSON object; the line may be truncated.") from None
        out.append((lineno, obj))
    return out


def array_objects(raw: bytes, path: str) -> list[tuple[int, Any]]:
    """A JSON array of records: ``(element number, object)``, numbered from 1."""
    try:
        value = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"starts with '[' but is not a valid JSON array ({exc.msg} at line {exc.lineno}, "
                        f"column {exc.colno}).",
                        fix="write one record per line (JSONL), e.g. jq -c '.[]' FILE.json > FILE.jsonl") from None
    if not isinstance(value, list):  # pragma: no cover - a document starting with '[' is a list
        raise DataError(path, "is not a JSON array of records.", fix="write one record per line (JSONL).")
    return list(enumerate(value, start=1))


# Text a tokenizer cannot encode or that silently changes what a model reads: lone UTF-16
# surrogates (half of an emoji, valid as a JSON escape), bytes that were not UTF-8 (decoded
# with surrogateescape: U+DC80..U+DCFF), NUL, and a byte-order mark inside the text.
_HAZARD = re.compile("[\ud800-\udfff\x00\ufeff]")


def _hazard_text(ch: str) -> tuple[str, str]:
    """(what the character is, how to fix it)."""
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        return (f"a byte that is not UTF-8 (0x{code - 0xDC00:02x})",
                "re-export the file as UTF-8, or replace that character")
    if 0xD800 <= code <= 0xDFFF:
        return (f"a lone UTF-16 surrogate (\\u{code:04x}, half of a character such as an emoji, usually "
                "from text cut by UTF-16 length)",
                "replace it with the whole character, or with U+FFFD (Python: text.encode('utf-16', "
                "'surrogatepass').decode('utf-16', 'replace'))")
    if code == 0:
        return "a NUL character (\\u0000)", "remove it; no tokenizer reads it as text"
    return ("a byte-order mark (\\ufeff) inside the text, usually from pasting files together",
            "remove it")


def _first_hazard(obj: Any, path: str) -> tuple[str, str] | None:
    """(JSON path of the first string holding a hazard, the character), depth first."""
    if isinstance(obj, str):
        m = _HAZARD.search(obj)
        return (path, m.group()) if m else None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        sub = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"
        found = (_first_hazard(key, sub) if isinstance(key, str) else None) or _first_hazard(value, sub)
        if found:
            return found
    return None


def check_text(obj: dict[str, Any], fail: Callable[[str, str], DataError]) -> None:
    """Refuse text a tokenizer cannot encode, naming the field (and the response key)."""
    for name in ("id", "domain", "responses", "prompt_groups", "style_assignments"):
        found = _first_hazard(obj.get(name), name)
        if found is None:
            continue
        field, ch = found
        what, fix = _hazard_text(ch)
        resp = re.match(r"responses\[(\d+)\]", field)
        if resp and isinstance(obj["responses"], list) and isinstance(obj["responses"][int(resp[1])], dict):
            field += f" (response {obj['responses'][int(resp[1])].get('key')!r})"
        raise fail(f"{field} holds {what}.", f"{fix}.")
