"""Reading judge answers (``scorers._parse``): property-based, plus the cases the reference gets wrong."""

from __future__ import annotations

import itertools
import math
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rmgap_pytest.scorers._parse import expected_rating, parse_ranking, parse_rating, strip_reasoning

# Parsing takes microseconds; a loaded shared machine must not fail these tests on hypothesis's 200 ms deadline.
NO_DEADLINE = settings(deadline=None)
LETTERS = "ABCD"
RANKING_DECORATIONS = ["{r}", "{r}\n", " {r} ", "**{r}**", "`{r}`", "Ranking: {r}", "Final answer: {r}.",
                       "<think>A>B>C>D looks wrong, maybe D>C>B>A</think>\n{r}", "[{r}]"]
RATING_DECORATIONS = ["{n}", " {n}\n", "**{n}**", "{n}/10", "{n} / 10", "{n} out of 10", "Score: {n}",
                      "Rating: **{n}**", "I count 3 strengths and 2 flaws. Score: {n}",
                      "<think>between 2 and 9, say 4</think>{n}", "{n}."]


def _spaced(ranking: tuple[str, ...], sep: str, lower: bool) -> str:
    text = sep.join(ranking)
    return text.lower() if lower else text


@NO_DEADLINE
@given(perm=st.permutations(LETTERS), sep=st.sampled_from([">", " > ", " >", "> "]), lower=st.booleans(),
       decoration=st.sampled_from(RANKING_DECORATIONS))
def test_every_permutation_round_trips(perm, sep, lower, decoration):
    text = decoration.format(r=_spaced(tuple(perm), sep, lower))
    assert parse_ranking(text).value == tuple(perm)


@NO_DEADLINE
@given(st.text(alphabet=st.characters(blacklist_characters=">"), max_size=200))
def test_text_without_a_chain_never_parses(text):
    parsed = parse_ranking(text)
    assert parsed.value is None and parsed.invalid


@NO_DEADLINE
@given(letters=st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=7), lower=st.booleans())
def test_chains_that_are_not_permutations_never_parse(letters, lower):
    if len(letters) == 4 and set(letters) == set(LETTERS):
        letters = letters + ["A"]  # make it wrong: five labels
    parsed = parse_ranking(_spaced(tuple(letters), ">", lower))
    assert parsed.value is None and parsed.invalid


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ABCDabcd >xyz.\n*", max_size=60))
@example("A>B>C>D or maybe B>A>C>D")
def test_a_parse_of_junk_is_always_a_ranking_written_in_it(text):
    parsed = parse_ranking(text)
    if parsed.ok:  # never invented: the permutation is literally there, and it is the only one
        assert sorted(parsed.value) == list(LETTERS)
        flat = re.sub(r"[\s*]", "", text.upper())
        assert ">".join(parsed.value) in flat
    else:
        assert parsed.invalid


def test_two_different_rankings_are_ambiguous():
    assert "several different rankings" in parse_ranking("B>A>C>D, not A>B>C>D").invalid
    assert parse_ranking("C>A>D>B. Again: C>A>D>B").value == ("C", "A", "D", "B")


def test_the_reference_would_have_read_these_but_they_are_not_rankings():
    # The reference takes any 4 distinct letters in a row ("BAD CAB" -> B, A, D, C) or defaults to A>B>C>D.
    for text in ["BAD CAB", "A, C, B, D", "ABCD", "", "I prefer response C overall.", "A>A>B>C", "A>B>C"]:
        assert parse_ranking(text).value is None, text


def test_prose_with_comparisons_keeps_the_real_ranking():
    assert parse_ranking("clarity > length, so: Response C > Response A > Response D > Response B").value == \
        ("C", "A", "D", "B")


@pytest.mark.parametrize("k", [2, 3, 5])
def test_other_sizes(k):
    names = "ABCDE"[:k]
    for perm in itertools.permutations(names):
        assert parse_ranking(">".join(perm), k).value == perm
    assert parse_ranking(">".join(names[:-1]), k).value is None


