"""RMGAP records: the schema, strict loading, and the tidy item table.

Loading is strict because a silently dropped or misread record changes every
number downstream. Every error names the file, the line, the record id, the
offending value and the fix (``DataError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ._records import array_objects, check_text, jsonl_objects, records_sha256
from .errors import DataError, did_you_mean

DOMAINS: tuple[str, ...] = ("Chat", "Writing", "Reasoning", "Safety")

# Ordered levels: the index is what the release's Manhattan distance uses.
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "Formality": ("casual", "informal", "neutral", "formal", "highly_formal"),
    "Conciseness": ("terse", "concise", "moderate", "detailed", "verbose"),
    "Technicality": ("layman", "accessible", "semi_technical", "technical", "highly_specialized"),
    "Objectivity": ("highly_subjective", "subjective", "balanced", "objective", "strictly_objective"),
    "Structural_Coherence": ("fragmented", "loose", "organized", "well_structured", "rigorous"),
}

N_RESPONSES = 4
N_GROUPS = 4
N_PROMPTS = 3
SAMPLE_NAME = "rmgap_sample.jsonl"


@dataclass(frozen=True)
class Record:
    """One RMGAP record: 4 responses, 4 users (prompt groups) of 3 prompts each."""

    id: str
    domain: str
    keys: tuple[str, ...]  # response keys, in file order
    responses: tuple[str, ...]  # response texts, parallel to keys
    winners: tuple[str, ...]  # per group, in file order: the key of the right response
    prompts: tuple[tuple[str, ...], ...]  # per group: base prompt + 2 paraphrases
    profiles: dict[str, dict[str, str]] | None  # response key -> {dimension: level}
    line: int  # line in a JSONL file; 1-based element number in a JSON array file
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # unknown fields, kept


@dataclass(frozen=True)
class Benchmark:
    """A loaded benchmark file."""

    path: str
    sha256: str  # records_sha256: the parsed records' identity, not the file's bytes
    records: tuple[Record, ...]
    synthetic: bool = False
    subset: dict[str, Any] | None = None  # subset_benchmark: {"records", "of", "seed", "full_sha256"}

    @property
    def n_items(self) -> int:
        return len(self.records) * N_GROUPS * N_PROMPTS

    @property
    def domains(self) -> list[str]:
        present = {r.domain for r in self.records}
        return [d for d in DOMAINS if d in present]


def shipped_file(name: str, checkout: str) -> Path:
    """A file the wheel ships in ``rmgap_pytest/_data/``; in a source checkout, where the repository
    keeps it (``checkout``, relative to the repository root). setup.py copies them into the wheel,
    so the repository holds one copy of each."""
    packaged = Path(str(resources.files("rmgap_pytest") / "_data" / name))
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / checkout


def sample_path() -> Path:
    """The embedded sample: ``data/rmgap_sample.jsonl`` in the repository, shipped inside the wheel."""
    return shipped_file(SAMPLE_NAME, f"data/{SAMPLE_NAME}")


def subset_benchmark(bench: Benchmark, n: int, seed: int = 0) -> Benchmark:
    """A seeded subset of ``n`` records, stratified by domain (``--rmgap-limit``).

    Each domain present keeps its share of ``n`` (largest remainder), and at least one record
    while ``n`` allows, so every domain is still scored; records keep their file order. The
    subset's ``sha256`` differs from the whole file's, so it is never compared with a run of the
    whole file. ``n`` at or above the file's size returns ``bench`` unchanged.
    """
    import hashlib

    import numpy as np

    if n >= len(bench.records):
        return bench
    rng = np.random.default_rng(seed)
    by_domain = {d: [i for i, r in enumerate(bench.records) if r.domain == d] for d in bench.domains}
    sizes = {d: len(ix) for d, ix in by_domain.items()}
    share = {d: n * k / len(bench.records) for d, k in sizes.items()}
    take = {d: min(sizes[d], max(1 if n >= len(sizes) else 0, int(share[d]))) for d in sizes}
    for d in sorted(sizes, key=lambda d: (share[d] - int(share[d]), sizes[d]), reverse=True):
        if sum(take.values()) >= n:
            break
        if take[d] < sizes[d]:
            take[d] += 1
    while sum(take.values()) > n:  # the one-per-domain minimum overshot: trim the largest
        d = max(take, key=lambda d: take[d])
        take[d] -= 1
    chosen = sorted(i for d, ix in by_domain.items() for i in rng.permutation(ix)[:take[d]].tolist())
    records = tuple(bench.records[i] for i in chosen)
    ident = hashlib.sha256(f"{bench.sha256}:{seed}:".encode() + "\n".join(r.id for r in records).encode())
    return Benchmark(bench.path, ident.hexdigest(), records, bench.synthetic,
                     {"records": len(records), "of": len(bench.records), "seed": seed, "full_sha256": bench.sha256})


def load_benchmark(path: str | Path | None = None) -> Benchmark:
    """Load and validate an RMGAP file (default: the embedded sample).

    Accepts JSONL (one record per line; CRLF line endings and a UTF-8 BOM are
    fine) and a JSON array of records. ``Benchmark.sha256`` identifies the
    parsed records, not the file's bytes (see ``records_sha256``), so the same
    data saved with other line endings or as an array is the same benchmark.
    Raises ``DataError`` naming the file, line (or array element), record,
    field and the fix.
    """
    p = Path(path).expanduser() if path is not None else sample_path()
    if not p.exists():
        raise DataError(str(p), "the benchmark file does not exist.",
                        fix="pass the path of an RMGAP JSONL file (e.g. data/test.jsonl from "
                            "github.com/nanzhi84/RMGAP), or leave the option out to use the embedded sample.")
    if p.is_dir():
        raise DataError(str(p), "is a directory, not a JSONL file.", fix="point at the .jsonl file inside it.")
    raw = p.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(str(p), "is UTF-16 text (it starts with a UTF-16 byte-order mark).",
                        fix="re-save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8 IN > OUT.")
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM is an encoding mark, not data
    is_array = raw.lstrip()[:1] == b"["
    objects = array_objects(raw, str(p)) if is_array else jsonl_objects(raw, str(p))
    label = "element" if is_array else "line"
    records: list[Record] = []
    seen: dict[str, int] = {}
    synthetic = False
    for where, obj in objects:
        rec = parse_record(obj, str(p), where, label)
        if rec.id in seen:
            raise DataError(str(p), f"duplicate record id {rec.id!r} (first seen on {label} {seen[rec.id]}).",
                            line=where, record_id=rec.id, fix="give every record a unique id.", line_label=label)
        seen[rec.id] = where
        synthetic = synthetic or bool(rec.extra.get("synthetic"))
        records.append(rec)
    if not records:
        raise DataError(str(p), "holds no records (the file is empty).",
                        fix="point at an RMGAP JSONL file with one record per line.")
    return Benchmark(str(p), records_sha256(obj for _, obj in objects), tuple(records), synthetic)


_KNOWN = {"id", "domain", "responses", "prompt_groups", "style_assignments"}


def parse_record(obj: Any, path: str, line: int, line_label: str = "line") -> Record:
    """Validate one decoded JSON record against DESIGN.md section 1.

    ``line`` is the record's line (JSONL) or 1-based element number (JSON array,
    ``line_label="element"``); errors name it, the record id, the field and the fix.
    """
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a JSON object, got {type(obj).__name__}.", line=line,
                        fix="each line must be one RMGAP record object.", line_label=line_label)
    rid = obj.get("id")
    if not isinstance(rid, (str, int)) or (isinstance(rid, str) and not rid.strip()):
        raise DataError(path, f"the record has no usable 'id' (got {rid!r}).", line=line,
                        fix="give each record a non-empty string id.", line_label=line_label)
    rid = str(rid)

    def fail(message: str, fix: str) -> DataError:
        return DataError(path, message, line=line, record_id=rid, fix=fix, line_label=line_label)

    check_text(obj, fail)

    for key in ("domain", "responses", "prompt_groups"):
        if key not in obj:
            raise fail(f"the required field {key!r} is missing.", f"add {key!r} (see the RMGAP schema in DESIGN.md).")
    domain = obj["domain"]
    if domain not in DOMAINS:
        raise fail(f"unknown domain {domain!r}.{did_you_mean(str(domain), DOMAINS)}",
                   f"use one of {', '.join(DOMAINS)}.")
    keys, texts = _parse_responses(obj["responses"], fail)
    winners, prompts = _parse_groups(obj["prompt_groups"], keys, fail)
    profiles = _parse_profiles(obj.get("style_assignments"), keys, fail)
    extra = {k: v for k, v in obj.items() if k not in _KNOWN}
    return Record(rid, domain, keys, texts, winners, prompts, profiles, line, extra)


def _parse_responses(value: Any, fail) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not isinstance(value, list) or len(value) != N_RESPONSES:
        n = len(value) if isinstance(value, list) else type(value).__name__
        raise fail(f"'responses' must hold exactly {N_RESPONSES} responses, found {n}.",
                   f"give the record {N_RESPONSES} responses, one per linguistic profile.")
    keys: list[str] = []
    texts: list[str] = []
    for i, resp in enumerate(value, start=1):
        if not isinstance(resp, dict):
            raise fail(f"responses[{i - 1}] is not an object.", 'write it as {"key": ..., "text": ...}.')
        key, text = resp.get("key"), resp.get("text")
        if not isinstance(key, str) or not key.strip():
            raise fail(f"responses[{i - 1}] has an empty or missing key ({key!r}).", f'name it, e.g. "response{i}".')
        if key in keys:
            raise fail(f"duplicate response key {key!r}.", "give the 4 responses distinct keys.")
        if not isinstance(text, str) or not text.strip():
            raise fail(f"response {key!r} has empty text.", "every response needs non-empty text.")
        keys.append(key)
        texts.append(text)
    return tuple(keys), tuple(texts)


def _parse_groups(value: Any, keys: tuple[str, ...], fail) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    if not isinstance(value, list) or len(value) != N_GROUPS:
        n = len(value) if isinstance(value, list) else type(value).__name__
        raise fail(f"'prompt_groups' must hold exactly {N_GROUPS} groups, found {n}.",
                   f"give the record {N_GROUPS} prompt groups, one per user.")
    winners: list[str] = []
    prompts: list[tuple[str, ...]] = []
    for g, group in enumerate(value):
        label = f"prompt group {group.get('group', g + 1) if isinstance(group, dict) else g + 1}"
        if not isinstance(group, dict):
            raise fail(f"{label} is not an object.", 'write it as {"group": n, "winner": ..., "prompts": [...]}.')
        winner = group.get("winner")
        if winner not in keys:
            raise fail(f"{label} names winner {winner!r}, which is not a response key.{did_you_mean(str(winner), keys)}",
                       f"the winner must be one of {', '.join(keys)}.")
        plist = group.get("prompts")
        if not isinstance(plist, list) or len(plist) != N_PROMPTS:
            n = len(plist) if isinstance(plist, list) else "no list"
            raise fail(f"{label} must hold exactly {N_PROMPTS} prompts (a base prompt and 2 paraphrases), found {n}.",
                       f"give every group {N_PROMPTS} prompts.")
        texts: list[str] = []
        for j, prompt in enumerate(plist):
            text = prompt.get("text") if isinstance(prompt, dict) else prompt
            if not isinstance(text, str) or not text.strip():
                raise fail(f"{label}, prompt {j + 1} is empty.", "every prompt needs non-empty text.")
            texts.append(text)
        winners.append(winner)
        prompts.append(tuple(texts))
    return tuple(winners), tuple(prompts)


def _parse_profiles(value: Any, keys: tuple[str, ...], fail) -> dict[str, dict[str, str]] | None:
    """``style_assignments['rI']`` describes the I-th response; optional in the file."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail("'style_assignments' must be an object keyed r1..r4.", "write it as {\"r1\": {...}, ...}.")
    profiles: dict[str, dict[str, str]] = {}
    expected = [f"r{i}" for i in range(1, N_RESPONSES + 1)]
    for name in value:
        if name not in expected:
            raise fail(f"style_assignments has an unknown entry {name!r}.{did_you_mean(str(name), expected)}",
                       "use r1..r4, where rI profiles the I-th response.")
    for i, name in enumerate(expected):
        prof = value.get(name)
        if not isinstance(prof, dict):
            raise fail(f"style_assignments is missing {name!r}.", f"profile all {N_RESPONSES} responses.")
        for dim, level in prof.items():
            if dim not in DIMENSIONS:
                raise fail(f"style_assignments[{name!r}] has unknown dimension {dim!r}.{did_you_mean(dim, DIMENSIONS)}",
                           f"use {', '.join(DIMENSIONS)}.")
            if level not in DIMENSIONS[dim]:
                raise fail(f"style_assignments[{name!r}][{dim!r}] has unknown level {level!r}."
                           f"{did_you_mean(str(level), DIMENSIONS[dim])}", f"use one of {', '.join(DIMENSIONS[dim])}.")
        missing = [d for d in DIMENSIONS if d not in prof]
        if missing:
            raise fail(f"style_assignments[{name!r}] lacks {', '.join(missing)}.", "give all 5 dimensions a level.")
        profiles[keys[i]] = {d: prof[d] for d in DIMENSIONS}
    return profiles


