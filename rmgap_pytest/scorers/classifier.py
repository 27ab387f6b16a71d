"""``classifier:PATH``: a sequence-classification reward model (one reward per pair).

Three ways a model yields its reward, chosen at load:

- Stock decoder classifiers (``LlamaForSequenceClassification`` and the
  other transformers classes with a ``score`` head on every token): the head
  is applied, in float32, to the hidden state of the pair's last token, found
  from the attention mask. transformers' own forward finds it by comparing ids
  with ``pad_token_id``, which picks the wrong token when pad == EOS and the
  input ends with EOS (``pool='last_non_pad'`` restores that rule). This path
  is taken only after a probe shows it equals the model's forward.
- Repository code (``auto_map`` in config.json registers a class for
  ``AutoModelForSequenceClassification``, or a ``...RewardModel`` class for
  ``AutoModel`` as InternLM2 does; ``trust_remote_code``): the
  model's own forward runs, and its documented reward output is read:
  ``score``, else ``logits``, ``rewards`` or ``reward``; 1-D ``(batch,)`` or
  ``(batch, labels)``. Multi-objective heads with gating (ArmoRM-style) and
  value heads are scored exactly as their model card computes them.
- Other stock classes (BERT, DeBERTa, RoBERTa, ... encoders): their own
  forward and logits.

In bf16 everything after the trunk runs in float32 (``_hf.fp32_linear`` /
``fp32_heads``), so rounding never turns distinct rewards into ties.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ScorerError
from ._encode import Encoded
from ._files import flag, reward_class
from ._model import ModelScorer

__all__ = ["ClassifierScorer", "reward_tensor"]

POOLS = ("last", "last_non_pad")
_REWARD_FIELDS = ("score", "logits", "rewards", "reward")
_AUTO = "AutoModelForSequenceClassification"


def _head_label(num_labels: int, label: int | None, where: str) -> int:
    """The logit column that is the reward; a multi-label head needs ``label``."""
    if label is None:
        if num_labels == 1:
            return 0
        raise ScorerError(f"{where}: the classification head has {num_labels} labels, but a reward is one number. "
                          f"Fix: pass label=K ({flag('label')}) to score with output K (0..{num_labels - 1}), "
                          "or use a single-output reward model.")
    if not 0 <= label < num_labels:
        raise ScorerError(f"{where}: label={label} but the head has {num_labels} output(s). "
                          f"Fix: pass a label between 0 and {num_labels - 1} ({flag('label')}).")
    return label


def _config_num_labels(config: dict) -> int:
    # PretrainedConfig's own rule: id2label decides; without it, num_labels; default 2.
    return len(config["id2label"]) if config.get("id2label") else int(config.get("num_labels", 2))


def reward_tensor(output: Any, where: str) -> Any:
    """The reward a model's forward returns: a tensor, or its first field among ``_REWARD_FIELDS``."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for name in _REWARD_FIELDS:
        value = output.get(name) if hasattr(output, "get") else getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ScorerError(f"{where}: the model's forward returned {type(output).__name__} without a reward tensor "
                      f"({', '.join(_REWARD_FIELDS)}). Fix: score it through a python:MODULE:ATTR wrapper that "
                      "returns one float per pair.")


