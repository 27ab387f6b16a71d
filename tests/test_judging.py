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


def test_summaries_count_bounds_retries_and_every_first_label():
    from rmgap_pytest.judging import SUMMARIES

    rows = [{"first": "A", "attempts": 2}, {"first": ["B", "B", "C"]}, {"first": "A", "bound": True}]
    assert SUMMARIES["first"](rows, [True] * 3, "item") == ({}, {"first_position": {"A": 2, "B": 2, "C": 1}})
    assert SUMMARIES["attempts"]([r for r in rows if "attempts" in r], [True], "item")[0] == {"retried_answers": 1}
    assert SUMMARIES["bound"]([rows[2]], [True], "pair")[0] == {"bound_answers": 1}


def test_judge_lines_show_failures_with_excerpts_tokens_positions_and_ties():
    from rmgap_pytest.judging import judge_lines

    counts = {"invalid_answers": 2, "retried_answers": 5, "prompt_tokens": 12345, "completion_tokens": 67}
    details = {"invalid_examples": [{"invalid": "no number in the answer", "raw": "I cannot decide."},
                                    {"invalid": "order 2 of 2: bad", "raw": ["C>A>D>B", "A>A>B>C"]}],
               "first_position": {"A": 6, "B": 2, "C": 1, "D": 1},
               "ties": {"comparisons": 30, "rating_tie_rate": 0.2, "expected_tie_rate": 0.0}}
    text = "\n".join(judge_lines(counts, details))
    assert "Judge answers: 5 needed a retry" in text
    assert "'I cannot decide.' (no number in the answer)" in text and "C>A>D>B | A>A>B>C" in text
    assert "12,345 prompt + 67 completion" in text
    assert "A 60%, B 20%, C 10%, D 10% of 10 rankings (an unbiased judge: about 25% each)" in text
    assert "A 0%, B 100%, C 0%, D 0% of 3" in judge_lines({}, {"first_position": {"B": 3}})[0]
    assert "20.0% with the rating, 0.0% with the expected rating" in text
    assert judge_lines({"truncated_pairs": 0}, {}) == []


def test_the_report_has_a_judge_section_only_for_judges():
    from rmgap_pytest.evaluation import evaluate
    from rmgap_pytest.report import markdown, terminal_summary

    ev = evaluate(None, "builtin:length", cache=False, n_boot=20)
    assert "LLM judge" not in terminal_summary(ev)
    ev.counts.update(invalid_answers=1, retried_answers=3, prompt_tokens=900, completion_tokens=12)
    ev.meta["scorer_meta"] = {"invalid_examples": [{"invalid": "no number in the answer", "raw": "hmm"}],
                              "first_position": {"A": 3, "B": 1}}
    for text in (terminal_summary(ev), markdown(ev)):
        assert "LLM judge" in text and "3 needed a retry" in text and "'hmm' (no number in the answer)" in text
        assert "900 prompt + 12 completion" in text and "A 75%, B 25%, C 0%, D 0% of 4 rankings" in text
