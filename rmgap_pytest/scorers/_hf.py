"""The torch side of model-backed scorers: loading, checking, padding, fp32 heads.

Imported only when a chunk of pairs actually needs computing; everything a
scorer decides before that (fingerprint, layout, device and dtype names) lives
in ``_files.py`` and ``render.py`` and never imports torch.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ScorerError
from ._files import flag
from .base import ScorerOptions

__all__ = ["torch_device", "torch_dtype", "load_tokenizer", "load_model", "input_device", "collate", "model_inputs",
           "fp32_linear", "fp32_heads", "is_stock_class"]


def torch_device(name: str, requested: str | None) -> torch.device:
    """The device ``_files.resolve_device_name`` chose; refuse when torch cannot use it.

    The fingerprint was made for this device, so silently falling back to
    another one would store scores under the wrong key.
    """
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count <= (device.index or 0):
            why = ("device=auto found an NVIDIA GPU" if (requested or "auto") == "auto"
                   else f"device={requested!r} was asked for")
            raise ScorerError(f"{why}, but torch {torch.__version__} sees {count} usable CUDA device(s) (a CPU-only "
                              "build, or a driver it cannot use). Fix: install a CUDA build of torch, or pass "
                              f"device='cpu' ({flag('device')}).")
    return device


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence load reports and weight-loading bars; we check the loading info ourselves."""
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def load_tokenizer(path: Path, options: ScorerOptions) -> Any:
    from transformers import AutoTokenizer

    try:
        with _quiet_transformers():
            return AutoTokenizer.from_pretrained(str(path), trust_remote_code=bool(options.trust_remote_code))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScorerError(f"Cannot load a tokenizer from {str(path)!r}: {exc}. Fix: save the tokenizer "
                          "next to the model (tokenizer.save_pretrained(dir)).") from exc


