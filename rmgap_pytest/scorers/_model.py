"""The base class of model-backed scorers: file-only construction, lazy weights, batched scoring.

Construction reads files only (config.json, tokenizer files, the chat template,
safetensors headers and slices) and imports neither torch nor transformers, so
a fully cached run costs what reading the cache costs. It also decides
everything that can be wrong before scoring starts: the device and dtype
(``_files.py``), ``max_length`` against the model's positions, the input
layout and its notes (``render.py``), and options that do not apply to the kind.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..batching import default_token_budget, plan_batches, run_batches
from ..errors import ScorerError
from ._encode import Encoded, PairEncoder
from ._files import check_max_length, check_model_dir, fingerprint, read_config, resolve_device_name, \
    resolve_dtype_name
from ._template import PINNED_DATE
from .base import Scored, ScorerOptions, ScoreStats
from .render import ModelFormat, model_format

__all__ = ["ModelScorer"]

_ALWAYS = {"device", "device_map", "dtype", "batch_size", "token_budget", "max_length", "trust_remote_code",
           "allow_pickle", "progress"}
_DEFAULTS = ScorerOptions()


class ModelScorer:
    """Lazy-loading base for transformers scorers: encode, truncate, batch, restore order.

    Subclasses set ``kind`` and ``applies`` (the options they read beyond the
    common ones) and implement ``_load`` (sets ``tokenizer`` and the model) and
    ``_score_batch``; scoring runs under ``torch.inference_mode``.
    """

    kind = "model"
    applies: frozenset[str] = frozenset({"chat_template", "add_bos"})
    needs_target = False  # log-prob scorers need where the response's scored tokens start

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        from ._local import read_adapter, resolve_base, resolve_local

        self.spec, self.options = spec, options
        self.stats = ScoreStats()
        target_path = resolve_local(target)
        self.adapter = read_adapter(target_path) if target_path.is_dir() else None
        if self.adapter is not None:  # PEFT: the base model's files, the adapter merged in at load
            self.path = check_model_dir(resolve_base(self.adapter), options, role="base model")
            self.stats.notes.append(f"{self.kind}: PEFT adapter {target_path} on base model {self.path}, merged at "
                                    "load")
        else:
            self.path = check_model_dir(target_path, options)
        # Tokenizer and chat template: the adapter's own when it saved them, else the base model's.
        self.tokenizer_path = (self.adapter.path if self.adapter is not None
                               and (self.adapter.path / "tokenizer_config.json").is_file() else self.path)
        self.config = read_config(self.path)
        self.device_name = resolve_device_name(options.device)
        self.dtype_name = resolve_dtype_name(options.dtype, self.device_name)
        self.max_length = check_max_length(options.max_length, self.config, self.path)
        self._check_config()
        self.format: ModelFormat | None = self._format()
        if self.format is not None:
            self.stats.notes.extend(f"{self.kind}: {n}" for n in self.format.notes)
        self._note_ignored_options()
        self.tokenizer: Any = None
        self.encoder: PairEncoder | None = None
        self._torch_device: Any = None
        self.fingerprint: str | None = fingerprint(self.kind, self._fingerprint_options(), self._model_dirs())

    # -- decided from the files ---------------------------------------------------------------------------------
    def _check_config(self) -> None:
        """Kind-specific checks of config.json before anything loads."""

    def _format(self) -> ModelFormat | None:
        return model_format(self.tokenizer_path, self.config, self.kind, chat_template=self.options.chat_template,
                            add_bos=self.options.add_bos)

    def _note_ignored_options(self) -> None:
        for f in dataclasses.fields(ScorerOptions):
            value = getattr(self.options, f.name)
            if f.name in _ALWAYS or f.name in self.applies or value == getattr(_DEFAULTS, f.name):
                continue
            self.stats.notes.append(f"{self.kind}: option {f.name}={value!r} does not apply to {self.kind} "
                                    "scorers and is ignored")
        if self.options.add_bos and self.format is not None and self.format.layout != "chat":
            self.stats.notes.append(f"{self.kind}: option add_bos=True applies to chat templates only and is ignored")

    def _fingerprint_options(self) -> dict[str, object]:
        # The resolved dtype and device type, not "auto": auto means bf16 on one machine and fp32 on another.
        fmt = self.format
        out: dict[str, object] = {"dtype": self.dtype_name, "device": self.device_name.split(":")[0],
                                  "max_length": self.max_length, "trust_remote_code": self.options.trust_remote_code}
        if fmt is not None:
            out["layout"] = fmt.layout
            if fmt.layout == "chat":
                # The template's text (an override file is not among the model's files), its pinned date,
                # and whether a BOS is prepended: all change the scored tokens.
                out["template"] = hashlib.sha256((fmt.template or "").encode()).hexdigest()
                out["template_date"] = PINNED_DATE.date().isoformat()
                out["add_bos"] = bool(self.options.add_bos)
        return out

    def _model_dirs(self) -> dict[str, Path]:
        dirs = {"model": self.path}
        if self.adapter is not None:
            dirs["adapter"] = self.adapter.path
        return dirs

    def resolved_settings(self) -> dict[str, object]:
        """What ``auto`` and the defaults became on this machine (report.json ``meta.resolved``)."""
        fmt = self.format
        budget = self.options.token_budget or default_token_budget(self.device_name.split(":")[0])
        out: dict[str, object] = {
            "kind": self.kind, "dtype": self.dtype_name, "device": self.device_name,
            "device_map": self.options.device_map, "batch": (f"{self.options.batch_size} pairs" if self.options.batch_size
                                                             else f"token budget {budget}"),
            "max_length": self.max_length, "layout": fmt.layout if fmt is not None else None,
            "template_sha256": (hashlib.sha256((fmt.template or "").encode()).hexdigest()
                                if fmt is not None and fmt.layout == "chat" else None),
            "model_dir": str(self.path), "adapter": str(self.adapter.path) if self.adapter else None}
        return {k: v for k, v in out.items() if v is not None}

    # -- computing ----------------------------------------------------------------------------------------------
    @property
    def device(self) -> Any:
        """The torch device (imports torch; refuses one torch cannot use, see ``_hf.torch_device``)."""
        if self._torch_device is None:
            from ._hf import torch_device

            self._torch_device = torch_device(self.device_name, self.options.device)
        return self._torch_device

    @property
    def dtype(self) -> Any:
        from ._hf import torch_dtype

        return torch_dtype(self.dtype_name)

    def _load(self) -> None:
        raise NotImplementedError

    def _score_batch(self, encs: list[Encoded]) -> np.ndarray:
        raise NotImplementedError

    def _ensure_loaded(self) -> None:
        if not self.stats.model_loaded:
            self._load()
            self.stats.model_loaded = True

    def _make_encoder(self) -> PairEncoder:
        fmt = self.format
        assert fmt is not None and self.tokenizer is not None
        template = None
        if fmt.layout == "chat":
            loaded = None if self.options.chat_template else self.tokenizer.get_chat_template()
            if loaded is not None and loaded != fmt.template:
                raise ScorerError(f"{self.path}: transformers loaded a different chat template than the one in "
                                  f"{fmt.template_source}, so the fingerprint would not describe the scored input. "
                                  "Fix: keep one template (chat_template.jinja) in the model directory.")
            template = fmt.template
        return PairEncoder.from_hf(self.tokenizer, fmt.layout, chat_template=template, add_bos=self.options.add_bos)

    @property
    def pad_id(self) -> int:
        # Any id works for the trunk (the attention mask marks real tokens); models whose own forward
        # looks for the pad id get the one their config names.
        config = getattr(getattr(self, "model", None), "config", None)
        candidates = (getattr(config, "pad_token_id", None), self.tokenizer.pad_token_id, self.tokenizer.eos_token_id)
        return next((int(i) for i in candidates if isinstance(i, int)), 0)

    def _plan(self, lengths: Sequence[int]) -> list[list[int]]:
        budget = self.options.token_budget
        if budget is None:
            budget = default_token_budget(self.device_name.split(":")[0])
        return plan_batches(lengths, token_budget=budget, batch_size=self.options.batch_size)

    def _check_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> tuple[list[str], list[str]]:
        prompts, responses = list(prompts), list(responses)
        if len(prompts) != len(responses):
            raise ScorerError(f"{self.spec}: got {len(prompts)} prompts but {len(responses)} responses; "
                              "score() takes parallel lists.")
        return prompts, responses

    def encode(self, prompts: Sequence[str], responses: Sequence[str]) -> list[Encoded]:
        """The pairs as this scorer feeds them to the model (loads the tokenizer, not the weights)."""
        if self.encoder is None:
            self._ensure_loaded()
        assert self.encoder is not None
        return self.encoder.encode(prompts, responses, max_length=self.max_length, with_target=self.needs_target)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        return self.score_with_flags(prompts, responses)[0]

    def score_detailed(self, prompts: Sequence[str], responses: Sequence[str]) -> Scored:
        """Scores plus ``{"truncated": bool}`` per pair, stored with each score (report counts)."""
        scores, flags = self.score_with_flags(prompts, responses)
        return Scored(scores, [{"truncated": bool(f)} for f in flags])

    def score_with_flags(self, prompts: Sequence[str], responses: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """Scores (float64, one per pair) and, per pair, whether truncation cut it."""
        prompts, responses = self._check_pairs(prompts, responses)
        if not prompts:
            return np.zeros(0, dtype=np.float64), []
        self._ensure_loaded()
        encs = self.encode(prompts, responses)
        import torch

        with torch.inference_mode():
            scores = run_batches(self._plan([len(e.ids) for e in encs]),
                                 lambda idx: self._score_batch([encs[i] for i in idx]), len(encs),
                                 progress=self.options.progress, desc=f"rmgap {self.kind}")
        flags = [e.truncated for e in encs]
        self.stats.pairs_scored += len(encs)
        self.stats.truncated += sum(flags)
        return scores, flags
