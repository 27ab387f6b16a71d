"""The small interfaces every reward-model backend implements.

Two kinds of scorer sit side by side:

- a **pair** scorer turns parallel lists of prompts and responses into one
  float per (prompt, response) pair (classifiers, log-prob and DPO rewards,
  pointwise judges);
- an **item** scorer (``unit = "item"``) sees one prompt with all its k
  responses at once and returns k floats per item (listwise rankers, whose
  scores are the ranks).

Everything else (batching across the benchmark, caching, progress,
coordination between pytest-xdist workers) lives outside the scorer, so a new
kind of reward model is one module with one class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["ItemScorer", "Scored", "Scorer", "ScoreStats", "ScorerOptions", "unit_of"]


@runtime_checkable
class Scorer(Protocol):
    """``score(prompts, responses)`` returns a float array of shape (n,), one value per pair.

    ``spec`` is the user's spec string. ``fingerprint`` identifies everything
    that changes the scores (kind, options, model files); ``None`` means the
    scores must not be cached. Constructing a scorer must be cheap (no weights
    loaded) so a fully cached run never touches the model. ``unit`` may be left
    out or set to ``"pair"``.

    Optional: ``score_detailed(prompts, responses) -> Scored`` gives the same
    values plus one JSON-able dict (or None) per pair, stored with the score
    (standard key: ``"truncated": bool``).
    """

    spec: str
    fingerprint: str | None
    stats: "ScoreStats"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class ItemScorer(Protocol):
    """``unit = "item"``; ``score_items(prompts, responses)`` returns shape (n, k).

    ``prompts[i]`` is one item's prompt and ``responses[i]`` its k responses;
    row i holds their scores in the given response order (a listwise ranker
    returns ranks: k for its first choice down to 1). Optional
    ``score_detailed`` takes the same arguments and returns ``Scored`` with one
    dict per item (judges: ``"raw"``, ``"invalid"``, ``"usage"``, ``"first"``).
    """

    unit: str
    spec: str
    fingerprint: str | None
    stats: "ScoreStats"

    def score_items(self, prompts: Sequence[str], responses: Sequence[Sequence[str]]) -> np.ndarray: ...


@dataclass
class Scored:
    """Scores plus per-row metadata: ``values`` (n,) for pairs or (n, k) for items, ``meta`` n entries."""

    values: np.ndarray
    meta: list[dict[str, Any] | None]


def unit_of(scorer: object) -> str:
    """``"item"`` for item-level scorers, ``"pair"`` otherwise (the attribute may be absent)."""
    return "item" if getattr(scorer, "unit", "pair") == "item" else "pair"


@dataclass
class ScoreStats:
    """Per-process counters a scorer fills in. The run's report counts come from the score
    store instead (``counts.py``), which adds up every process of the run."""

    pairs_scored: int = 0  # pairs (items, for item scorers) this process's model computed
    cache_hits: int = 0  # pairs this process did not compute itself (stored earlier or by another process)
    truncated: int = 0  # pairs whose prompt lost its start to fit max_length
    model_loaded: bool = False
    notes: list[str] = field(default_factory=list)  # e.g. "bare path detected as classifier"


@dataclass
class ScorerOptions:
    """Options shared by all kinds; a kind ignores what does not apply to it.

    Defaults are chosen for a correct, fast run on whatever hardware is present.
    """

    device: str = "auto"  # auto | cpu | cuda | cuda:N ; auto takes CUDA when present
    device_map: str | None = None  # auto | balanced | balanced_low_0 | sequential: one model across the GPUs
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16 ; see scorers/_files.py for auto
    batch_size: int | None = None  # fixed pairs per batch; None = use token_budget
    token_budget: int | None = None  # padded tokens per batch when batch_size is None; None = per device (batching.py)
    max_length: int | None = None  # None = the model's own limit
    ref_model: str | None = None  # dpo: the reference model
    trust_remote_code: bool = False  # run a model repo's own Python only when asked
    allow_pickle: bool = False  # load *.bin/*.pt weights only when asked (safetensors otherwise)
    progress: bool = True  # progress display (a bar on a terminal, plain lines in a log)
    label: int | None = None  # classifier: which logit of a multi-label head
    aggregate: str | None = None  # logprob: mean (default) | sum | discounted_sum; dpo: sum (default) or these
    beta: float = 0.1  # dpo: the DPO implicit reward is beta * (policy - reference) summed log-probs (TRL's default)
    chat_template: str | None = None  # a Jinja file used instead of the tokenizer's chat template
    add_bos: bool = False  # chat layout: prepend the tokenizer's BOS when the template does not write it
    pool: str = "last"  # classifier: last (the pair's last token) | last_non_pad (transformers' pad-id rule)
    gamma: float = 0.93  # discounted_sum discount, as the EndoRM reference
    version: str | None = None  # python: scorers are cached only when a version is named
    seed: int = 0  # builtin:random; judges: the per-item shuffle of ranker: and the server's sampling seed
    concurrency: int | None = None  # requests in flight; None = _http.DEFAULT_CONCURRENCY (http(s): 1)
    api_model: str | None = None  # remote kinds: the served model name to request; None = the server's only model
    tokenizer: str | None = None  # vllm:/sglang: render and truncate on the client with these tokenizer files
    judge_template: str | None = None  # verifier/judge/ranker: a prompt template file (scorers/_prompts.py)
    judge_score: str = "rating"  # judge: rating (the greedy 1-10) | expected (probability-weighted, needs log-probs)
    judge_max_tokens: int | None = None  # judge/ranker: generated tokens per answer; None = 2048 (room to reason)
    ranker_orders: int = 1  # ranker: orders each item is asked in (cyclic shifts of its shuffle); ranks averaged
