"""Reading an LLM judge's answer: strict, and never a default.

The reference implementation takes the first integer anywhere in a pointwise
answer (clamped into 1-10, 5.0 when none) and the first four distinct letters
anywhere in a listwise one (``A>B>C>D`` when none), so a judge that rambles
gets a score it never gave. Here an answer either states one rating or one
ranking, or it is invalid with a reason that says why; the caller retries a
bounded number of times and then counts it as an invalid score.

Reasoning models write ``<think>...</think>`` before the answer; that block is
removed first (its numbers and letters are not the answer), and an unfinished
block means the reply ran out of tokens while thinking.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Parsed", "strip_reasoning", "parse_rating", "parse_ranking", "labels", "expected_rating"]

_THINK_OPEN = re.compile(r"<think(?:ing)?>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
# A rating: an integer or decimal, not part of a word or a larger number ("v2", "3.5.1").
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w]|\.\d)")
_DENOMINATOR = re.compile(r"(?:/|\bout\s+of|\bof)\s*$", re.IGNORECASE)  # "7/10", "7 out of 10"
_KEYWORD = re.compile(r"(?:score|rating|grade|rate)\W{0,6}$", re.IGNORECASE)  # "Score: 7", "**Rating**: 7"
_DECORATION = str.maketrans({c: " " for c in "*`\"'[](){}"})  # markdown and quotes around letters
_CHAIN = re.compile(r"[A-Za-z]+(?:\s*>\s*[A-Za-z]+)+")
_RESPONSE_WORD = re.compile(r"\b(?:response|answer|option)\s+(?=[A-Za-z]\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    """A judge answer read: ``value`` (int rating or tuple of labels) or ``invalid`` (why not).

    ``span``: (start, end) character offsets of the rating in the text that was
    parsed, so the expected rating can find its token.
    """

    value: object = None
    invalid: str | None = None
    span: tuple[int, int] | None = None
    final: bool = False  # invalid, and asking again cannot change it (not the answer's wording)

    @property
    def ok(self) -> bool:
        return self.invalid is None


def strip_reasoning(text: str) -> tuple[str, int, str | None]:
    """``(answer, offset, problem)``: the text after the last ``</think>`` and where it starts.

    ``problem`` is set when a ``<think>`` block never closes (the reply was cut
    while reasoning). Templates that open the block themselves leave only the
    closing tag in the reply; that is handled the same way.
    """
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        end = closes[-1].end()
        return text[end:], end, None
    if _THINK_OPEN.search(text):
        return "", len(text), "the reasoning block <think> never closes (the reply ran out of tokens)"
    return text, 0, None


def parse_rating(text: str, lo: int = 1, hi: int = 10) -> Parsed:
    """One whole-number rating in [lo, hi], or invalid.

    Accepted: a bare number (``7``), decorated (``**7**``, ``7/10``, ``7 out of 10``),
    or after a keyword (``Score: 7``; the last keyworded number wins, so a judge may
    explain first). Invalid: no number, several different numbers and no keyword,
    a fraction (``7.5``), or a number outside [lo, hi].
    """
    answer, offset, problem = strip_reasoning(text)
    if problem:
        return Parsed(invalid=problem)
    found = []  # (value text, start, end, keyworded)
    for m in _NUMBER.finditer(answer):
        before = answer[:m.start()]
        if _DENOMINATOR.search(before) and found:  # the "10" of "7/10" or "7 out of 10"
            continue
        found.append((m.group(), m.start(), m.end(), bool(_KEYWORD.search(before))))
    if not found:
        return Parsed(invalid="no number in the answer")
    keyworded = [f for f in found if f[3]]
    if keyworded:
        chosen = keyworded[-1]
    elif len({float(f[0]) for f in found}) == 1:
        chosen = found[0]
    else:
        shown = ", ".join(dict.fromkeys(f[0] for f in found[:6]))
        return Parsed(invalid=f"several numbers ({shown}) and none marked as the score")
    number = float(chosen[0])
    if not number.is_integer():
        return Parsed(invalid=f"{chosen[0]} is not a whole number")
    if not lo <= number <= hi:
        return Parsed(invalid=f"{chosen[0]} is outside {lo}-{hi}")
    return Parsed(value=int(number), span=(offset + chosen[1], offset + chosen[2]))


def labels(k: int) -> str:
    """The position labels for k responses: ``ABCD`` for 4."""
    if not 2 <= k <= 26:
        raise ValueError(f"a listwise judge ranks 2 to 26 responses, got {k}")
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:k]


def parse_ranking(text: str, k: int = 4) -> Parsed:
    """A permutation of the k labels written best first with ``>`` (``C>A>D>B``), or invalid.

    Accepted decorations: spaces, markdown, brackets, quotes, lower case, and
    ``Response C > Response A > ...``. The answer must hold exactly one such
    ranking (repeated identically is fine); two different ones are ambiguous.
    A chain of single letters that is not a permutation (``A>A>C>D``, three
    letters, an unknown label) is invalid, never completed or reordered.
    """
    answer, _, problem = strip_reasoning(text)
    if problem:
        return Parsed(invalid=problem)
    names = labels(k)
    cleaned = _RESPONSE_WORD.sub("", answer.translate(_DECORATION))
    rankings: list[tuple[str, ...]] = []
    near: list[str] = []
    for m in _CHAIN.finditer(cleaned):
        parts = [p.strip() for p in m.group().split(">")]
        if not all(len(p) == 1 for p in parts):
            continue  # prose such as "clarity > length"
        letters = tuple(p.upper() for p in parts)
        if len(letters) == k and set(letters) == set(names):
            rankings.append(letters)
        else:
            near.append(">".join(letters))
    distinct = list(dict.fromkeys(rankings))
    if len(distinct) == 1:
        return Parsed(value=distinct[0])
    if distinct:
        return Parsed(invalid="several different rankings: " + ", ".join(">".join(r) for r in distinct[:3]))
    if near:
        return Parsed(invalid=f"{near[0]} is not a permutation of {', '.join(names)}")
    return Parsed(invalid=f"no ranking such as {'>'.join(names)} in the answer")


def _digit_mass(top: Mapping[str, float]) -> dict[str, float]:
    """Probability per stripped digit string among one position's top tokens."""
    out: dict[str, float] = {}
    for token, logprob in top.items():
        s = token.strip()
        if s.isascii() and s.isdigit() and s == str(int(s)):
            out[s] = out.get(s, 0.0) + math.exp(logprob)
    return out


