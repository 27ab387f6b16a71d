"""``judge:TARGET``: a pointwise LLM judge that rates one (prompt, response) from 1 to 10.

Greedy (temperature 0). ``judge_score="rating"`` (default, as the paper) scores
the rating itself; ``"expected"`` scores the probability-weighted rating
sum_k k p(k) over the judge's top log-probs at the rating's token (G-Eval,
arXiv 2303.16634; see ``_parse.expected_rating``), which breaks most ties:
with integer ratings two responses often get the same number, and a tie is a
loss. Each row's metadata keeps both numbers, so the report can show how many
ties the expected rating removed.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

import numpy as np

from ._chat import ChatRequest, Completion
from ._generative import PairGenerativeScorer, check_choice
from ._parse import Parsed, expected_rating, parse_rating
from .base import Scored, ScorerOptions

__all__ = ["JudgeScorer", "SCORES"]

SCORES = ("rating", "expected")


class JudgeScorer(PairGenerativeScorer):
    """Score = the 1-10 rating (or its expectation); NaN when no valid rating came back. Pair-level."""

    kind = "judge"

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        self.mode = check_choice(spec, "judge_score", options.judge_score, SCORES)
        super().__init__(target, spec, options)

    def _settings(self) -> dict[str, object]:
        return {"score": self.mode, "max_tokens": self.max_tokens, "seed": self.options.seed}

    def _score_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> Scored:
        expected = self.mode == "expected"
        requests = [ChatRequest(self.template.messages(prompt=p, response=r), self.max_tokens, logprobs=expected)
                    for p, r in zip(prompts, responses)]
        answers = self.ask(requests, self._parse)
        values = np.full(len(answers), np.nan)
        meta = []
        for i, a in enumerate(answers):
            m = a.meta()
            if a.parsed.ok:
                rating, weighted = a.parsed.value
                m["rating"] = rating
                if weighted is not None:
                    m["expected"] = round(weighted, 6)
                values[i] = weighted if expected else rating
            meta.append(m)
        self.stats.pairs_scored += len(prompts)
        return Scored(values, meta)

    def _parse(self, c: Completion) -> Parsed:
        """``(rating, expectation or None)``; in expected mode an unreadable expectation is invalid."""
        parsed = parse_rating(c.text)
        if not parsed.ok or self.mode == "rating":
            return Parsed(value=(parsed.value, None), span=parsed.span) if parsed.ok else parsed
        weighted = self._expected(c, int(parsed.value))
        if weighted is None:
            return Parsed(invalid=f"rating {parsed.value} has no digit alternatives in the log-probs", final=True)
        return Parsed(value=(parsed.value, weighted), span=parsed.span)

    def _expected(self, c: Completion, rating: int) -> float | None:
        if not c.tokens or not c.tops:
            return None
        joined = "".join(c.tokens)  # the token texts, so the rating's position is a token index
        again = parse_rating(joined)
        if not again.ok or again.value != rating or again.span is None:
            return None
        ends = list(itertools.accumulate(len(t) for t in c.tokens))
        j = bisect.bisect_right(ends, again.span[0])  # the token holding the rating's first character
        value = expected_rating(c.tops[j:j + 2], c.tokens[j:j + 2], ten_is_one_token=self.backend.ten_is_one_token)
        return None if np.isnan(value) else value
