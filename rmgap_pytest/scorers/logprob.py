"""``logprob:PATH`` and ``dpo:PATH``: rewards read off a causal language model.

``logprob`` is the EndoRM reward (arXiv 2506.23235): the log-probabilities
of the response tokens given the prompt, aggregated by ``aggregate``:
``mean``, ``sum`` or ``discounted_sum`` = sum_t gamma^t * logp_t over the
response tokens t = 0, 1, ... ``dpo`` is the DPO implicit reward: the policy's
aggregate minus the reference model's (beta only rescales it, so it is left
out: rankings and accuracies do not change).

Which tokens are "the response" (chat template or plain concatenation, and
tokens merged across the boundary) is decided in ``_encode.py``. Log-probs are
computed from the final hidden states in chunks, so a 150k-token vocabulary
never materializes batch x length x vocab logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ScorerError, did_you_mean
from ._encode import Encoded
from ._hf import check_model_dir, collate, load_model, load_tokenizer, model_inputs, resolve_max_length
from ._model import ModelScorer
from .base import ScorerOptions

__all__ = ["LogprobScorer", "DpoScorer", "aggregate"]

AGGREGATES = ("mean", "sum", "discounted_sum")
_LOGITS_CHUNK_BYTES = 1 << 28  # ~256 MB of fp32 logits per head chunk


def aggregate(logprobs: np.ndarray, how: str, gamma: float) -> float:
    """One reward from a response's token log-probs (mean of none is NaN; sums of none are 0)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    if how == "mean":
        return float(lp.mean()) if lp.size else float("nan")
    if how == "sum":
        return float(lp.sum())
    return float((gamma ** np.arange(lp.size) * lp).sum())


