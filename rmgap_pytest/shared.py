"""One evaluation per pytest-xdist run, computed by one process and read by the others.

Under ``pytest -n N`` every worker scores through the store (each chunk once in
total) and then needs the same result: outcome table, metrics, bootstrap, bias
table, comparison and decided checks. Each computing its own cost N + 1 times the
work of a serial run (the controller needs it too, for the report files): at
release size with ``builtin:length`` that made ``-n 2`` 2.4x slower than serial
(issue 11). Instead the first process to finish scoring computes the result under
a lock in the run's directory and publishes it there; every other process of the
run waits on the lock and reads it. Scores come from the same store, so the result
is the one each process would have computed (tests/test_shared.py checks the
metrics.json bytes against a serial run).

The lock is an OS file lock (``filelock``): a process that dies while computing
drops it, and the next waiter finds nothing published and computes itself. The
file is a pickle: it never leaves the run's private directory (``mkdtemp``, mode
0700, deleted when the run ends), which only this run's processes can write, so it
is read only by the processes that wrote it.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["once_per_run", "published", "run_dir"]

T = TypeVar("T")
RESULT, LOCK = "evaluation.pickle", "evaluation.lock"


def run_dir(store: str | os.PathLike[str] | None) -> Path | None:
    """The run's private directory: the one holding its run-scoped store (None outside xdist)."""
    return None if store is None else Path(store).parent


def published(directory: Path | None) -> Any | None:
    """What a process of this run published, or None. Never a partial file: it is renamed into place."""
    if directory is None:
        return None
    try:
        with open(directory / RESULT, "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        return None


def once_per_run(directory: Path | None, compute: Callable[[], T]) -> T:
    """``compute()`` once per run: the first caller computes and publishes, the others read.

    ``directory`` None (a serial run): just ``compute()``. An exception in ``compute``
    publishes nothing, so the next process tries itself (and meets the same error).
    """
    if directory is None:
        return compute()
    from filelock import FileLock

    with FileLock(directory / LOCK):
        done = published(directory)
        if done is not None:
            return done
        value = compute()
        tmp = directory / f"{RESULT}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, directory / RESULT)
        return value
