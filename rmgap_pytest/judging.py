"""Report numbers for LLM judges that need the benchmark's structure: ties, by score.

A pointwise judge's integer ratings tie often, and a tie between the winner
and a loser is a lost comparison (DESIGN.md: ``w > l`` strictly). With
``judge_score="expected"`` every row's metadata keeps the plain rating and
the probability-weighted one, so one run measures how many ties the expected
rating breaks. Pure functions over the per-row metadata; the report shows the
result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["tie_rates"]


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
