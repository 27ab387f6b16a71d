"""``verifier:TARGET``: a generative verifier (Zhang et al. 2024, arXiv 2408.15240).

The judge sees one (prompt, response) and is asked whether it is a good
response; the score is log p("YES" | judge prompt), read off the model rather
than sampled. Locally: one forward pass, summing the probability of the
single tokens that read "YES" (with or without a leading space), or the
chained log-prob of its tokens when no single token reads it. Over HTTP: one
token is generated with ``top_logprobs: 20`` and the listed tokens that read
"YES" are summed; when none is listed, the score is the list's last log-prob,
an upper bound, and the row is marked ``"bound": true`` (counted in the report).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._generative import PairGenerativeScorer
from .base import Scored

__all__ = ["VerifierScorer", "ANSWER"]

ANSWER = "YES"


class VerifierScorer(PairGenerativeScorer):
    """Score = log p(YES | judge prompt); higher is better. Pair-level."""

    kind = "verifier"

    def _settings(self) -> dict[str, object]:
        return {"answer": ANSWER}

    def _score_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> Scored:
        if not prompts:
            return Scored(np.zeros(0), [])
        conversations = [self.template.messages(prompt=p, response=r) for p, r in zip(prompts, responses)]
        answers = self.backend.answer_logprob(conversations, ANSWER)
        self._after_backend_use()
        meta = []
        for a in answers:
            m: dict = {"raw": a.first}
            if a.prompt_tokens is not None and a.completion_tokens is not None:
                m["usage"] = {"prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens}
            if not a.exact:
                m["bound"] = True
            m.update(a.notes)
            meta.append(m)
        self.stats.pairs_scored += len(prompts)
        return Scored(np.array([a.logprob for a in answers], dtype=np.float64), meta)