def profile_distance(a: dict[str, str], b: dict[str, str]) -> int:
    """Manhattan distance over level indices (the release keeps every pair >= 8 apart)."""
    return sum(abs(DIMENSIONS[d].index(a[d]) - DIMENSIONS[d].index(b[d])) for d in DIMENSIONS)


ITEM_COLUMNS = ["item", "record", "record_id", "domain", "group", "prompt", "winner", "winner_idx", *DIMENSIONS]


def item_table(bench: Benchmark) -> pd.DataFrame:
    """One row per scored item (record x group x prompt), with the winner's profile.

    ``item`` numbers rows 0..n-1; pair ``4 * item + j`` is (this item's prompt,
    response j). The dimension columns hold the winner's level (None without
    style_assignments) and define the category-profile cells.
    """
    rows = []
    for r, rec in enumerate(bench.records):
        for g, winner in enumerate(rec.winners):
            prof = rec.profiles[winner] if rec.profiles else {}
            for p in range(N_PROMPTS):
                rows.append((len(rows), r, rec.id, rec.domain, g, p, winner, rec.keys.index(winner),
                             *(prof.get(d) for d in DIMENSIONS)))
    return pd.DataFrame(rows, columns=ITEM_COLUMNS)


def pair_texts(bench: Benchmark) -> tuple[list[str], list[str]]:
    """Parallel prompt and response lists, 4 pairs per item in item-table order."""
    prompts: list[str] = []
    responses: list[str] = []
    for rec in bench.records:
        for group in rec.prompts:
            for prompt in group:
                prompts.extend([prompt] * N_RESPONSES)
                responses.extend(rec.responses)
    return prompts, responses


def response_keys(bench: Benchmark) -> list[tuple[str, ...]]:
    """Per item, the response keys in pair order (for rankings and reports)."""
    return [rec.keys for rec in bench.records for _ in range(N_GROUPS * N_PROMPTS)]
