"""``python:MODULE:ATTR``: any Python callable as a reward model.

ATTR is ``(prompts: list[str], responses: list[str]) -> Sequence[float]`` over
parallel lists; this module does the batching and checks the contract on every
batch, so a broken callable fails with the batch and value that broke it
instead of a misaligned score table. MODULE may also be a ``.py`` file path.

An item-level callable says so with an attribute ``unit = "item"`` (on the
function, or on the object whose ``score`` is used): it is then called as
``(prompts: list[str], responses: list[list[str]]) -> Sequence[Sequence[float]]``,
one prompt and its k responses per item, one row of k scores back per item.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ScorerError
from .base import ScorerOptions, ScoreStats

DEFAULT_BATCH = 64  # pairs per call; a callable that wants more can be given batch_size
DEFAULT_ITEM_BATCH = 16  # items per call for item-level callables (64 pairs' worth)


class PythonScorer:
    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        self.spec, self.options = spec, options
        module_name, sep, attr = target.rpartition(":")
        if not sep or not module_name or not attr:
            raise ScorerError(f"Scorer spec {spec!r} must be python:MODULE:ATTR, e.g. python:my_rewards:score "
                              "(MODULE may be a dotted module or a .py file).")
        self.fn, unit = _resolve(module_name, attr, spec)
        self.unit = "item" if unit == "item" else "pair"
        self.batch_size = options.batch_size or (DEFAULT_BATCH if self.unit == "pair" else DEFAULT_ITEM_BATCH)
        # Python callables are opaque: cache them only when the user names a version.
        self.fingerprint = f"python:{target}:version={options.version}" if options.version else None
        self.stats = ScoreStats(model_loaded=True)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        out = np.empty(len(prompts), dtype=np.float64)
        n_batches = max(1, math.ceil(len(prompts) / self.batch_size))
        for b, start in enumerate(range(0, len(prompts), self.batch_size)):
            ps = list(prompts[start:start + self.batch_size])
            rs = list(responses[start:start + self.batch_size])
            out[start:start + len(ps)] = self._call(ps, rs, b + 1, n_batches)
        self.stats.pairs_scored += len(prompts)
        return out

    def score_items(self, prompts: Sequence[str], responses: Sequence[Sequence[str]]) -> np.ndarray:
        k = len(responses[0]) if len(responses) else 0
        out = np.empty((len(prompts), k), dtype=np.float64)
        n_batches = max(1, math.ceil(len(prompts) / self.batch_size))
        for b, start in enumerate(range(0, len(prompts), self.batch_size)):
            ps = list(prompts[start:start + self.batch_size])
            rs = [list(r) for r in responses[start:start + self.batch_size]]
            where = f"{self.spec} (batch {b + 1} of {n_batches}, {len(ps)} items)"
            rows = self._invoke(ps, rs, where, "items")
            for i, row in enumerate(rows):
                out[start + i] = self._floats(row, len(rs[i]), f"{where}, item {i}", "responses")
        self.stats.pairs_scored += len(prompts)
        return out

    def _invoke(self, ps: list[str], rs: list, where: str, what: str) -> list:
        try:
            result = self.fn(ps, rs)
        except Exception as exc:  # the user's code: report it as one readable line
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            raise ScorerError(f"The scorer {where} raised {type(exc).__name__}: {exc} "
                              f"(at {frame.filename}:{frame.lineno}). Fix the callable; scores already "
                              "computed for earlier batches are kept in the cache when it is on.") from None
        try:
            values = list(result)
        except TypeError:
            raise ScorerError(f"The scorer {where} returned {type(result).__name__}, not a sequence. "
                              f"Fix: return one entry per {what[:-1]}.") from None
        if len(values) != len(ps):
            got = "scores" if what == "pairs" else "rows"
            raise ScorerError(f"The scorer {where} returned {len(values)} {got} for {len(ps)} {what}. "
                              f"Fix: return exactly one {'float' if what == 'pairs' else 'row of scores'} per "
                              f"{what[:-1]}, in order.")
        return values

    def _floats(self, row: object, k: int, where: str, what: str) -> np.ndarray:
        try:
            values = list(row)
        except TypeError:
            raise ScorerError(f"The scorer {where} returned {row!r}, not a sequence of {k} floats. "
                              "Fix: return one score per response, in the given order.") from None
        if len(values) != k:
            raise ScorerError(f"The scorer {where} returned {len(values)} scores for {k} {what}. "
                              "Fix: return one score per response, in the given order.")
        arr = np.empty(k, dtype=np.float64)
        for i, v in enumerate(values):
            try:
                if isinstance(v, (str, bytes)):
                    raise TypeError
                arr[i] = float(v)
            except (TypeError, ValueError):
                raise ScorerError(f"The scorer {where} returned a non-numeric score {v!r} at position {i}. "
                                  "Fix: return floats (NaN is allowed and counts as a wrong answer).") from None
        return arr

    def _call(self, ps: list[str], rs: list[str], b: int, n: int) -> np.ndarray:
        where = f"{self.spec} (batch {b} of {n}, {len(ps)} pairs)"
        return self._floats(self._invoke(ps, rs, where, "pairs"), len(ps), where, "pairs")


def _resolve(module_name: str, attr: str, spec: str) -> tuple[Callable, str]:
    try:
        module = _import(module_name, spec)
    except ScorerError:
        raise
    except Exception as exc:  # the user's module failed while importing: one readable line
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        raise ScorerError(f"Scorer spec {spec!r}: importing {module_name} raised {type(exc).__name__}: {exc} "
                          f"(at {frame.filename}:{frame.lineno}). Fix that module.") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            from ..errors import did_you_mean

            raise ScorerError(f"Scorer spec {spec!r}: {module_name} has no attribute {attr!r}."
                              f"{did_you_mean(part, names)}")
        obj = getattr(obj, part)
    unit = getattr(obj, "unit", "pair")
    if hasattr(obj, "score") and callable(obj.score) and not callable(obj):
        obj = obj.score
    if not callable(obj):
        raise ScorerError(f"Scorer spec {spec!r}: {module_name}.{attr} is a {type(obj).__name__}, not a callable. "
                          "Fix: point at a function (prompts, responses) -> list of floats.")
    return obj, unit


def _import(module_name: str, spec: str):
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise ScorerError(f"Scorer spec {spec!r}: the file {path} does not exist.")
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return module
    top = module_name.split(".")[0]
    for attempt in range(2):
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != top:  # the module exists but something it imports does not
                raise ScorerError(f"Scorer spec {spec!r}: importing {module_name} failed: {exc}. Fix: install "
                                  "what it needs in this environment.") from None
        # `pytest` (unlike `python -m pytest`) leaves the working directory off sys.path;
        # a reward function next to the model is the common case, so look there too.
        if attempt or os.getcwd() in sys.path:
            break
        sys.path.insert(0, os.getcwd())
    raise ScorerError(f"Scorer spec {spec!r}: no module named {module_name!r}. Fix: run from the directory "
                      "that holds it, install it, or give a .py file path (python:path/to/file.py:ATTR).")
