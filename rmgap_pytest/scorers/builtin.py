"""Baselines with no reward model: what a real reward model must beat.

- ``builtin:length``: longer response scores higher, i.e. a pure verbosity
  bias. It looks fine for users who want detail and fails every user who wants
  a terse answer, which is the gap the gate exists to catch.
- ``builtin:random``: a uniform score seeded from the pair's text, so reruns
  and xdist workers agree. Expected BoN 0.25, Pair 0.5.
- ``builtin:minilm``: cosine similarity of MiniLM sentence embeddings
  (see ``minilm.py``).
- ``builtin:length-rank``: an item-level (listwise) scorer that ranks an
  item's responses by length and scores them k..1, as a listwise judge's
  ranks would be scored. It is the smallest item-level scorer, there to run
  the item-level path (cache, xdist sharing, counts) end to end; its metrics
  equal ``builtin:length``'s wherever no two responses are equally long.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..errors import ScorerError, did_you_mean
from .base import Scorer, ScorerOptions, ScoreStats

BUILTINS = ("length", "random", "minilm", "length-rank")


class LengthScorer:
    """Score = number of characters in the response."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.fingerprint = "builtin:length:v1"
        self.stats = ScoreStats()

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        self.stats.pairs_scored += len(responses)
        return np.array([float(len(r)) for r in responses], dtype=np.float64)


class RandomScorer:
    """Uniform in [0, 1), a pure function of (seed, prompt, response)."""

    def __init__(self, spec: str, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self.fingerprint = f"builtin:random:v1:seed={seed}"
        self.stats = ScoreStats()

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        self.stats.pairs_scored += len(responses)
        out = np.empty(len(responses), dtype=np.float64)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            digest = hashlib.sha256(f"{self.seed}\0{len(p)}\0{p}\0{r}".encode()).digest()
            out[i] = int.from_bytes(digest[:8], "big") / 2**64
        return out


class LengthRankScorer:
    """Item-level: the longest response gets k, the shortest 1; equal lengths keep the given order."""

    unit = "item"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.fingerprint = "builtin:length-rank:v1"
        self.stats = ScoreStats()

    def score_items(self, prompts: Sequence[str], responses: Sequence[Sequence[str]]) -> np.ndarray:
        self.stats.pairs_scored += len(responses)
        out = np.empty((len(responses), len(responses[0]) if len(responses) else 0), dtype=np.float64)
        for i, texts in enumerate(responses):
            # A ranking is a permutation: ties are broken by position, as a listwise judge must.
            order = sorted(range(len(texts)), key=lambda j: (-len(texts[j]), j))
            for rank, j in enumerate(order):
                out[i, j] = float(len(texts) - rank)
        return out


def make_builtin(target: str, spec: str, options: ScorerOptions) -> Scorer:
    if target == "length":
        return LengthScorer(spec)
    if target == "length-rank":
        return LengthRankScorer(spec)
    if target == "random":
        return RandomScorer(spec, options.seed)
    if target == "minilm":
        from .minilm import MiniLMScorer

        return MiniLMScorer(spec, options)
    raise ScorerError(f"Unknown builtin scorer {target!r} in spec {spec!r}.{did_you_mean(target, BUILTINS)} "
                      f"Builtins: {', '.join('builtin:' + b for b in BUILTINS)}.")
