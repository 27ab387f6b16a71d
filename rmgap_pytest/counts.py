"""The run's counts, read from the score store rather than from per-process counters.

Per-process counters lie twice: on a cached rerun (the model computed nothing,
so "0 truncated" although the scores it serves were truncated) and under
pytest-xdist (each worker counts only its share, the controller none). So the
store keeps, with every score, the run that computed it and the scorer's
per-row metadata (``Scored.meta``), and the counts are derived from what the
store served: the same numbers in a cached rerun, a serial run and any number
of workers.

``META_SUMMARIES`` is the one place that turns a metadata key into counts and
report details. A new kind of scorer (LLM judges) adds its keys here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .judging import SUMMARIES as JUDGE_SUMMARIES

__all__ = ["META_SUMMARIES", "run_counts", "scoring_lines", "summarize_meta"]

EXCERPTS = 5  # raw answers kept per kind of failure, for the report

# (meta dicts of rows carrying the key, whether each was computed in this run, unit)
#   -> (counts, details). Counts are ints for Evaluation.counts; details go to meta["scorer_meta"].
Summary = Callable[[list[dict[str, Any]], list[bool], str], tuple[dict[str, int], dict[str, Any]]]


def _truncated(rows: list[dict], computed: list[bool], unit: str) -> tuple[dict, dict]:
    return {f"truncated_{unit}s": sum(bool(m.get("truncated")) for m in rows)}, {}


def _invalid(rows: list[dict], computed: list[bool], unit: str) -> tuple[dict, dict]:
    bad = [m for m in rows if m.get("invalid")]
    return ({"invalid_answers": len(bad)},
            {"invalid_examples": [{"invalid": m["invalid"], "raw": m.get("raw")} for m in bad[:EXCERPTS]]})


def _usage(rows: list[dict], computed: list[bool], unit: str) -> tuple[dict, dict]:
    # Tokens this run paid for: rows served from the cache cost nothing now.
    spent = Counter()
    for m, here in zip(rows, computed):
        if here and isinstance(m.get("usage"), dict):
            spent.update({k: int(v) for k, v in m["usage"].items() if isinstance(v, (int, float))})
    return {k: spent[k] for k in ("prompt_tokens", "completion_tokens")}, {}


META_SUMMARIES: dict[str, Summary] = {
    "truncated": _truncated,
    "invalid": _invalid,
    "usage": _usage,
}
META_SUMMARIES.update(JUDGE_SUMMARIES)  # LLM judges: first (position bias), attempts, bound


def summarize_meta(meta: Sequence[dict[str, Any] | None], computed: Sequence[bool],
                   unit: str = "pair") -> tuple[dict[str, int], dict[str, Any]]:
    """Counts and details from per-row metadata (one entry per scored row; None = no metadata)."""
    counts: dict[str, int] = {}
    details: dict[str, Any] = {}
    by_key: dict[str, tuple[list[dict], list[bool]]] = {}
    for m, here in zip(meta, computed):
        if not m:
            continue
        for key in m:
            rows, flags = by_key.setdefault(key, ([], []))
            rows.append(m)
            flags.append(bool(here))
    for key, (rows, flags) in by_key.items():
        summary = META_SUMMARIES.get(key)
        if summary is not None:
            c, d = summary(rows, flags, unit)
            counts.update(c)
            details.update(d)
    return counts, details


def run_counts(fetched: Any, unit: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scoring counts of one request served by ``StoredScorer.fetch`` (a ``Fetched``).

    ``scored``: distinct pairs (items) this run computed, every process of it
    included; ``cache_hits``: distinct ones served from the score cache, present
    only when a real cache is on (``cache`` says "on" or "off").
    """
    counts: dict[str, Any] = {"unit": unit, "scored": int(fetched.unique_computed),
                              "cache": "on" if fetched.persistent else "off"}
    if fetched.persistent:
        counts["cache_hits"] = int(fetched.unique - fetched.unique_computed)
    if unit == "pair":
        counts["truncated_pairs"] = 0
    meta_counts, details = summarize_meta(fetched.meta, fetched.computed.tolist(), unit)
    counts.update(meta_counts)
    return counts, details


def scoring_lines(counts: dict[str, Any], seconds: float | None = None) -> list[str]:
    """The report's "Scoring:" lines. Never says "cache hits" when the cache was off."""
    took = f" in {seconds:.1f}s" if isinstance(seconds, (int, float)) else ""
    unit = counts.get("unit", "pair")
    total = counts.get(f"{unit}s", 0)
    if "scored" not in counts:
        first = f"Scoring: scores supplied by the caller{took} ({total} {unit}s)"
    elif counts.get("cache") == "on":
        first = (f"Scoring: {counts['scored']} {unit}s computed{took}, {counts.get('cache_hits', 0)} served from "
                 f"the score cache (of {total} {unit}s)")
    else:
        first = f"Scoring: {counts['scored']} {unit}s computed{took} (of {total} {unit}s; score cache off)"
    second = f"Invalid items: {counts.get('invalid_items', 0)} (counted wrong)"
    if unit == "pair":
        second += f"; truncated pairs: {counts.get('truncated_pairs', 0)}"
    if "invalid_answers" in counts:
        second += f"; unparseable answers: {counts['invalid_answers']}"
    return [first, second]