def load_model(auto_class: Any, path: Path, options: ScorerOptions, dtype: torch.dtype,
               device: torch.device, adapter: Any = None, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained`` with safe defaults; missing weights and a dtype other than the
    fingerprinted one are errors, not warnings.

    ``adapter`` (``_local.Adapter``): merged in after loading; weights it carries (a reward head in
    ``modules_to_save``) may be missing from the base. ``options.device_map``: transformers places the
    model across the machine's GPUs (accelerate); the inputs then go to the embedding's device.
    """
    if options.device_map:
        try:
            import accelerate  # noqa: F401
        except ImportError:
            raise ScorerError(f"device_map={options.device_map!r} needs accelerate. Fix: pip install "
                              f"'rmgap-pytest[device-map]', or leave it unset ({flag('device_map')}).") from None
        kwargs["device_map"] = options.device_map
    try:
        with _quiet_transformers():
            model, info = auto_class.from_pretrained(
                str(path), dtype=dtype, output_loading_info=True,
                use_safetensors=None if options.allow_pickle else True,
                trust_remote_code=bool(options.trust_remote_code), **kwargs)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError, ImportError) as exc:
        raise ScorerError(f"Cannot load {auto_class.__name__} from {str(path)!r}: {exc}. Fix: check that "
                          "config.json matches the weights and the model type suits this scorer kind "
                          "(classifier: a *ForSequenceClassification model or a reward class registered in "
                          "auto_map; logprob/dpo: a causal LM).") from exc
    provided = adapter.provided_modules() if adapter is not None else set()
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")
               and not provided.intersection(k.split("."))]
    if missing:
        raise ScorerError(f"{str(path)!r}: {len(missing)} weight(s) are missing from the files and would be "
                          f"random ({', '.join(sorted(missing)[:5])}). Fix: point at a trained checkpoint "
                          "of this architecture, or pick the scorer kind that matches it.")
    if adapter is not None:
        from ._local import apply_adapter

        model = apply_adapter(model, adapter, dtype)
    floating = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if floating and floating != {dtype}:
        raise ScorerError(f"{str(path)!r} loaded with weights in {', '.join(sorted(map(str, floating)))}, not the "
                          f"{dtype} its scores are stored under (the model's own code sets the dtype). Fix: pass "
                          f"the dtype it loads in ({flag('dtype')}).")
    return (model if options.device_map else model.to(device)).eval()


def input_device(model: Any, fallback: torch.device) -> torch.device:
    """Where a model's inputs go: its embedding's device (under a device_map), else ``fallback``."""
    try:
        return model.get_input_embeddings().weight.device
    except (AttributeError, NotImplementedError):
        return fallback


def is_stock_class(model: Any) -> bool:
    """A class shipped with transformers, as opposed to repository code loaded through auto_map."""
    return type(model).__module__.startswith("transformers.models.")


@lru_cache(maxsize=64)
def _signature(cls: type) -> tuple[inspect.Parameter, ...]:
    try:
        return tuple(inspect.signature(cls.forward).parameters.values())
    except (TypeError, ValueError):
        return ()


def model_inputs(module: Any, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The batch tensors ``module.forward`` takes (right padding: every model's default positions hold)."""
    params = _signature(type(module))
    names = {p.name for p in params}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    inputs: dict[str, Any] = {n: batch[n] for n in ("input_ids", "attention_mask", "token_type_ids")
                              if n in batch and (n in names or var_kw and n != "token_type_ids")}
    if "use_cache" in names:
        inputs["use_cache"] = False  # one forward pass; a key/value cache is only wasted memory
    return inputs


def collate(encs: Sequence[Any], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Pad token lists to one tensor batch ON THE RIGHT; the attention mask marks real tokens.

    Right padding whatever the tokenizer's ``padding_side``: with it, every
    architecture's default positions are right (absolute, rotary, RoBERTa's
    offset positions, DeBERTa's relative ones), no row is fully masked, and a
    causal model's real tokens never see a pad. ``last`` is each row's last
    real token.
    """
    width = max(len(e.ids) for e in encs)
    ids = np.full((len(encs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encs), width), dtype=np.int64)
    types = np.zeros((len(encs), width), dtype=np.int64) if encs[0].type_ids is not None else None
    for row, e in enumerate(encs):
        n = len(e.ids)
        ids[row, :n], mask[row, :n] = e.ids, 1
        if types is not None:
            types[row, :n] = e.type_ids
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
             "last": torch.tensor([len(e.ids) - 1 for e in encs])}
    if types is not None:
        batch["token_type_ids"] = torch.from_numpy(types)
    return {k: v.to(device) for k, v in batch.items()}


def fp32_linear(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module`` (a Linear) applied in float32 to ``x``: the head's output never rounds to bf16.

    bf16 keeps 8 significant bits, so rewards between 8 and 16 land on a 0.0625
    grid and distinct rewards become exact ties (a tie is a loss on RMGAP).
    The fp32 copy of the weights is made once per module.
    """
    cached = getattr(module, "_rmgap_fp32", None)
    if cached is None:
        bias = module.bias.detach().float() if getattr(module, "bias", None) is not None else None
        cached = (module.weight.detach().float(), bias)
        object.__setattr__(module, "_rmgap_fp32", cached)
    return torch.nn.functional.linear(x.float(), *cached)


def fp32_heads(model: torch.nn.Module) -> list[str]:
    """Run every top-level module outside the trunk (the reward head) in float32; returns their names.

    Used where the model's own forward must run (encoder heads, repository
    code): the head's weights become float32 and its inputs are cast on the
    way in, so everything after the trunk (pooler, gating, regression layers)
    computes in fp32. Modules sharing weights with the trunk are left alone.
    """
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return []
    trunk = {id(p) for p in base.parameters()}
    names = []
    for name, child in model.named_children():
        params = list(child.parameters())
        if child is base or not params or any(id(p) in trunk for p in params):
            continue
        if all(p.dtype == torch.float32 for p in params if p.is_floating_point()):
            continue
        child.float()
        child.register_forward_pre_hook(_to_fp32, with_kwargs=True)
        names.append(name)
    return names


def _to_fp32(_module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    def cast(x: Any) -> Any:
        return x.float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}
