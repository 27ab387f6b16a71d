"""SQLite score cache: (scorer fingerprint, key) -> score, metadata, and the run that computed it.

A key identifies one (prompt, response) pair for pair scorers, or one prompt
and its ordered responses for item scorers (``pair_keys``, ``item_keys``).
The cache is also how processes share scoring work. Every process asking for
the same keys cuts them into the same chunks; a process claims a chunk in the
database, scores only its missing keys, and stores the scores and drops the
claim in one transaction. So pytest-xdist workers score each key once in total, a killed
run resumes at the chunk it was in, and a fully cached run never calls (so
never loads) the model. This module says where the cache lives and what a key
is; ``_store.py`` is the SQLite storage, ``_cache_schema.py`` its tables, and
the claim loop lives in ``stored.py``. See docs/cache.md.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ._store import ChunkClaim, Row, ScoreStore, _pid_alive, pack, unpack  # noqa: F401 - re-exported
from .errors import CacheError  # noqa: F401 - re-exported

__all__ = ["CacheError", "ChunkClaim", "Row", "ScoreStore", "default_cache_path", "env_disables_cache",
           "item_keys", "pack", "pair_key", "pair_keys", "resolve_cache_path", "unpack"]

ENV_VAR = "RMGAP_CACHE"
_OFF_VALUES = {"0", "off", "false", "no", "none"}


def env_disables_cache() -> bool:
    """True when ``RMGAP_CACHE`` is 0/off/false/no/none (any case): the default cache is off."""
    return os.environ.get(ENV_VAR, "").strip().lower() in _OFF_VALUES


def _as_file(path: Path) -> Path:
    return path / "scores.sqlite" if path.is_dir() else path  # a directory holds scores.sqlite


def default_cache_path() -> Path:
    """$RMGAP_CACHE, else $XDG_CACHE_HOME/rmgap-pytest/scores.sqlite, else ~/.cache/...

    When ``env_disables_cache()`` this is the XDG location; use
    ``resolve_cache_path`` to honour the off switch.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    if value and value.lower() not in _OFF_VALUES:
        return _as_file(Path(value).expanduser())
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base).expanduser() if base else Path.home() / ".cache"
    return root / "rmgap-pytest" / "scores.sqlite"


def resolve_cache_path(setting: bool | str | os.PathLike[str] | None = True) -> Path | None:
    """The cache file for a user's setting, or None when caching is off.

    One place for the rules, so ``load_scorer``, the CLI and the plugin agree:
    True, None or "" = the default (off when ``RMGAP_CACHE`` says so); False or
    0/off/false/no/none = off; anything else = that file.
    """
    if setting is None or setting is True or setting == "":
        return None if env_disables_cache() else default_cache_path()
    if setting is False or str(setting).strip().lower() in _OFF_VALUES:
        return None
    return _as_file(Path(setting).expanduser())


_SIZE_MAX = 2**32 - 1


def _digests(*texts: Sequence[str]) -> dict[str, bytes]:
    """sha256 of each distinct text's UTF-8: RMGAP repeats each prompt 4 times and each response 12."""
    return {t: hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest()  # lone surrogates must not crash
            for t in set().union(*texts)}


# Keys start with the content size: keys sort by size as chunks do (stored.py), so the rows of
# a chunk are neighbours in the B-tree and storing a chunk writes a few pages, not one page per
# score (measured at twice the release size: 5x less time committing).
def pair_keys(prompts: Sequence[str], responses: Sequence[str]) -> list[bytes]:
    """One 20-byte key per pair: 4-byte content size, then 16 bytes of sha256 over the two
    texts' sha256 digests (fixed length, so ("ab", "c") and ("a", "bc") differ)."""
    digest, sha = _digests(prompts, responses), hashlib.sha256
    return [min(len(p) + len(r), _SIZE_MAX).to_bytes(4, "big") + sha(digest[p] + digest[r]).digest()[:16]
            for p, r in zip(prompts, responses)]


def item_keys(prompts: Sequence[str], responses: Sequence[Sequence[str]]) -> list[bytes]:
    """One key per item (a prompt and its responses in the given order; a reordered list is
    another key, as a listwise judge may answer differently). Never equal to a pair key:
    the hashed input has another length."""
    digest = _digests(prompts, *responses)
    out = []
    for p, rs in zip(prompts, responses):
        parts = [b"rmgap-item", len(rs).to_bytes(4, "big"), digest[p], *(digest[r] for r in rs)]
        size = min(len(p) + sum(map(len, rs)), _SIZE_MAX)
        out.append(size.to_bytes(4, "big") + hashlib.sha256(b"".join(parts)).digest()[:16])
    return out


def pair_key(prompt: str, response: str) -> bytes:
    """The key of one pair (``pair_keys`` for many: it hashes each distinct text once)."""
    return pair_keys([prompt], [response])[0]


