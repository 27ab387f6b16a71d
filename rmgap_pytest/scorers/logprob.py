"""``logprob:PATH`` and ``dpo:PATH``: rewards read off a causal language model.

``logprob`` is the EndoRM reward (arXiv 2506.23235): the log-probabilities of
the response tokens given the prompt, aggregated by ``aggregate``: ``mean``
(default), ``sum`` or ``discounted_sum`` = sum_t gamma^t * logp_t over the
response tokens t = 0, 1, ...

``dpo`` is the DPO implicit reward (Rafailov et al. 2023, eq. 5, without the
prompt-only term that cancels between responses): ``beta * (sum_t log
pi(y_t | x, y_<t) - sum_t log pi_ref(y_t | x, y_<t))``, summed over the same
response tokens under the policy and the reference model; ``beta`` defaults to
0.1 (TRL's DPOConfig). ``aggregate='mean'`` gives the per-token mean instead,
a different reward (not a rescaling: it can flip preferences between
responses of different lengths).

Which tokens are "the response" is decided in ``_encode.py``. Log-probs are
computed in float32: the output head runs in fp32 on the trunk's hidden
states in chunks (so a 150k-token vocabulary never materializes batch x
length x vocab logits), or, for models whose forward transforms the logits
after the head (Gemma 2 soft-capping, Cohere and Granite scaling), through
the model's own forward with the head switched to fp32.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScorerError, did_you_mean
from ._encode import Encoded
from ._files import check_model_dir, custom_class, flag, read_config
from ._model import ModelScorer
from .base import ScorerOptions

__all__ = ["LogprobScorer", "DpoScorer", "aggregate", "transforms_logits"]

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


def transforms_logits(config: dict[str, Any]) -> str | None:
    """The config key by which a model's forward changes the logits after the output head, if any."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    for key in ("final_logit_softcapping", "logit_softcapping", "output_softcapping"):
        if text.get(key) not in (None, 0, 0.0):
            return key
    for key in ("logit_scale", "logits_scaling", "output_multiplier_scale", "logits_scale", "mup_width_multiplier",
                "width_multiplier"):
        if isinstance(text.get(key), (int, float)) and not math.isclose(float(text[key]), 1.0):
            return key
    return None


