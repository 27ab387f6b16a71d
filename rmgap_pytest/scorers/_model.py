"""The base class of model-backed scorers: cheap construction, lazy weights, batched scoring."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batching import default_token_budget, plan_batches, run_batches
from ..errors import ScorerError
from ._encode import Encoded, encode_pairs, truncate
from ._hf import check_model_dir, fingerprint, resolve_device, resolve_dtype
from .base import Scored, ScorerOptions, ScoreStats

__all__ = ["ModelScorer"]


class ModelScorer:
    """Lazy-loading base for transformers scorers: encode, truncate, batch, restore order.

    The constructor only reads files (fingerprint, config checks), so a fully
    cached run never loads weights. Subclasses set ``kind`` and implement
    ``_load`` (sets ``tokenizer``, ``max_length``, ``style``) and
    ``_score_batch``; scoring runs under ``torch.inference_mode``.
    """

    kind = "model"
    style = "chat"  # encoding style: chat | pair | concat (see _encode.py)

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        self.spec, self.options = spec, options
        self.stats = ScoreStats()
        self.path = check_model_dir(Path(target), options)
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(options.dtype, self.device)
        self.tokenizer: Any = None
        self.max_length: int | None = None
        self.fingerprint: str | None = fingerprint(self.kind, self._fingerprint_options(), self._model_dirs())

    def _fingerprint_options(self) -> dict[str, object]:
        # The resolved dtype, not "auto": auto means bf16 on one machine and fp32 on another.
        return {"dtype": str(self.dtype).removeprefix("torch."), "max_length": self.options.max_length,
                "trust_remote_code": self.options.trust_remote_code}

    def _model_dirs(self) -> dict[str, Path]:
        return {"model": self.path}

    def _load(self) -> None:
        raise NotImplementedError

    def _score_batch(self, encs: list[Encoded]) -> np.ndarray:
        raise NotImplementedError

    def _ensure_loaded(self) -> None:
        if not self.stats.model_loaded:
            self._load()
            self.stats.model_loaded = True

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        # Any id works (the attention mask marks real tokens); prefer the tokenizer's own.
        return next((i for i in (tok.pad_token_id, tok.eos_token_id) if i is not None), 0)

    def _plan(self, lengths: Sequence[int]) -> list[list[int]]:
        budget = self.options.token_budget
        if budget is None:
            budget = default_token_budget(self.device.type)
        return plan_batches(lengths, token_budget=budget, batch_size=self.options.batch_size)

    def _check_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> tuple[list[str], list[str]]:
        prompts, responses = list(prompts), list(responses)
        if len(prompts) != len(responses):
            raise ScorerError(f"{self.spec}: got {len(prompts)} prompts but {len(responses)} responses; "
                              "score() takes parallel lists.")
        return prompts, responses

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        return self.score_detailed(prompts, responses).values

    def score_detailed(self, prompts: Sequence[str], responses: Sequence[str]) -> Scored:
        """Scores plus ``{"truncated": bool}`` per pair, stored with each score (report counts)."""
        prompts, responses = self._check_pairs(prompts, responses)
        if not prompts:
            return Scored(np.zeros(0, dtype=np.float64), [])
        self._ensure_loaded()
        encs = [truncate(e, self.max_length)
                for e in encode_pairs(self.tokenizer, prompts, responses, style=self.style)]
        with torch.inference_mode():
            scores = run_batches(self._plan([len(e.ids) for e in encs]),
                                 lambda idx: self._score_batch([encs[i] for i in idx]), len(encs),
                                 progress=self.options.progress, desc=f"rmgap {self.kind}")
        self.stats.pairs_scored += len(encs)
        self.stats.truncated += sum(e.truncated for e in encs)
        return Scored(scores, [{"truncated": bool(e.truncated)} for e in encs])
