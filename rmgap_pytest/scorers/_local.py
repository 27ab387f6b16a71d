"""Models as teams keep them: a directory, a hub id in the local HF cache, a PEFT adapter, an embedding model.

- ``org/name`` that is not a local directory is looked up in the local Hugging
  Face cache (``HF_HUB_CACHE``, ``HF_HOME``, ``~/.cache/huggingface``) and never
  downloaded; when it is not there the message gives the download command.
- A directory holding ``adapter_config.json`` (and no ``config.json``) is a
  PEFT/LoRA adapter: it is loaded onto its base model (``base_model_name_or_path``,
  itself a directory or a cached hub id) with ``peft`` and merged, or refused
  with the merge recipe when peft is not installed.
- A sentence-embedding model (sentence-transformers ``modules.json``, or a bare
  encoder) gets a message that leads to something that works.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ScorerError

__all__ = ["Adapter", "embedding_hint", "looks_like_hub_id", "read_adapter", "resolve_local"]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def looks_like_hub_id(text: str) -> bool:
    return bool(_HUB_ID.fullmatch(text)) and ".." not in text


def _hub_cache() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return "~/.cache/huggingface/hub"


def resolve_local(text: str | Path, role: str = "model") -> Path:
    """A directory as given, or a hub id's snapshot in the local HF cache; ScorerError when neither exists."""
    path = Path(text).expanduser()
    if path.is_dir() or not looks_like_hub_id(str(text)):
        return path  # the caller reports a missing directory in its own words
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(text), local_files_only=True))
    except Exception:  # LocalEntryNotFoundError and its relatives across huggingface_hub versions
        pass
    raise ScorerError(
        f"{role} {str(text)!r} is not a directory here, and as a Hugging Face hub id it is not in the local HF "
        f"cache ({_hub_cache()}; set by HF_HUB_CACHE or HF_HOME). rmgap-pytest never downloads models. Fix: "
        f"download it once with `hf download {text}` (older huggingface_hub: `huggingface-cli download {text}`) "
        "and rerun, or pass the directory that holds config.json and the weights.")


@dataclass(frozen=True)
class Adapter:
    """A PEFT adapter directory and what it says about itself."""

    path: Path
    base: str  # base_model_name_or_path, as written
    task_type: str | None
    config: dict[str, Any]

    @property
    def kind(self) -> str | None:
        """The scorer kind its task implies: a reward head (SEQ_CLS) or a language model (CAUSAL_LM)."""
        return {"SEQ_CLS": "classifier", "CAUSAL_LM": "logprob"}.get(self.task_type or "")

    def provided_modules(self) -> set[str]:
        """Names of modules whose full weights the adapter carries (``modules_to_save``: the reward head)."""
        names = set(self.config.get("modules_to_save") or [])
        for f in self.path.glob("*.safetensors"):
            try:
                with f.open("rb") as fh:
                    n = int.from_bytes(fh.read(8), "little")
                    keys = json.loads(fh.read(n))
            except (OSError, ValueError):
                continue
            names.update(part for k in keys if "lora_" not in k for part in k.split("."))
        return names


def read_adapter(path: Path) -> Adapter | None:
    """The adapter in ``path``, or None when it is not one (a full model has config.json)."""
    cfg = path / "adapter_config.json"
    if not cfg.is_file() or (path / "config.json").is_file():
        return None
    try:
        config = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScorerError(f"{cfg} is not valid JSON ({exc}). Fix: re-save the adapter with save_pretrained().") from None
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise ScorerError(f"{cfg} names no base model (base_model_name_or_path). Fix: set it to the base model's "
                          "directory (or its hub id, if it is in the local HF cache).")
    return Adapter(path, base, config.get("task_type"), config)


def resolve_base(adapter: Adapter) -> Path:
    """The adapter's base model directory: as written, relative to the adapter, or a cached hub id."""
    written = Path(adapter.base).expanduser()
    if not written.is_absolute() and (adapter.path / written).is_dir():
        return (adapter.path / written).resolve()
    return resolve_local(adapter.base, role=f"base model of the adapter {str(adapter.path)!r}")


def merge_recipe(adapter: Adapter) -> str:
    auto = "AutoPeftModelForSequenceClassification" if adapter.kind == "classifier" else "AutoPeftModelForCausalLM"
    return (f"from peft import {auto}; m = {auto}.from_pretrained('{adapter.path}'); "
            "m.merge_and_unload().save_pretrained('merged'); and save the tokenizer there too, then score "
            "the merged directory")


def apply_adapter(model: Any, adapter: Adapter, dtype: Any) -> Any:
    """``model`` with the adapter loaded and merged into its weights (scores as the adapter's own forward)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ScorerError(f"{adapter.path} is a PEFT adapter and peft is not installed. Fix: pip install "
                          f"'rmgap-pytest[peft]', or merge it once: {merge_recipe(adapter)}.") from None
    try:
        merged = PeftModel.from_pretrained(model, str(adapter.path)).merge_and_unload()
    except Exception as exc:  # peft's own errors: a mismatched base, missing keys, ...
        raise ScorerError(f"Cannot load the adapter {adapter.path} onto {adapter.base}: {type(exc).__name__}: "
                          f"{exc}. Fix: point base_model_name_or_path in adapter_config.json at the model it was "
                          f"trained from, or merge it yourself: {merge_recipe(adapter)}.") from None
    return merged.to(dtype)


def embedding_hint(path: Path, config: dict[str, Any]) -> str | None:
    """A message for a sentence-embedding model (or a bare encoder without a head), else None."""
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    st = (path / "modules.json").is_file() or (path / "config_sentence_transformers.json").is_file()
    bare = bool(archs) and all(a.endswith("Model") and not a.endswith(("LMHeadModel", "RewardModel")) for a in archs)
    if not st and not bare or (config.get("auto_map") and not st):
        return None
    what = ("a sentence-embedding model (sentence-transformers modules.json)" if st else
            f"an encoder without a reward head ({', '.join(archs)})")
    return (f"{str(path)!r} is {what}: it turns text into vectors, not into a reward, so neither classifier: (no "
            "trained reward head) nor logprob: (no language-model head) can score with it. Fix: for an "
            "embedding-similarity baseline use builtin:minilm (cosine of all-MiniLM-L6-v2 prompt and response "
            "embeddings); to score with this model's own embeddings, wrap it in python:MODULE:ATTR, a function "
            "(prompts, responses) -> one float per pair (docs/scoring.md, Python scorers).")
