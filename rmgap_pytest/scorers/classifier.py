"""``classifier:PATH``: a sequence-classification reward model (one logit per pair).

Decoder reward models (Llama, Qwen, Gemma, ... ``*ForSequenceClassification``)
apply their ``score`` head to every token and pool the logit at the last
non-pad token found by comparing ids with ``pad_token_id``. When pad == EOS
and the chat template ends with EOS, that finds the wrong token, so here the
head is applied to the hidden state at the last real token taken from the
attention mask. Encoder classifiers (BERT-style pooler heads, cross-encoders)
already pool the whole sequence and keep their own logits.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from ..errors import ScorerError
from ._encode import Encoded
from ._hf import collate, load_model, load_tokenizer, model_inputs, resolve_max_length
from ._model import ModelScorer
from .base import ScorerOptions

__all__ = ["ClassifierScorer"]


def _head_label(num_labels: int, label: int | None, where: str) -> int:
    """The logit column that is the reward; a multi-label head needs ``label``."""
    if label is None:
        if num_labels == 1:
            return 0
        raise ScorerError(f"{where}: the classification head has {num_labels} labels, but a reward model has "
                          f"one. Fix: pass label=K (--rm-label K) to score with logit K (0..{num_labels - 1}), "
                          "or use a single-logit reward model.")
    if not 0 <= label < num_labels:
        raise ScorerError(f"{where}: label={label} but the head has {num_labels} label(s). "
                          f"Fix: pass a label between 0 and {num_labels - 1}.")
    return label


def _config_num_labels(config: dict) -> int:
    # PretrainedConfig's own rule: id2label decides; without it, num_labels; default 2.
    return len(config["id2label"]) if config.get("id2label") else int(config.get("num_labels", 2))


def _check_architecture(config: dict, where: str) -> None:
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ScorerError(f"{where}: config.json lists {', '.join(archs)}, not a *ForSequenceClassification "
                          "reward model; loaded as a classifier its reward head would be random. Fix: use "
                          "logprob:PATH (or dpo:PATH) for a language model, or point at the reward model.")


class ClassifierScorer(ModelScorer):
    """Score = the reward head's logit at the pair's last real token."""

    kind = "classifier"

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        super().__init__(target, spec, options)
        config = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        _check_architecture(config, str(self.path))
        self.label = _head_label(_config_num_labels(config), options.label, str(self.path))  # fail before loading
        self.model = None
        self._token_head: torch.nn.Module | None = None

    def _fingerprint_options(self) -> dict[str, object]:
        return {**super()._fingerprint_options(), "label": self.options.label}

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification

        self.tokenizer = load_tokenizer(self.path, self.options)
        self.model = load_model(AutoModelForSequenceClassification, self.path, self.options, self.dtype, self.device)
        self.label = _head_label(self.model.config.num_labels, self.options.label, str(self.path))
        self.style = "chat" if getattr(self.tokenizer, "chat_template", None) else "pair"
        self.max_length = resolve_max_length(self.options.max_length, self.tokenizer, self.model.config)
        head = getattr(self.model, "score", None)
        if isinstance(head, torch.nn.Module) and self.model.base_model is not self.model:
            self._token_head = head

    def _score_batch(self, encs: list[Encoded]) -> np.ndarray:
        side = self.tokenizer.padding_side
        batch = collate(encs, self.pad_id, side, self.device)
        if self._token_head is not None:
            base = self.model.base_model
            hidden = base(**model_inputs(base, batch, side))[0]
            last = hidden[torch.arange(len(encs), device=hidden.device), batch["last"]]
            logits = self._token_head(last)
        else:
            logits = self.model(**model_inputs(self.model, batch, side)).logits
        return logits[:, self.label].float().cpu().numpy()