def _adapter_num_labels(adapter: object) -> int | None:
    """Rows of the reward head a SEQ_CLS adapter saved (``modules_to_save``), read from its safetensors header."""
    import json

    for f in adapter.path.glob("*.safetensors"):  # type: ignore[attr-defined]
        with f.open("rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        for key, info in header.items():
            if key != "__metadata__" and "lora_" not in key and key.endswith((".score.weight", ".classifier.weight")):
                return int(info["shape"][0])
    return None


class ClassifierScorer(ModelScorer):
    """Score = the reward model's output for the rendered pair (module docstring)."""

    kind = "classifier"
    applies = frozenset({"chat_template", "add_bos", "label", "pool"})

    def _check_config(self) -> None:
        self.model: Any = None  # loaded on the first score() that needs computing
        where = str(self.path)
        if self.options.pool not in POOLS:
            raise ScorerError(f"pool={self.options.pool!r} is not one of {', '.join(POOLS)}. Fix: leave it unset "
                              f"(the pair's last token) or pass last_non_pad ({flag('pool')}).")
        found = reward_class(self.config)
        self.auto_class, self.custom = found if found else (_AUTO, None)
        archs = [a for a in self.config.get("architectures") or [] if isinstance(a, str)]
        if self.custom:
            if not self.options.trust_remote_code:
                raise ScorerError(f"{where}: config.json's auto_map registers the repository's own class "
                                  f"{self.custom} for {self.auto_class}; loading it runs that Python code. Fix: if "
                                  f"you trust the repository, pass trust_remote_code=True "
                                  f"({flag('trust_remote_code')}).")
            self.label = self.options.label  # checked against the output's shape when scoring
            self.stats.notes.append(f"{self.kind}: runs the repository's own forward ({self.custom}, registered for "
                                    f"{self.auto_class} in auto_map) and reads its reward output "
                                    f"({', '.join(_REWARD_FIELDS)})")
            return
        if self.adapter is not None and self.adapter.kind == "classifier":  # the adapter carries the head
            self.num_labels = _adapter_num_labels(self.adapter)
            self.label = _head_label(self.num_labels or 1, self.options.label, where)
            return
        from ._local import embedding_hint

        hint = embedding_hint(self.path, self.config)
        if hint:
            raise ScorerError(hint)
        if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            hint = (" It looks like a reward model with its own class, but config.json has no auto_map entry for "
                    f"{_AUTO}, so there is no code to load it with. Fix: add the repository's auto_map (and "
                    "modeling file) and pass trust_remote_code=True, or wrap its scoring in python:MODULE:ATTR."
                    if any("reward" in a.lower() for a in archs) else
                    " Fix: use logprob:PATH (or dpo:PATH) for a language model, or point at the reward model.")
            raise ScorerError(f"{where}: config.json lists {', '.join(archs)}, not a *ForSequenceClassification "
                              "reward model; loaded as a classifier its reward head would be random." + hint)
        self.label = _head_label(_config_num_labels(self.config), self.options.label, where)

    def _fingerprint_options(self) -> dict[str, object]:
        return {**super()._fingerprint_options(), "label": self.options.label, "pool": self.options.pool}

    def _load(self) -> None:
        import torch
        import transformers

        from ._hf import fp32_heads, is_stock_class, load_model, load_tokenizer

        from ._hf import input_device

        self.tokenizer = load_tokenizer(self.tokenizer_path, self.options)
        self.encoder = self._make_encoder()
        extra = {"num_labels": self.num_labels} if getattr(self, "num_labels", None) else {}
        self.model = load_model(getattr(transformers, self.auto_class), self.path, self.options, self.dtype,
                                self.device, adapter=self.adapter, **extra)
        if self.options.device_map:
            self._torch_device = input_device(self.model, self.device)
        head = getattr(self.model, "score", None)
        self._head = head if (is_stock_class(self.model) and isinstance(head, torch.nn.Linear)
                              and self.model.base_model is not self.model) else None
        if self._head is not None:
            self.label = _head_label(self._head.out_features, self.options.label, str(self.path))
            if not self._head_matches_forward():
                self._head = None
        if self._head is None:
            fp32_heads(self.model)
        if self.options.pool != "last" and self._head is None:
            self.stats.notes.append(f"{self.kind}: option pool={self.options.pool!r} applies to decoder reward heads "
                                    "only; this model pools by its own forward, so it is ignored")

    def _head_matches_forward(self) -> bool:
        """One probe, scored by the model's forward and by hidden state + head at the last token."""
        import torch

        ids = [t for t in self.tokenizer("A reward model reads this probe sentence.", add_special_tokens=False)
               ["input_ids"][:12] if t != self.pad_id]
        batch = torch.tensor([ids], device=self.device)
        with torch.inference_mode():
            full = self.model(input_ids=batch).logits.float()
            hidden = self.model.base_model(input_ids=batch)[0][:, -1]
            mine = self._head(hidden).float()
        return bool(torch.allclose(full, mine, rtol=1e-4, atol=1e-5))

    def _score_batch(self, encs: list[Encoded]) -> np.ndarray:
        if self._head is not None:
            return self._head_scores(encs)
        # The model's own forward may find the last token by the pad id: a pair that holds that id as a real
        # token is scored on its own, unpadded, exactly as the model's card would score it.
        pad = self.pad_id
        alone = [i for i, e in enumerate(encs) if pad in e.ids]
        together = [i for i in range(len(encs)) if i not in set(alone)]
        out = np.empty(len(encs))
        for group in ([together] if together else []) + [[i] for i in alone]:
            out[group] = self._forward_scores([encs[i] for i in group])
        return out

    def _head_scores(self, encs: list[Encoded]) -> np.ndarray:
        import torch

        from ._hf import collate, fp32_linear, model_inputs

        batch = collate(encs, self.pad_id, self.device)
        base = self.model.base_model
        hidden = base(**model_inputs(base, batch))[0]
        index = batch["last"]
        if self.options.pool == "last_non_pad":  # transformers' rule: the last token that is not the pad id
            real = (batch["input_ids"] != self.pad_id) & batch["attention_mask"].bool()
            index = (torch.arange(real.shape[1], device=real.device) * real).argmax(-1)
        last = hidden[torch.arange(len(encs), device=hidden.device), index]
        return fp32_linear(self._head, last)[:, self.label].cpu().numpy()

    def _forward_scores(self, encs: list[Encoded]) -> np.ndarray:
        from ._hf import collate, model_inputs

        batch = collate(encs, self.pad_id, self.device)
        reward = reward_tensor(self.model(**model_inputs(self.model, batch)), str(self.path)).float()
        if reward.dim() == 1 or reward.dim() == 2 and reward.shape[1] == 1:
            if self.options.label not in (None, 0):
                raise ScorerError(f"{self.path}: label={self.options.label} but the model returns one reward per "
                                  f"pair. Fix: leave label unset ({flag('label')}).")
            return reward.reshape(len(encs)).cpu().numpy()
        if reward.dim() != 2 or reward.shape[0] != len(encs):
            raise ScorerError(f"{self.path}: the model's reward output has shape {tuple(reward.shape)} for "
                              f"{len(encs)} pairs; expected (pairs,) or (pairs, labels). Fix: score it through a "
                              "python:MODULE:ATTR wrapper that returns one float per pair.")
        label = _head_label(reward.shape[1], self.options.label, str(self.path))
        return reward[:, label].cpu().numpy()
