"""A model directory read without torch or transformers: checks, identity, limits, device and dtype.

Everything a scorer needs before it computes anything comes from here, so a
fully cached run (every score already stored) neither imports torch nor loads
weights: the fingerprint is a hash of the files and the options, and ``auto``
device and dtype are decided from the machine's description, not from torch.

The ``auto`` rules (documented in docs/scoring.md):

- device: CUDA when an NVIDIA GPU is visible (``/dev/nvidia0`` or
  ``/proc/driver/nvidia/gpus/*``, and ``CUDA_VISIBLE_DEVICES`` does not hide
  them all), else the CPU. If torch then cannot use that GPU, loading stops
  with a message instead of silently scoring on the CPU under a GPU fingerprint.
- dtype: bf16 on CUDA when ``nvidia-smi`` reports compute capability 8.0 or
  more (Ampere and later: native bf16), and on CPUs whose ``/proc/cpuinfo``
  lists ``amx_bf16`` or ``avx512_bf16``; float32 everywhere else. The model is
  loaded in exactly this dtype, and loading refuses a model whose weights end
  up in another one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ScorerError, did_you_mean
from .base import ScorerOptions

__all__ = ["SCORING_VERSION", "DTYPES", "read_config", "check_model_dir", "model_identity", "fingerprint",
           "resolve_device_name", "resolve_dtype_name", "cpu_has_fast_bf16", "visible_nvidia_gpus",
           "position_limit", "tokenizer_limit", "check_max_length", "custom_class", "reward_class", "flag"]

# Bump when a change in rendering, truncation or pooling changes scores, so cached scores expire.
# 2: content encoded as text, template kept whole on truncation, pinned template date, fp32 heads,
#    plain decoder layout, DPO as beta * summed log-ratio.
SCORING_VERSION = 2
DTYPES = ("float32", "bfloat16", "float16")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
_TOKENIZER_PREFIXES = ("tokenizer", "special_tokens", "added_tokens", "vocab", "merges",
                       "chat_template", "spiece", "sentencepiece", "spm", "preprocessor")

def flag(option: str) -> str:
    """The flag that sets a scorer option, in the running tool's spelling (``options.flag``)."""
    from ..options import flag as tool_flag

    return tool_flag(option)


def read_config(path: Path) -> dict[str, Any]:
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScorerError(f"{config_file} is not valid JSON ({exc}). Fix: re-save the model with "
                          "save_pretrained().") from None
    if not isinstance(config, dict):
        raise ScorerError(f"{config_file} is not a JSON object. Fix: re-save the model with save_pretrained().")
    return config


def check_model_dir(path: Path, options: ScorerOptions, role: str = "model") -> Path:
    """The resolved model directory (a hub id: its snapshot in the local HF cache), or a ScorerError
    saying what is missing and how to fix it."""
    from ._local import resolve_local

    path = resolve_local(path, role)
    if not path.is_dir():
        raise ScorerError(f"{role} directory {str(path)!r} does not exist. Fix: pass the directory that "
                          "holds config.json and the weights (save_pretrained output); hub ids are taken from "
                          "the local Hugging Face cache, never downloaded.")
    if not (path / "config.json").is_file():
        raise ScorerError(f"{role} directory {str(path)!r} has no config.json. Fix: point at the directory "
                          "written by save_pretrained().")
    read_config(path)
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
        if not pickles:
            raise ScorerError(f"{role} directory {str(path)!r} holds no weights (*.safetensors). Fix: save "
                              "the model there with save_pretrained().")
        if not options.allow_pickle:
            raise ScorerError(
                f"{role} directory {str(path)!r} holds only pickle weights ({', '.join(pickles)}); loading "
                "pickle can run arbitrary code. Fix: convert them to safetensors (model.save_pretrained("
                f"dir, safe_serialization=True)), or pass allow_pickle=True ({flag('allow_pickle')}) if you "
                "trust the files.")
    return path.resolve()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safetensors_identity(path: Path) -> str:
    """Header + size + the first and last 64 bytes of every tensor: cheap, yet content-sensitive.

    The JSON header alone (dtypes, shapes, offsets) does not change when a
    fine-tune changes the values, so a slice of each tensor's bytes is hashed
    too: a few hundred small reads instead of hashing gigabytes.
    """
    h = hashlib.sha256()
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header_bytes = f.read(n)
        h.update(header_bytes)
        h.update(str(path.stat().st_size).encode())
        header = json.loads(header_bytes)
        for name in sorted(k for k in header if k != "__metadata__"):
            start, end = header[name]["data_offsets"]
            for at in sorted({start, max(start, end - 64)}):
                f.seek(8 + n + at)
                h.update(f.read(min(64, end - at)))
    return h.hexdigest()


