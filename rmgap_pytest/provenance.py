"""Where a run's scores came from: the settings a scorer resolved, and the model's git commit.

``report.json`` records both (``meta.resolved``, ``meta.git``) so that a reader
can reproduce a run and the history can key runs by commit: ``auto`` means
bf16 on one machine and fp32 on another, and "the checkpoint" means a commit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

__all__ = ["git_info", "model_path", "resolved_settings"]


def _inner(scorer: Any) -> Any:
    """The scorer behind a store wrapper (``stored.StoredScorer``)."""
    return getattr(scorer, "inner", scorer)


def model_fingerprint(scorer: Any) -> str | None:
    """The model's own fingerprint (its score-cache key); None for a scorer whose scores are not cached.

    Not the wrapper's: with the cache off, xdist workers share scores under a key of the run
    (``run:<id>``), which says nothing about the model and would differ from the serial run's report.
    """
    return _inner(scorer).fingerprint


def resolved_settings(scorer: Any) -> dict[str, Any]:
    """What ``auto`` and the defaults became: dtype, device, batch budget, max length, template hash, ...

    A scorer describes itself through an optional ``resolved_settings()`` method
    (model-backed kinds implement it); others have nothing to resolve: ``{}``.
    """
    fn = getattr(_inner(scorer), "resolved_settings", None)
    return dict(fn()) if callable(fn) else {}


def model_path(scorer: Any) -> Path | None:
    """The local model directory a scorer reads, if it reads one."""
    path = getattr(_inner(scorer), "path", None)
    return Path(path) if isinstance(path, (str, Path)) and Path(path).is_dir() else None


def git_info(path: Path | None) -> dict[str, Any] | None:
    """``{"commit", "dirty", "root"}`` of the git checkout holding ``path``; None outside one (or without git)."""
    if path is None:
        return None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return {"commit": commit, "dirty": bool(status), "root": git("rev-parse", "--show-toplevel")}