class _CausalLM:
    """A loaded causal LM and how to get log-probs out of it."""

    def __init__(self, model: torch.nn.Module, probe_ids: torch.Tensor) -> None:
        self.model = model
        self.head = model.get_output_embeddings()
        self.full_logits = self.head is None or model.base_model is model or not self._fast_path_matches(probe_ids)

    def _fast_path_matches(self, ids: torch.Tensor) -> bool:
        # Some families post-process logits (Gemma soft-capping, Cohere/Granite scaling).
        # Check once, on a short probe, that base model + output head reproduces the
        # model's own logits; otherwise take the full-logits path (more memory, always right).
        with torch.inference_mode():
            full = self.model(input_ids=ids, use_cache=False).logits.float().log_softmax(-1)
            fast = self.head(self.model.base_model(input_ids=ids, use_cache=False)[0]).float().log_softmax(-1)
        return bool(torch.allclose(full, fast, atol=1e-2, rtol=0))

    def response_logprobs(self, encs: list[Encoded], batch: dict[str, torch.Tensor], side: str) -> list[np.ndarray]:
        """Per pair, log p(token | everything before it) for each response token."""
        if self.full_logits:
            feats, head = self.model(**model_inputs(self.model, batch, side)).logits, None
        else:
            base = self.model.base_model
            feats, head = base(**model_inputs(base, batch, side))[0], self.head
        width = feats.shape[1]
        rows: list[int] = []
        cols: list[int] = []
        targets: list[int] = []
        counts: list[int] = []
        for row, e in enumerate(encs):
            shift = width - len(e.ids) if side == "left" else 0
            positions = range(max(e.response[0], 1), len(e.ids))  # token 0 has nothing to be predicted from
            rows += [row] * len(positions)
            cols += [shift + t - 1 for t in positions]  # the hidden state before token t predicts it
            targets += [e.ids[t] for t in positions]
            counts.append(len(positions))
        device = feats.device
        selected = feats[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
        target_t = torch.tensor(targets, device=device)
        vocab = self.model.config.get_text_config().vocab_size
        chunk = max(1, _LOGITS_CHUNK_BYTES // (4 * vocab))
        out = torch.empty(len(targets), dtype=torch.float32, device=device)
        for k in range(0, len(targets), chunk):
            logits = selected[k:k + chunk] if head is None else head(selected[k:k + chunk])
            out[k:k + chunk] = logits.float().log_softmax(-1).gather(-1, target_t[k:k + chunk, None]).squeeze(-1)
        return [x.numpy() for x in out.cpu().split(counts)]


class LogprobScorer(ModelScorer):
    """Score = the aggregate log-probability of the response given the prompt."""

    kind = "logprob"

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        if options.aggregate not in AGGREGATES:
            raise ScorerError(f"Unknown aggregate {options.aggregate!r}.{did_you_mean(options.aggregate, AGGREGATES)}"
                              f" Fix: use one of {', '.join(AGGREGATES)}.")
        if not 0.0 < options.gamma <= 1.0:
            raise ScorerError(f"gamma={options.gamma} is outside (0, 1]. Fix: pass a discount such as 0.93.")
        super().__init__(target, spec, options)
        self.lm: _CausalLM | None = None

    def _fingerprint_options(self) -> dict[str, object]:
        extra: dict[str, object] = {"aggregate": self.options.aggregate}
        if self.options.aggregate == "discounted_sum":  # gamma changes nothing otherwise
            extra["gamma"] = self.options.gamma
        return {**super()._fingerprint_options(), **extra}

    def _load_lm(self, path: Path) -> _CausalLM:
        from transformers import AutoModelForCausalLM

        model = load_model(AutoModelForCausalLM, path, self.options, self.dtype, self.device)
        probe = self.tokenizer("A reward model reads this probe sentence.", return_tensors="pt").input_ids
        return _CausalLM(model, probe[:, :16].to(self.device))

    def _load(self) -> None:
        self.tokenizer = load_tokenizer(self.path, self.options)
        self.lm = self._load_lm(self.path)
        self.style = "chat" if getattr(self.tokenizer, "chat_template", None) else "concat"
        self.max_length = resolve_max_length(self.options.max_length, self.tokenizer, self.lm.model.config)

    def _aggregates(self, lm: _CausalLM, encs: list[Encoded], batch: dict[str, torch.Tensor]) -> np.ndarray:
        per_pair = lm.response_logprobs(encs, batch, self.tokenizer.padding_side)
        return np.array([aggregate(lp, self.options.aggregate, self.options.gamma) for lp in per_pair])

    def _collate(self, encs: list[Encoded]) -> dict[str, torch.Tensor]:
        return collate(encs, self.pad_id, self.tokenizer.padding_side, self.device)

    def _score_batch(self, encs: list[Encoded]) -> np.ndarray:
        assert self.lm is not None
        return self._aggregates(self.lm, encs, self._collate(encs))


class DpoScorer(LogprobScorer):
    """Score = policy aggregate - reference aggregate (the DPO implicit reward, beta = 1)."""

    kind = "dpo"

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        if not options.ref_model:
            raise ScorerError(f"{spec}: a dpo scorer needs the reference model the policy was trained "
                              "against. Fix: pass ref_model=PATH (--rm-ref-model PATH), usually the SFT "
                              "checkpoint; or use logprob:PATH for the policy's log-probs alone.")
        self.ref_path = check_model_dir(Path(options.ref_model), options, role="reference model")
        super().__init__(target, spec, options)
        self.ref: _CausalLM | None = None

    def _model_dirs(self) -> dict[str, Path]:
        return {**super()._model_dirs(), "ref": self.ref_path}

    def _load(self) -> None:
        super()._load()
        if self.ref_path == self.path:  # the same files: the reward is exactly zero, skip the second model
            self.ref = None
            self.stats.notes.append(f"{self.spec}: ref_model is the policy itself; every reward is 0")
            return
        self.ref = self._load_lm(self.ref_path)
        vocab = (self.lm.model.config.get_text_config().vocab_size, self.ref.model.config.get_text_config().vocab_size)
        if vocab[0] != vocab[1]:
            raise ScorerError(f"Policy {str(self.path)!r} has a vocabulary of {vocab[0]} tokens but reference "
                              f"{str(self.ref_path)!r} has {vocab[1]}; DPO compares the same tokens under both. "
                              "Fix: pass the reference checkpoint the policy was trained from.")

    def _score_batch(self, encs: list[Encoded]) -> np.ndarray:
        assert self.lm is not None
        if self.ref is None:
            return np.zeros(len(encs))
        batch = self._collate(encs)
        return self._aggregates(self.lm, encs, batch) - self._aggregates(self.ref, encs, batch)
