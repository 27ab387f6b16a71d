"""``ranker:TARGET``: a listwise LLM judge (the RMGAP code calls it "pairwise").

The judge sees one prompt and all k responses, labelled A, B, ... in an order
shuffled per item, and answers a ranking such as ``C>A>D>B``; the response it
puts first scores k, the last 1. The shuffle is seeded by the item's content
(prompt, responses, ``seed``), so every rerun and every xdist worker asks the
same question whatever the batching.

Judges favour positions (often A, or the last one). With ``ranker_orders=n``
each item is asked in n orders (cyclic shifts of its shuffle; n = k puts every
response in every position once) and the scores are the mean ranks, which
cancels a constant position preference. An item with any unreadable answer is
invalid as a whole: averaging only the orders that worked would bring the bias
back. Each item's metadata keeps the label put first in every order, so the
report can show how often each position won.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import numpy as np

from ..errors import ScorerError
from ._chat import ChatRequest
from ._generative import GenerativeScorer
from ._parse import labels, parse_ranking
from ._prompts import ranker_values
from .base import Scored, ScorerOptions

__all__ = ["RankerScorer", "shuffle_order", "shown_orders"]


def shuffle_order(prompt: str, responses: Sequence[str], seed: int) -> list[int]:
    """The item's seeded order: label j shows ``responses[order[j]]``. Depends on content only."""
    h = hashlib.sha256(str(seed).encode())
    for text in (prompt, *responses):
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big") + data)
    order = list(range(len(responses)))
    random.Random(int.from_bytes(h.digest()[:8], "big")).shuffle(order)
    return order


def shown_orders(order: Sequence[int], n: int) -> list[list[int]]:
    """The first n cyclic shifts of ``order`` (shift s shows ``order[(j + s) % k]`` at label j)."""
    k = len(order)
    return [[order[(j + s) % k] for j in range(k)] for s in range(n)]


class RankerScorer(GenerativeScorer):
    """Item-level: ``score_items(prompts, responses)`` -> (n, k) mean ranks (k = best), NaN rows when invalid."""

    kind = "ranker"
    unit = "item"

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        if not 1 <= options.ranker_orders <= 26:
            raise ScorerError(f"{spec}: ranker_orders={options.ranker_orders} must be between 1 and the number of "
                              "responses (4 in RMGAP). Fix: 1 (one shuffled order) or 4 (every position once).")
        super().__init__(target, spec, options)
        self.orders = options.ranker_orders

    def _settings(self) -> dict[str, object]:
        return {"max_tokens": self.max_tokens, "seed": self.options.seed, "orders": self.options.ranker_orders}

    def score_items(self, prompts: Sequence[str], responses: Sequence[Sequence[str]]) -> np.ndarray:
        return self.score_detailed(prompts, responses).values

    def score_detailed(self, prompts: Sequence[str], responses: Sequence[Sequence[str]]) -> Scored:
        if len(prompts) != len(responses):
            raise ScorerError(f"{self.spec}: got {len(prompts)} prompts but {len(responses)} response lists; "
                              "there must be one list per prompt.")
        if not prompts:
            return Scored(np.zeros((0, 4)), [])
        k = len(responses[0])
        if any(len(r) != k for r in responses) or not 2 <= k <= 26:
            raise ScorerError(f"{self.spec}: every item needs the same number of responses (2 to 26); got "
                              f"{sorted({len(r) for r in responses})}.")
        if self.orders > k:
            raise ScorerError(f"{self.spec}: ranker_orders={self.orders} but items have {k} responses. "
                              f"Fix: at most {k}.")
        seed = self.options.seed
        plans = [shown_orders(shuffle_order(p, rs, seed), self.orders) for p, rs in zip(prompts, responses)]
        requests = [ChatRequest(self.template.messages(**ranker_values(p, [rs[j] for j in shown])), self.max_tokens,
                                labels=k)
                    for p, rs, plan in zip(prompts, responses, plans) for shown in plan]
        answers = self.ask(requests, lambda c: parse_ranking(c.text, k))
        values = np.full((len(prompts), k), np.nan)
        meta = [self._item(values, i, plan, answers[i * self.orders:(i + 1) * self.orders], k)
                for i, plan in enumerate(plans)]
        self.stats.pairs_scored += len(prompts)
        return Scored(values, meta)

    def _item(self, values: np.ndarray, i: int, plan: list[list[int]], answers: list, k: int) -> dict:
        names = labels(k)
        metas = [a.meta() for a in answers]
        item: dict = {}
        usages = [m.get("usage") for m in metas]
        if all(u is not None for u in usages):
            item["usage"] = {key: sum(u[key] for u in usages) for key in ("prompt_tokens", "completion_tokens")}
        raws = [m["raw"] for m in metas]
        rankings = [a.parsed.value for a in answers if a.parsed.ok]
        firsts = [r[0] for r in rankings]
        if self.orders == 1:
            item["raw"] = raws[0]
            if firsts:
                item["first"] = firsts[0]
        else:
            item["raw"] = raws
            item["first"] = firsts  # one label per readable order
        if any(a.attempts > 1 for a in answers):
            item["attempts"] = max(a.attempts for a in answers)
        bad = [(s, a.parsed.invalid) for s, a in enumerate(answers) if not a.parsed.ok]
        if bad:
            s, why = bad[0]
            item["invalid"] = why if self.orders == 1 else f"order {s + 1} of {self.orders}: {why}"
            return item
        item["ranking"] = ">".join(rankings[0]) if self.orders == 1 else [">".join(r) for r in rankings]
        total = np.zeros(k)
        for shown, ranking in zip(plan, rankings):
            for place, label in enumerate(ranking):
                total[shown[names.index(label)]] += k - place
        values[i] = total / len(plan)
        return item
