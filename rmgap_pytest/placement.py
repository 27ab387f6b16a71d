"""Where an xdist worker computes: its GPU on a multi-GPU machine, its share of the CPU threads.

Both need torch, which costs seconds to import; scorers without a local model never import it, and
``GateSession.prepare`` runs ``worker_placement``'s function only when a chunk is to be computed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import GateSettings

__all__ = ["share_cpu_threads", "worker_device", "worker_placement"]

_NO_TORCH = ("python:", "builtin:length", "builtin:random", "http:", "https:", "vllm:", "sglang:",
             "verifier:http", "judge:http", "ranker:http")  # judges behind a server


def worker_device(worker_id: str | None, device: str | None, spec: str = "") -> str | None:
    """Under xdist on a machine with several GPUs, worker gwN takes GPU N mod count."""
    if not worker_id or (device not in (None, "auto", "cuda")) or spec.startswith(_NO_TORCH):
        return None  # importing torch costs seconds; scorers without a model never need it
    try:
        import torch

        n = torch.cuda.device_count()
    except Exception:  # torch missing or broken: let the scorer decide
        return None
    if n <= 1:
        return None
    return f"cuda:{int(worker_id.lstrip('gw') or 0) % n}"


def worker_placement(worker_id: str | None, worker_count: int, settings: "GateSettings") -> Callable[[], str | None]:
    """What an xdist worker does before its first chunk: pick its GPU (``worker_device``) and
    its share of the CPU threads (``share_cpu_threads``); returns the device. Both import torch
    for model specs, so ``GateSession.prepare`` runs this only when a chunk is to be computed:
    a fully cached rerun under ``-n 2`` imports no torch (issue 11)."""
    def place() -> str | None:
        configured = settings.scorer_options.get("device")
        device = worker_device(worker_id, configured, settings.model)
        if worker_id is not None:
            share_cpu_threads(worker_count, device or configured, settings.model)
        return device
    return place


def share_cpu_threads(worker_count: int, device: str | None, spec: str) -> None:
    """xdist workers scoring on one CPU split its cores instead of each taking all of them.

    Measured here (2 cores, the sample, builtin:minilm, whole `pytest -n 2` run): 10.7 s
    with one thread per worker, 14-16 s with two threads each (oversubscribed).
    """
    if worker_count <= 1 or spec.startswith(_NO_TORCH) or (device or "auto").startswith("cuda"):
        return
    import torch

    if device in (None, "auto") and torch.cuda.is_available():
        return
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // worker_count))
