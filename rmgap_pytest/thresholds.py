"""The thresholds file: schema, validation, and the floor or ceiling for each check.

Validated in full at start-up, before any model is loaded: a typo in a cell
name must not silently un-gate that cell. Every error names the file, the key
and the fix, with a "did you mean" for near misses.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data import DIMENSIONS, DOMAINS
from .errors import ThresholdsError, did_you_mean
from .metrics import ALL, AVG, METRICS

# Why these defaults (chance: Pair 0.50, BoN 0.25; the best of 24 published reward
# models reaches BoN 0.49 on the release):
# - Domain floors sit a little above chance: a reward model that cannot beat a coin on a
#   whole domain is broken, while a good one clears them with room to spare.
# - Cell floors are at chance: a cell below chance means one kind of user is served
#   worse than by a coin flip, which is exactly the bias the gate exists to catch
#   (builtin:length scores BoN 0 for every terse-preferring user).
# - Consistency is not gated per cell: a prompt-blind model is perfectly consistent,
#   so consistency only means something next to BoN; the domain floor catches a model
#   whose ranking flips between paraphrases of one request.
# - A preference gap above 0.5 means some users get a model right at least 50 points
#   more often than others; prompt blindness above 0.5 means the model ignores the
#   user on most records.
# - min_support 10 prompt groups (30 items): below that a cell's 95% interval on BoN
#   spans more than about +-0.2, too wide to gate on.
DEFAULTS: dict[str, Any] = {
    "min_support": 10,
    "floors": {"Pair": 0.55, "BoN": 0.30, "Consistency": 0.10},
    "cell_floors": {"Pair": 0.50, "BoN": 0.25, "Consistency": None},
    "domains": {},
    "cells": {},
    "gaps": {"max": 0.50},
    "blindness": {"max": 0.50},
    "regression": {"tolerance": 0.02, "confidence": 0.95, "n_boot": 1000, "seed": 0},
}
DEFAULT_MIN_SUPPORT: int = DEFAULTS["min_support"]
_SECTIONS = list(DEFAULTS)


@dataclass
class Thresholds:
    """A validated thresholds file merged over the defaults."""

    raw: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULTS))
    source: str = "built-in defaults"

    @property
    def min_support(self) -> int:
        return int(self.raw["min_support"])

    @property
    def tolerance(self) -> float:
        return float(self.raw["regression"]["tolerance"])

    @property
    def confidence(self) -> float:
        return float(self.raw["regression"]["confidence"])

    def domain_floor(self, domain: str, metric: str) -> float | None:
        """Floor for a domain (or Avg) metric: per-domain override, else the default floor."""
        return self.raw["domains"].get(domain, {}).get(metric, self.raw["floors"].get(metric))

    def cell_floor(self, domain: str, dimension: str, level: str, metric: str) -> float | None:
        name = cell_name(domain, dimension, level)
        return self.raw["cells"].get(name, {}).get(metric, self.raw["cell_floors"].get(metric))

    def gap_ceiling(self, domain: str, dimension: str) -> float | None:
        return self.raw["gaps"].get(f"{domain}/{dimension}", self.raw["gaps"].get("max"))

    def blindness_ceiling(self, domain: str) -> float | None:
        return self.raw["blindness"].get(domain, self.raw["blindness"].get("max"))


def cell_name(domain: str, dimension: str, level: str) -> str:
    return f"{domain}/{dimension}={level}"


ALL_CELLS = [cell_name(d, dim, lvl) for d in [*DOMAINS, ALL] for dim, lvls in DIMENSIONS.items() for lvl in lvls]
ALL_GAPS = [f"{d}/{dim}" for d in [*DOMAINS, ALL] for dim in DIMENSIONS]


def load_thresholds(path: str | Path | None) -> Thresholds:
    """Read and validate a thresholds file; None gives the built-in defaults."""
    if path is None:
        return Thresholds()
    p = Path(path)
    if not p.is_file():
        raise ThresholdsError(f"{p}: the thresholds file does not exist. Fix: copy thresholds.yaml from the "
                              "rmgap-pytest repository, or leave --rmgap-thresholds out to use the defaults.")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise ThresholdsError(f"{p}{where}: not valid YAML ({getattr(exc, 'problem', exc)}). "
                              "Fix: check the indentation and quoting there.") from None
    return Thresholds(validate(data, str(p)), str(p))


def validate(data: Any, source: str = "thresholds") -> dict[str, Any]:
    """Check every key and value; return the file merged over the defaults."""
    if not isinstance(data, dict):
        raise ThresholdsError(f"{source}: the top level must be a mapping of sections "
                              f"({', '.join(_SECTIONS)}).")
    merged = copy.deepcopy(DEFAULTS)
    for key, value in data.items():
        _known(source, "", key, _SECTIONS)
        if key == "min_support":
            merged[key] = _count(source, key, value)
        elif key in ("floors", "cell_floors"):
            merged[key].update(_metric_map(source, key, value))
        elif key == "domains":
            for dom, floors in _mapping(source, key, value).items():
                _known(source, key, dom, [*DOMAINS, AVG])
                merged[key][dom] = _metric_map(source, f"{key}.{dom}", floors)
        elif key == "cells":
            for cell, floors in _mapping(source, key, value).items():
                _known(source, key, cell, ALL_CELLS, example="Chat/Conciseness=terse")
                merged[key][cell] = _metric_map(source, f"{key}.{cell}", floors)
        elif key == "gaps":
            for name, ceiling in _mapping(source, key, value).items():
                _known(source, key, name, ["max", *ALL_GAPS], example="Writing/Formality")
                merged[key][name] = _unit(source, f"{key}.{name}", ceiling)
        elif key == "blindness":
            for name, ceiling in _mapping(source, key, value).items():
                _known(source, key, name, ["max", *DOMAINS, ALL])
                merged[key][name] = _unit(source, f"{key}.{name}", ceiling)
        elif key == "regression":
            merged[key].update(_regression(source, value))
    return merged


def _known(source: str, section: str, key: Any, choices: list[str], example: str = "") -> None:
    if key not in choices:
        where = f"{section}: " if section else ""
        hint = did_you_mean(str(key), choices)
        shown = f"e.g. {example!r}" if example else f"one of {', '.join(choices)}"
        raise ThresholdsError(f"{source}: {where}unknown key {key!r}.{hint} Fix: use {shown}.")


def _mapping(source: str, key: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ThresholdsError(f"{source}: {key} must be a mapping, got {type(value).__name__} ({value!r}).")
    return value


def _unit(source: str, key: str, value: Any) -> float | None:
    """A threshold in [0, 1]; null turns the check off."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ThresholdsError(f"{source}: {key} = {value!r} must be a number between 0 and 1 (or null to turn "
                              "the check off).")
    return float(value)


def _count(source: str, key: str, value: Any, minimum: int = 1, what: str = "prompt groups") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ThresholdsError(f"{source}: {key} = {value!r} must be a whole number of {what}, at least {minimum}.")
    return value


def _metric_map(source: str, key: str, value: Any) -> dict[str, float | None]:
    out = {}
    for metric, threshold in _mapping(source, key, value).items():
        _known(source, key, metric, list(METRICS))
        out[metric] = _unit(source, f"{key}.{metric}", threshold)
    return out


def _regression(source: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, v in _mapping(source, "regression", value).items():
        _known(source, "regression", name, list(DEFAULTS["regression"]))
        if name in ("tolerance", "confidence"):
            v = _unit(source, f"regression.{name}", v)
            if v is None:
                raise ThresholdsError(f"{source}: regression.{name} cannot be null.")
        elif name == "seed":
            v = _count(source, "regression.seed", v, minimum=0, what="(a random seed)")
        else:
            v = _count(source, "regression.n_boot", v, minimum=100, what="bootstrap draws")
        out[name] = v
    return out