def _pickle_identity(path: Path) -> str:
    # No cheap content view of a pickle; size + mtime + head/tail may miss a cache hit
    # after a copy, but never serves stale scores for changed weights of a new size/time.
    st = path.stat()
    with path.open("rb") as f:
        head = f.read(1 << 16)
        f.seek(max(0, st.st_size - (1 << 16)))
        tail = f.read()
    return _sha(f"{st.st_size}:{st.st_mtime_ns}".encode() + head + tail)


def model_identity(path: Path) -> dict[str, str]:
    """What makes a model directory's scores what they are, file by file."""
    ident: dict[str, str] = {}
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        if f.suffix == ".safetensors":
            ident[f.name] = _safetensors_identity(f)
        elif f.name.endswith(PICKLE_SUFFIXES):
            ident[f.name] = _pickle_identity(f)
        elif f.name in ("config.json", "generation_config.json", "adapter_config.json") or f.name.startswith(_TOKENIZER_PREFIXES) \
                or f.suffix in (".py", ".jinja", ".model"):
            ident[f.name] = _sha(f.read_bytes())  # .py: remote code changes scores too
    templates = path / "additional_chat_templates"
    if templates.is_dir():
        for f in sorted(templates.glob("*.jinja")):
            ident[f"additional_chat_templates/{f.name}"] = _sha(f.read_bytes())
    return ident


def fingerprint(kind: str, options: dict[str, object], models: dict[str, Path]) -> str:
    """sha256 over the kind, the scoring version, the score-changing options and each model's file identity."""
    doc = {"kind": kind, "version": SCORING_VERSION, "options": options,
           "models": {role: model_identity(p) for role, p in models.items()}}
    return _sha(json.dumps(doc, sort_keys=True, default=str).encode())


# -- device and dtype, decided without torch -----------------------------------------------------------------


def visible_nvidia_gpus() -> int:
    """NVIDIA GPUs this process may use, from the driver's device files and CUDA_VISIBLE_DEVICES."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return 0
    present = len(list(Path("/proc/driver/nvidia/gpus").glob("*"))) if Path("/proc/driver/nvidia/gpus").is_dir() \
        else len([d for d in Path("/dev").glob("nvidia[0-9]*") if re.fullmatch(r"nvidia\d+", d.name)])
    if visible is not None and present:
        return min(present, len([v for v in visible.split(",") if v.strip()]))
    return present


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bf16 natively (``amx_bf16`` or ``avx512_bf16`` in /proc/cpuinfo).

    Measured on a 2-core Xeon with both units (torch 2.13 CPU, all-MiniLM-L6-v2,
    32 x 320 tokens): fp32 1.24 s, bf16 0.43 s per batch. Without them PyTorch
    emulates bf16 through fp32 conversions and is slower than plain fp32, so
    ``auto`` keeps fp32 there (and on systems without /proc/cpuinfo).
    """
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@lru_cache(maxsize=1)
def _gpus_support_bf16() -> bool:
    """Every visible NVIDIA GPU has compute capability >= 8.0 (nvidia-smi); False when unknown."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        caps = [float(x) for x in out.split()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return False
    return bool(caps) and min(caps) >= 8.0


def resolve_device_name(name: str | None) -> str:
    """``auto`` -> ``cuda`` or ``cpu`` (module docstring); explicit ``cuda:N`` must be visible."""
    name = (name or "auto").strip()
    if name == "auto":
        return "cuda" if visible_nvidia_gpus() else "cpu"
    m = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", name)
    if not m or (m[1] == "cpu" and m[2]):
        raise ScorerError(f"Unknown device {name!r}. Fix: use auto, cpu, cuda or cuda:N.")
    if m[1] == "cuda":
        count = visible_nvidia_gpus()
        if count == 0 or (m[2] is not None and int(m[2]) >= count):
            raise ScorerError(f"device={name!r} but this machine has {count} visible CUDA device(s). "
                              "Fix: use device='cpu', or device='auto' to take CUDA only when present "
                              f"({flag('device')}).")
    return name


def resolve_dtype_name(name: str | None, device: str) -> str:
    """``auto`` -> ``bfloat16`` or ``float32`` (module docstring); fp16 is never chosen automatically:
    reward logits and summed log-probs leave its range far more easily than bf16's."""
    name = (name or "auto").strip()
    if name == "auto":
        fast = _gpus_support_bf16() if device.startswith("cuda") else cpu_has_fast_bf16()
        return "bfloat16" if fast else "float32"
    if name not in DTYPES:
        raise ScorerError(f"Unknown dtype {name!r}.{did_you_mean(name, DTYPES)} Fix: use auto, {', '.join(DTYPES)}.")
    return name