def expected_rating(tops: Sequence[Mapping[str, float]], chosen: Sequence[str], lo: int = 1, hi: int = 10,
                    ten_is_one_token: bool | None = None) -> float:
    """Probability-weighted rating from the top log-probs at the rating's first token.

    ``tops[j]``: token -> log-prob at the j-th token of the rating (j = 0, 1 when
    the rating took two tokens); ``chosen[j]``: the token generated there. Returns
    ``sum_k k p_k / sum_k p_k`` over k in [lo, hi] (the G-Eval weighting, Liu et
    al. 2023, arXiv 2303.16634), NaN when no in-range token is listed.

    Tokenizers that split numbers into digits make "1" ambiguous: it starts 1 and
    10. When the judge wrote "1", the next position's probability of "0" splits
    it; otherwise it counts as 1 only when "10" is a token of its own
    (``ten_is_one_token``, or "10" in the list), else it is left out rather
    than guessed.
    """
    mass = _digit_mass(tops[0])
    p = {int(s): v for s, v in mass.items() if lo <= int(s) <= hi}
    if "1" in mass and lo <= 1 and hi >= 10:
        if chosen[0].strip() == "1":  # the judge went through "1": the next position says 1 or 10
            q_zero = _digit_mass(tops[1]).get("0", 0.0) if len(tops) > 1 else 0.0
            p[1] = mass["1"] * (1.0 - q_zero)
            p[10] = p.get(10, 0.0) + mass["1"] * q_zero
        elif not (ten_is_one_token or "10" in mass):
            p.pop(1, None)  # "1" might be the start of "10": unknown, so not counted
    total = sum(p.values())
    if total <= 0.0:
        return float("nan")
    return sum(k * v for k, v in p.items()) / total
