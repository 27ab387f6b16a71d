"""Tie counting for pointwise judges (``rmgap_pytest.judging``)."""

from __future__ import annotations

import pytest

from rmgap_pytest.judging import tie_rates


def _meta(ratings, expected):
    return [{"rating": r, "expected": e} for r, e in zip(ratings, expected)]


def test_counts_winner_loser_ties_under_both_scores():
    meta = _meta([7, 7, 5, 7], [7.2, 6.9, 5.0, 7.2])  # item 0, winner 0: ties 1 and 3 (rating); 3 (expected)
    meta += _meta([3, 8, 8, 1], [3.1, 8.0, 8.4, 1.2])  # item 1, winner 1: tie with 2 (rating); none (expected)
    got = tie_rates(meta, [0, 1])
    assert got == {"items": 2, "comparisons": 6, "rating_ties": 3, "expected_ties": 1,
                   "rating_tie_rate": pytest.approx(0.5), "expected_tie_rate": pytest.approx(1 / 6)}


def test_items_with_an_invalid_row_are_left_out():
    meta = _meta([7, 7, 5, 7], [7.2, 6.9, 5.0, 7.2])
    meta += [{"invalid": "no number"}] + _meta([8, 8, 1], [8.0, 8.4, 1.2])
    assert tie_rates(meta, [0, 1])["items"] == 1


def test_none_without_expected_ratings_or_with_misaligned_meta():
    assert tie_rates([{"rating": 7}] * 4, [0]) is None
    assert tie_rates(_meta([7] * 4, [7.0] * 4), [0, 1]) is None