# -- lengths and classes, from config.json ----------------------------------------------------------------------

# Position tables that start after the padding index (RoBERTa's create_position_ids_from_input_ids):
# max_position_embeddings - (pad_token_id + 1) positions are usable.
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text",
                     "xmod", "roberta-prelayernorm", "ibert", "mpnet", "luke", "esm"}


def position_limit(config: dict[str, Any]) -> int | None:
    """Tokens the model has positions for, from config.json (text config for multimodal ones)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx"):
        value = text.get(key)
        if isinstance(value, int) and value > 0:
            if config.get("model_type") in _OFFSET_POSITIONS and isinstance(config.get("pad_token_id"), int):
                return value - config["pad_token_id"] - 1
            return value
    return None


def tokenizer_limit(path: Path) -> int | None:
    """``model_max_length`` from tokenizer_config.json (a huge sentinel means none)."""
    try:
        value = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8")).get("model_max_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, (int, float)) and 0 < value < 10_000_000 else None


def check_max_length(option: int | None, config: dict[str, Any], path: Path) -> int | None:
    """The max_length scoring uses: the option, checked against the model's positions, or the model's limit.

    Raises ScorerError at start-up, before any scoring, for a value the model cannot take.
    """
    positions = position_limit(config)
    if option is None:
        limits = [x for x in (positions, tokenizer_limit(path)) if x]
        return min(limits) if limits else None
    if option < 8:
        raise ScorerError(f"max_length={option} is too small to hold a prompt and a response. Fix: pass a value "
                          f"of at least a few hundred tokens, or leave it unset ({flag('max_length')}).")
    if positions is not None and option > positions:
        raise ScorerError(f"max_length={option} is more than the {positions} positions {str(path)!r} has "
                          "(config.json); longer inputs would fail or read positions the model never learned. "
                          f"Fix: pass max_length={positions} or less, or leave it unset ({flag('max_length')}).")
    return int(option)


def custom_class(config: dict[str, Any], auto_class: str) -> str | None:
    """The repository class config.json's ``auto_map`` registers for ``auto_class``, if any."""
    auto_map = config.get("auto_map")
    target = auto_map.get(auto_class) if isinstance(auto_map, dict) else None
    if isinstance(target, (list, tuple)):
        target = target[0]
    return target if isinstance(target, str) and target else None


def reward_class(config: dict[str, Any]) -> tuple[str, str] | None:
    """``(auto class, repository class)`` of a reward model shipped as repository code.

    The class registered for ``AutoModelForSequenceClassification``, else one
    registered for ``AutoModel`` whose name says it is a reward model
    (InternLM2-style ``...ForRewardModel``).
    """
    seq = custom_class(config, "AutoModelForSequenceClassification")
    if seq:
        return "AutoModelForSequenceClassification", seq
    base = custom_class(config, "AutoModel")
    if base and "reward" in base.rsplit(".", 1)[-1].lower():
        return "AutoModel", base
    return None