@NO_DEADLINE
@given(n=st.integers(1, 10), decoration=st.sampled_from(RATING_DECORATIONS))
def test_ratings_in_range_round_trip(n, decoration):
    text = decoration.format(n=n)
    parsed = parse_rating(text)
    assert parsed.value == n, text
    start, end = parsed.span
    assert text[start:end] == str(n)


@NO_DEADLINE
@given(n=st.one_of(st.integers(-1000, 0), st.integers(11, 10 ** 6)), decoration=st.sampled_from(RATING_DECORATIONS))
def test_ratings_out_of_range_are_invalid_not_clamped(n, decoration):
    parsed = parse_rating(decoration.format(n=n))
    assert parsed.value is None and "outside 1-10" in parsed.invalid


@NO_DEADLINE
@given(st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=200))
def test_text_without_digits_has_no_rating(text):
    parsed = parse_rating(text)
    assert parsed.value is None and parsed.invalid


@pytest.mark.parametrize("text,reason", [
    ("7.5", "not a whole number"),
    ("3 or 8", "several numbers (3, 8)"),
    ("<think>I would say 8", "never closes"),
    ("no idea", "no number"),
])
def test_invalid_ratings_say_why(text, reason):
    assert reason in parse_rating(text).invalid


def test_strip_reasoning_keeps_the_answer_and_its_offset():
    assert strip_reasoning("<think>x</think> 7") == (" 7", 16, None)
    assert strip_reasoning("only the closing tag</think>B>A>C>D")[0] == "B>A>C>D"
    assert strip_reasoning("<think>cut")[2] is not None
    assert strip_reasoning("7") == ("7", 0, None)


def _lp(p: dict[str, float]) -> dict[str, float]:
    return {k: math.log(v) for k, v in p.items()}


def test_expected_rating_is_the_probability_weighted_mean():
    top = _lp({"7": 0.5, "8": 0.3, "6": 0.1, " ": 0.1})
    assert expected_rating([top], ["7"]) == pytest.approx((7 * 0.5 + 8 * 0.3 + 6 * 0.1) / 0.9)


def test_expected_rating_splits_one_and_ten_when_digits_are_separate_tokens():
    first = _lp({"1": 0.6, "9": 0.4})  # "1" starts both 1 and 10
    second = _lp({"0": 0.75, "<eos>": 0.25})
    want = (10 * 0.6 * 0.75 + 1 * 0.6 * 0.25 + 9 * 0.4) / 1.0
    assert expected_rating([first, second], ["1", "0"]) == pytest.approx(want)
    # The judge wrote "9": "1"'s share of 1 and 10 is unknown, so it is left out rather than guessed...
    assert expected_rating([first], ["9"]) == pytest.approx(9.0)
    # ... unless "10" is known to be one token, when "1" can only mean 1.
    assert expected_rating([first], ["9"], ten_is_one_token=True) == pytest.approx(0.6 * 1 + 0.4 * 9)
    assert expected_rating([_lp({"10": 0.5, "1": 0.5})], ["10"]) == pytest.approx(5.5)


def test_expected_rating_without_digits_is_nan():
    assert math.isnan(expected_rating([_lp({"good": 1.0})], ["good"]))


@pytest.mark.parametrize("kind", ["verifier", "judge"])
def test_pair_judges_refuse_lists_of_different_lengths_before_asking(kind):
    from rmgap_pytest.errors import ScorerError
    from rmgap_pytest.scorers import build_scorer
    from rmgap_pytest.scorers.base import ScorerOptions

    scorer = build_scorer(f"{kind}:http://127.0.0.1:9/v1", ScorerOptions())  # port 9: nothing is asked
    with pytest.raises(ScorerError, match="2 prompts but 1 responses; they must be parallel lists"):
        scorer.score_detailed(["a", "b"], ["x"])
