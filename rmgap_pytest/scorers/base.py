"""The one small interface every reward-model backend implements.

A scorer turns parallel lists of prompts and responses into one float per
pair. Everything else (batching across the benchmark, caching, progress,
coordination between pytest-xdist workers) lives outside the scorer, so a new
kind of reward model is one module with one class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Scorer(Protocol):
    """``score(prompts, responses)`` returns a float array, one value per pair.

    ``spec`` is the user's spec string. ``fingerprint`` identifies everything
    that changes the scores (kind, options, model files); ``None`` means the
    scores must not be cached. Constructing a scorer must be cheap (no weights
    loaded) so a fully cached run never touches the model.
    """

    spec: str
    fingerprint: str | None
    stats: "ScoreStats"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...


@dataclass
class ScoreStats:
    """Counters a scorer fills in; the report shows them."""

    pairs_scored: int = 0  # pairs the model actually computed (cache misses)
    cache_hits: int = 0  # pairs served from the score cache
    truncated: int = 0  # pairs whose prompt lost its start to fit max_length
    model_loaded: bool = False
    notes: list[str] = field(default_factory=list)  # e.g. "bare path detected as classifier"


@dataclass
class ScorerOptions:
    """Options shared by all kinds; a kind ignores what does not apply to it.

    Defaults are chosen for a correct, fast run on whatever hardware is present.
    """

    device: str = "auto"  # auto | cpu | cuda | cuda:N ; auto takes CUDA when present
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16 ; see scorers/_files.py for auto
    batch_size: int | None = None  # fixed pairs per batch; None = use token_budget
    token_budget: int | None = None  # padded tokens per batch when batch_size is None; None = per device (batching.py)
    max_length: int | None = None  # None = the model's own limit
    ref_model: str | None = None  # dpo: the reference model
    trust_remote_code: bool = False  # run a model repo's own Python only when asked
    allow_pickle: bool = False  # load *.bin/*.pt weights only when asked (safetensors otherwise)
    progress: bool = True  # tqdm bar with pairs/s
    label: int | None = None  # classifier: which logit of a multi-label head
    aggregate: str | None = None  # logprob: mean (default) | sum | discounted_sum; dpo: sum (default) or these
    beta: float = 0.1  # dpo: the DPO implicit reward is beta * (policy - reference) summed log-probs (TRL's default)
    chat_template: str | None = None  # a Jinja file used instead of the tokenizer's chat template
    add_bos: bool = False  # chat layout: prepend the tokenizer's BOS when the template does not write it
    pool: str = "last"  # classifier: last (the pair's last token) | last_non_pad (transformers' pad-id rule)
    gamma: float = 0.93  # discounted_sum discount, as the EndoRM reference
    version: str | None = None  # python: scorers are cached only when a version is named
    seed: int = 0  # builtin:random