class _CausalLM:
    """A loaded causal LM and how to get fp32 log-probs out of it."""

    def __init__(self, model: Any, config: dict[str, Any], probe_ids: Any) -> None:
        self.model = model
        self.head = model.get_output_embeddings()
        self.why_full = transforms_logits(config)
        if self.why_full is None and (self.head is None or model.base_model is model):
            self.why_full = "no separate output head"
        if self.why_full is None and not self._fast_path_matches(probe_ids):
            self.why_full = "the probe's logits differ from base model + head"
        if self.why_full is not None and self.head is not None:
            self._head_in_fp32()

    @property
    def full_logits(self) -> bool:
        return self.why_full is not None

    def _fast_path_matches(self, ids: Any) -> bool:
        # The config names no transform; still check, to fp32 precision, that base model + head is what the
        # model's forward computes (a post-processing step with a name we do not know would show here).
        import torch

        with torch.inference_mode():
            full = self.model(input_ids=ids, use_cache=False).logits.float()
            fast = self.head(self.model.base_model(input_ids=ids, use_cache=False)[0]).float()
        return bool(torch.allclose(full, fast, rtol=1e-5, atol=1e-6))

    def _head_in_fp32(self) -> None:
        from ._hf import fp32_linear

        head = self.head
        head.forward = lambda x: fp32_linear(head, x)  # the model's own forward then post-processes fp32 logits

    def response_logprobs(self, encs: list[Encoded], batch: dict[str, Any]) -> list[np.ndarray]:
        """Per pair, log p(token | everything before it) for each scored response token (float32)."""
        import torch

        from ._hf import fp32_linear, model_inputs

        if self.full_logits:
            feats, head = self.model(**model_inputs(self.model, batch)).logits, None
        else:
            base = self.model.base_model
            feats, head = base(**model_inputs(base, batch))[0], self.head
        rows: list[int] = []
        cols: list[int] = []
        targets: list[int] = []
        counts: list[int] = []
        for row, e in enumerate(encs):
            positions = range(max(e.scored_from, 1), len(e.ids))  # token 0 has nothing to be predicted from
            rows += [row] * len(positions)
            cols += [t - 1 for t in positions]  # the hidden state before token t predicts it (right padding)
            targets += [e.ids[t] for t in positions]
            counts.append(len(positions))
        device = feats.device
        selected = feats[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
        target_t = torch.tensor(targets, device=device)
        vocab = self.model.config.get_text_config().vocab_size
        chunk = max(1, _LOGITS_CHUNK_BYTES // (4 * vocab))
        out = torch.empty(len(targets), dtype=torch.float32, device=device)
        for k in range(0, len(targets), chunk):
            logits = selected[k:k + chunk].float() if head is None else fp32_linear(head, selected[k:k + chunk])
            out[k:k + chunk] = logits.log_softmax(-1).gather(-1, target_t[k:k + chunk, None]).squeeze(-1)
        return [x.numpy() for x in out.cpu().split(counts)]


class LogprobScorer(ModelScorer):
    """Score = the aggregate log-probability of the response given the prompt."""

    kind = "logprob"
    applies = frozenset({"chat_template", "add_bos", "aggregate", "gamma"})
    needs_target = True
    default_aggregate = "mean"

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        how = options.aggregate or self.default_aggregate
        if how not in AGGREGATES:
            raise ScorerError(f"Unknown aggregate {how!r}.{did_you_mean(how, AGGREGATES)} Fix: use one of "
                              f"{', '.join(AGGREGATES)} ({flag('aggregate')}).")
        if not 0.0 < options.gamma <= 1.0:
            raise ScorerError(f"gamma={options.gamma} is outside (0, 1]. Fix: pass a discount such as 0.93.")
        self.how = how
        super().__init__(target, spec, options)
        self.lm: _CausalLM | None = None
        for path, config in self._configs():
            why = transforms_logits(config)
            if why:
                self.stats.notes.append(f"{self.kind}: {path.name}: config.json sets {why}, so log-probs come from "
                                        "the model's own logits (head in float32), not the faster hidden-state path")
        if how != "discounted_sum" and options.gamma != ScorerOptions.gamma:
            self.stats.notes.append(f"{self.kind}: option gamma={options.gamma} applies to "
                                    "aggregate=discounted_sum only and is ignored")

    def _configs(self) -> list[tuple[Path, dict[str, Any]]]:
        return [(self.path, self.config)]

    def _check_config(self) -> None:
        from ._local import embedding_hint

        hint = embedding_hint(self.path, self.config)
        if hint:
            raise ScorerError(hint)
        custom = custom_class(self.config, "AutoModelForCausalLM")
        if custom and not self.options.trust_remote_code:
            raise ScorerError(f"{self.path}: config.json's auto_map registers the repository's own class {custom} "
                              "for AutoModelForCausalLM; loading it runs that Python code. Fix: if you trust the "
                              f"repository, pass trust_remote_code=True ({flag('trust_remote_code')}).")

    def _fingerprint_options(self) -> dict[str, object]:
        extra: dict[str, object] = {"aggregate": self.how}
        if self.how == "discounted_sum":  # gamma changes nothing otherwise
            extra["gamma"] = self.options.gamma
        return {**super()._fingerprint_options(), **extra}

    def _load_lm(self, path: Path, config: dict[str, Any]) -> _CausalLM:
        from transformers import AutoModelForCausalLM

        from ._hf import load_model

        from ._hf import input_device

        adapter = self.adapter if path == self.path else None
        model = load_model(AutoModelForCausalLM, path, self.options, self.dtype, self.device, adapter=adapter)
        if self.options.device_map:
            self._torch_device = input_device(model, self.device)
        probe = self.tokenizer("A reward model reads this probe sentence.", return_tensors="pt").input_ids
        lm = _CausalLM(model, config, probe[:, :16].to(self.device))
        if lm.full_logits and transforms_logits(config) is None:  # the config-named case is noted at start-up
            self.stats.notes.append(f"{self.kind}: {path.name}: log-probs from the model's own logits "
                                    f"({lm.why_full}), head in float32")
        return lm

    def _load(self) -> None:
        from ._hf import load_tokenizer

        self.tokenizer = load_tokenizer(self.tokenizer_path, self.options)
        self.encoder = self._make_encoder()
        self.lm = self._load_lm(self.path, self.config)

    def _aggregates(self, lm: _CausalLM, encs: list[Encoded], batch: dict[str, Any]) -> np.ndarray:
        per_pair = lm.response_logprobs(encs, batch)
        return np.array([aggregate(lp, self.how, self.options.gamma) for lp in per_pair])

    def _collate(self, encs: list[Encoded]) -> dict[str, Any]:
        from ._hf import collate

        return collate(encs, self.pad_id, self.device)

    def _score_batch(self, encs: list[Encoded]) -> np.ndarray:
        assert self.lm is not None
        return self._aggregates(self.lm, encs, self._collate(encs))


class DpoScorer(LogprobScorer):
    """Score = beta * (policy - reference) summed response log-probs: the DPO implicit reward."""

    kind = "dpo"
    applies = frozenset({"chat_template", "add_bos", "aggregate", "gamma", "ref_model", "beta"})
    default_aggregate = "sum"

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        if not options.ref_model:
            raise ScorerError(f"{spec}: a dpo scorer needs the reference model the policy was trained "
                              f"against. Fix: pass ref_model=PATH ({flag('ref_model')}), usually the SFT "
                              "checkpoint; or use logprob:PATH for the policy's log-probs alone.")
        if not (isinstance(options.beta, (int, float)) and options.beta > 0 and math.isfinite(options.beta)):
            raise ScorerError(f"beta={options.beta!r} must be a positive number. Fix: pass the beta the policy "
                              f"was trained with, e.g. 0.1 ({flag('beta')}).")
        self.ref_path = check_model_dir(Path(options.ref_model), options, role="reference model")
        self.ref_config = read_config(self.ref_path)
        super().__init__(target, spec, options)
        self.ref: _CausalLM | None = None

    def _model_dirs(self) -> dict[str, Path]:
        return {**super()._model_dirs(), "ref": self.ref_path}

    def _configs(self) -> list[tuple[Path, dict[str, Any]]]:
        return [(self.path, self.config)] + ([] if self.ref_path == self.path else [(self.ref_path, self.ref_config)])

    def _fingerprint_options(self) -> dict[str, object]:
        return {**super()._fingerprint_options(), "beta": float(self.options.beta)}

    def _load(self) -> None:
        super()._load()
        if self.ref_path == self.path:  # the same files: the reward is exactly zero, skip the second model
            self.ref = None
            self.stats.notes.append(f"{self.kind}: ref_model is the policy itself; every reward is 0")
            return
        self.ref = self._load_lm(self.ref_path, self.ref_config)
        assert self.lm is not None
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
        return self.options.beta * (self._aggregates(self.lm, encs, batch) - self._aggregates(self.ref, encs, batch))
