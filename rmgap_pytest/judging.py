"""Report numbers for LLM judges, from the per-row metadata the score store keeps.

The judges (``scorers/verifier.py``, ``judge.py``, ``ranker.py``) write, per
row: ``raw`` (answer excerpt), ``usage``, ``invalid`` (why unreadable),
``attempts`` (when asked more than once), ``first`` (the label ranked first;
a list with several orders), ``bound`` (a verifier's YES below the top-20
list), ``rating`` and ``expected`` (judge). The store's ``counts.py`` turns
``invalid`` and ``usage`` into counts; ``SUMMARIES`` here covers the rest,
``tie_rates`` needs the items' winners, and ``judge_lines`` is the report's
wording. Pure functions: a cached rerun and an xdist controller see the same
metadata, so they print the same numbers.

Ties: a pointwise judge's integer ratings tie often, and a tie between the
winner and a loser is a lost comparison (DESIGN.md: ``w > l`` strictly). With
``judge_score="expected"`` every row keeps both numbers, so one run measures
how many ties the expected rating breaks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SUMMARIES", "tie_rates", "judge_lines"]

EXAMPLES_SHOWN = 3  # raw excerpts of unreadable answers in the report


def _bound(rows: list[dict], computed: list[bool], unit: str) -> tuple[dict, dict]:
    return {"bound_answers": sum(bool(m.get("bound")) for m in rows)}, {}


def _attempts(rows: list[dict], computed: list[bool], unit: str) -> tuple[dict, dict]:
    return {"retried_answers": sum(int(m.get("attempts", 1)) > 1 for m in rows)}, {}


def _first(rows: list[dict], computed: list[bool], unit: str) -> tuple[dict, dict]:
    counter: Counter[str] = Counter()
    for m in rows:
        first = m.get("first")
        counter.update([first] if isinstance(first, str) else [str(f) for f in first or []])
    return {}, {"first_position": dict(sorted(counter.items()))}


# metadata key -> summary, the signature of counts.META_SUMMARIES: (rows carrying the key,
# whether each was computed in this run, unit) -> (counts, details)
SUMMARIES = {"bound": _bound, "attempts": _attempts, "first": _first}


def tie_rates(meta: Sequence[dict[str, Any] | None], winner_idx: Sequence[int], k: int = 4) -> dict[str, Any] | None:
    """Winner-vs-loser comparisons that tie under the plain rating and under the expected rating.

    ``meta``: one entry per pair, k per item in item order (as the score store
    serves a pair scorer's metadata); ``winner_idx[i]``: item i's winner (0..k-1).
    Counts only items whose k rows all carry both numbers (valid answers with
    log-probs). Returns ``{"items", "comparisons", "rating_ties", "expected_ties",
    "rating_tie_rate", "expected_tie_rate"}``, or None when no row has an
    expected rating (the plain-rating mode, or another kind of scorer).
    """
    n_items = len(winner_idx)
    if len(meta) != n_items * k or not any(m and "expected" in m for m in meta):
        return None
    rating = np.full((n_items, k), np.nan)
    expected = np.full((n_items, k), np.nan)
    for row, m in enumerate(meta):
        if m and "rating" in m and "expected" in m:
            rating[row // k, row % k], expected[row // k, row % k] = m["rating"], m["expected"]
    complete = ~(np.isnan(rating).any(axis=1) | np.isnan(expected).any(axis=1))
    out: dict[str, Any] = {"items": int(complete.sum()), "comparisons": int(complete.sum()) * (k - 1)}
    for name, table in (("rating", rating), ("expected", expected)):
        t = table[complete]
        w = t[np.arange(len(t)), np.asarray(winner_idx)[complete]]
        ties = int((t == w[:, None]).sum() - len(t))  # each winner equals itself once
        out[f"{name}_ties"] = ties
        out[f"{name}_tie_rate"] = ties / out["comparisons"] if out["comparisons"] else None
    return out


def judge_lines(counts: dict[str, Any], details: dict[str, Any]) -> list[str]:
    """The report's lines about a judge run; empty for other scorers."""
    lines = []
    if "retried_answers" in counts or "invalid_answers" in counts:
        # The count of unreadable answers is on the store's "Invalid items" line; here: retries and examples.
        text = f"Judge answers: {counts.get('retried_answers', 0)} needed a retry"
        if counts.get("bound_answers"):
            text += f"; {counts['bound_answers']} with YES below the top-20 log-probs (scored at the bound)"
        lines.append(text)
        for ex in (details.get("invalid_examples") or [])[:EXAMPLES_SHOWN]:
            raw = ex.get("raw")
            raw = " | ".join(map(str, raw)) if isinstance(raw, list) else str(raw)
            lines.append(f"  unreadable: {raw[:120]!r} ({ex.get('invalid')})")
    elif counts.get("bound_answers"):
        lines.append(f"Verifier: {counts['bound_answers']} answers with YES below the top-20 log-probs "
                     "(scored at the bound)")
    if "prompt_tokens" in counts:
        lines.append(f"Judge tokens: {counts['prompt_tokens']:,} prompt + {counts.get('completion_tokens', 0):,} "
                     "completion (spent by this run; cached answers cost nothing)")
    first = details.get("first_position") or {}
    if first:
        total = sum(first.values())
        k = max(4, *(ord(c) - ord("A") + 1 for c in first if len(c) == 1 and c.isupper()))
        shares = ", ".join(f"{c} {first.get(c, 0) / total:.0%}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:k])
        lines.append(f"Position ranked first: {shares} of {total} rankings (an unbiased judge: about {1 / k:.0%} each)")
    ties = details.get("ties")
    if ties and ties.get("comparisons"):
        lines.append(f"Ties (winner vs loser, {ties['comparisons']} comparisons): {ties['rating_tie_rate']:.1%} with "
                     f"the rating, {ties['expected_tie_rate']:.1%} with the expected rating (ties count as losses)")
    return lines
