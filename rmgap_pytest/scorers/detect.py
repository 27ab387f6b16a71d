"""A bare model directory -> its scorer kind, read from config.json's ``architectures``."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ScorerError
from ._files import reward_class
from .base import ScorerOptions

__all__ = ["detect_kind"]

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def detect_kind(path: Path, options: ScorerOptions) -> tuple[str, str]:
    """``(kind, reason)`` for a model directory, or a ScorerError that says which prefix to use."""
    from ._local import embedding_hint, read_adapter

    adapter = read_adapter(path)
    if adapter is not None:
        if adapter.kind is None:
            raise ScorerError(f"{str(path)!r} is a PEFT adapter for task {adapter.task_type!r}; a reward needs a "
                              "SEQ_CLS adapter (classifier:) or a CAUSAL_LM one (logprob:, dpo:). Fix: write the kind "
                              "explicitly, e.g. classifier:PATH.")
        kind = "dpo" if adapter.kind == "logprob" and options.ref_model else adapter.kind
        return kind, f"a PEFT adapter (task {adapter.task_type}) on {adapter.base}"
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScorerError(f"{str(path)!r} has no config.json, so its kind cannot be detected. Fix: point at "
                          "a save_pretrained() directory, or write the kind explicitly (classifier:PATH, "
                          "logprob:PATH, dpo:PATH).") from None
    except (OSError, ValueError) as exc:
        raise ScorerError(f"Cannot read {config_file}: {exc}. Fix: re-save the model with "
                          "save_pretrained().") from None
    if not isinstance(config, dict):
        config = {}
    architectures = config.get("architectures") or []
    auto_map = config.get("auto_map") if isinstance(config.get("auto_map"), dict) else {}
    reward = reward_class(config)
    if reward:
        return "classifier", f"config.json's auto_map registers {reward[1]} for {reward[0]}"
    for arch in architectures:
        if isinstance(arch, str) and arch.endswith("ForSequenceClassification"):
            return "classifier", f"config.json architectures lists {arch}"
    for arch in architectures:
        if isinstance(arch, str) and arch.endswith(_CAUSAL_SUFFIXES):
            if options.ref_model:
                return "dpo", f"config.json architectures lists {arch} and ref_model is set"
            return "logprob", f"config.json architectures lists {arch}"
    if "AutoModelForCausalLM" in auto_map:
        if options.ref_model:
            return "dpo", "config.json's auto_map registers a causal LM class and ref_model is set"
        return "logprob", "config.json's auto_map registers a causal LM class"
    hint = embedding_hint(path, config)
    if hint:
        raise ScorerError(hint)
    found = ", ".join(map(str, architectures)) or "no architectures"
    raise ScorerError(f"Cannot tell what kind of reward model {str(path)!r} is: config.json lists {found}, "
                      "neither a *ForSequenceClassification nor a *ForCausalLM / *LMHeadModel. Fix: write the "
                      "kind explicitly: classifier:PATH for a reward head, logprob:PATH (or dpo:PATH with "
                      "ref_model) for a language model.")
