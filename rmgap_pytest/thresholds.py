"""The thresholds file: schema, validation, and the floor or ceiling for each check.

Validated in full at start-up, before any model is loaded: a typo in a cell
name must not silently un-gate that cell. Every error names the file, the key
and the fix, with a "did you mean" for near misses.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .data import DIMENSIONS, DOMAINS
from .errors import ThresholdsError, did_you_mean
from .metrics import ALL, AVG, METRICS
from .regression import TIERS

if TYPE_CHECKING:
    from .regression import RegressionSettings

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
# - regression: every regression unit (Pair, BoN, Consistency per Avg, domain and gated
#   cell) is tested as one family (regression.py, familywise.py), so a harmless change
#   fails the gate in at most 1 - confidence of runs in total. The tolerance is only a
#   practical floor now, no longer a noise margin: 0.01 (one BoN point) lets a 3-point Avg
#   drop be caught in >= 90% of runs at release size (docs/regression.md). The weights
#   share the error rate between tiers: the 3 Avg units get 35% so a small drop there is
#   seen; the 300 per-domain cells get 20%, enough for drops of ~0.1 that they can see
#   at all (rmgap calibrate prints each tier's smallest detectable drop); the 10 bias and
#   sensitivity units get 10%, taken from avg (0.40 before) and all_cells (0.30 before).
#   sd_tolerance is their practical floor in SD of reward (docs/why.md).
# - bias / sensitivity: off (null) by default. They gate what a model rewards whoever asks
#   and how far it follows the user (docs/why.md has the values the baselines reach and the
#   suggested ceilings and floors).
DEFAULTS: dict[str, Any] = {
    "min_support": 10,
    "floors": {"Pair": 0.55, "BoN": 0.30, "Consistency": 0.10},
    "cell_floors": {"Pair": 0.50, "BoN": 0.25, "Consistency": None},
    "domains": {},
    "cells": {},
    "gaps": {"max": 0.50},
    "blindness": {"max": 0.50},
    "bias": {"max": None},
    "sensitivity": {"min": None},
    "regression": {"tolerance": 0.01, "sd_tolerance": 0.02, "confidence": 0.95, "n_boot": 1000, "seed": 0,
                   "weights": {"avg": 0.35, "domain": 0.1, "all_cells": 0.25, "domain_cells": 0.2,
                               "bias_sensitivity": 0.1}},
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

    def regression_settings(self) -> "RegressionSettings":
        """The baseline comparison's settings (``regression.compare_outcomes``)."""
        from .regression import RegressionSettings

        reg = self.raw["regression"]
        return RegressionSettings(tolerance=float(reg["tolerance"]), confidence=float(reg["confidence"]),
                                  n_boot=int(reg["n_boot"]), seed=int(reg["seed"]), min_support=self.min_support,
                                  weights=dict(reg["weights"]), sd_tolerance=float(reg["sd_tolerance"]))

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

    def bias_ceiling(self, dimension: str) -> float | None:
        """Ceiling on |style bias| of a dimension, in SD of reward per level; None: not gated."""
        return self.raw["bias"].get(dimension, self.raw["bias"].get("max"))

    def sensitivity_floor(self, domain: str) -> float | None:
        """Floor on the preference sensitivity of a domain (All: every user), in SD of reward; None: not gated."""
        return self.raw["sensitivity"].get(domain, self.raw["sensitivity"].get("min"))


def cell_name(domain: str, dimension: str, level: str) -> str:
    return f"{domain}/{dimension}={level}"


ALL_CELLS = [cell_name(d, dim, lvl) for d in [*DOMAINS, ALL] for dim, lvls in DIMENSIONS.items() for lvl in lvls]
ALL_GAPS = [f"{d}/{dim}" for d in [*DOMAINS, ALL] for dim in DIMENSIONS]


def default_thresholds_path() -> Path:
    """thresholds.yaml as shipped with rmgap-pytest (the repository's top-level file, inside the wheel):
    the defaults, documented key by key. ``DEFAULTS`` holds the same values (a test checks they agree)."""
    from .data import shipped_file

    return shipped_file("thresholds.yaml", "thresholds.yaml")


def load_thresholds(path: str | Path | None) -> Thresholds:
    """Read and validate a thresholds file; None gives the shipped thresholds.yaml (the defaults)."""
    if path is None:
        shipped = default_thresholds_path()
        if not shipped.is_file():  # a broken install: the same values, from DEFAULTS
            return Thresholds()
        loaded = load_thresholds(shipped)
        return Thresholds(loaded.raw, "defaults (thresholds.yaml shipped with rmgap-pytest)")
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
        elif key == "bias":
            for name, ceiling in _mapping(source, key, value).items():
                _known(source, key, name, ["max", *DIMENSIONS], example="Conciseness")
                merged[key][name] = _sd(source, f"{key}.{name}", ceiling, "SD of reward per level, e.g. 0.3")
        elif key == "sensitivity":
            for name, floor in _mapping(source, key, value).items():
                _known(source, key, name, ["min", ALL, *DOMAINS])
                merged[key][name] = _sd(source, f"{key}.{name}", floor, "SD of reward, e.g. 0.3")
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


def _sd(source: str, key: str, value: Any, example: str) -> float | None:
    """A threshold in SD of reward (``bias.py``'s standardised units): a finite number >= 0; null: off."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ThresholdsError(f"{source}: {key} = {value!r} must be a number >= 0 in {example} (or null to turn "
                              "the check off); docs/why.md explains the unit.")
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
    out: dict[str, Any] = copy.deepcopy(DEFAULTS["regression"])
    for name, v in _mapping(source, "regression", value).items():
        _known(source, "regression", name, list(DEFAULTS["regression"]))
        if name == "sd_tolerance":
            v = _sd(source, "regression.sd_tolerance", v, "SD of reward, e.g. 0.05")
            if v is None:
                raise ThresholdsError(f"{source}: regression.sd_tolerance cannot be null.")
        elif name in ("tolerance", "confidence"):
            v = _unit(source, f"regression.{name}", v)
            if v is None:
                raise ThresholdsError(f"{source}: regression.{name} cannot be null.")
            if name == "confidence" and not 0 < v < 1:
                raise ThresholdsError(f"{source}: regression.confidence = {v!r} must lie strictly between 0 and 1 "
                                      "(0.95: a harmless change fails the gate in at most 5% of runs).")
        elif name == "seed":
            v = _count(source, "regression.seed", v, minimum=0, what="(a random seed)")
        elif name == "weights":
            v = _weights(source, v)
        else:
            v = _count(source, "regression.n_boot", v, minimum=100, what="sign flips")
        out[name] = v
    _enough_flips(source, out)
    return out


def _weights(source: str, value: Any) -> dict[str, float]:
    out = {}
    for tier, w in _mapping(source, "regression.weights", value).items():
        _known(source, "regression.weights", tier, list(TIERS))
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ThresholdsError(f"{source}: regression.weights.{tier} = {w!r} must be a number >= 0 (0 takes "
                                  "that tier out of the regression gate).")
        out[tier] = float(w)
    merged = {**DEFAULTS["regression"]["weights"], **out}
    if not any(w > 0 for w in merged.values()):
        raise ThresholdsError(f"{source}: regression.weights are all 0, so nothing could regress. Fix: give a tier "
                              "a positive weight, or leave --rmgap-baseline out to skip the comparison.")
    return merged


def _enough_flips(source: str, reg: dict[str, Any]) -> None:
    """Each tier's share of the error rate needs enough sign flips to be reachable at all."""
    weights = {t: w for t, w in reg["weights"].items() if w > 0}
    alpha = 1 - reg["confidence"]
    for tier, w in weights.items():
        share = alpha * w / sum(weights.values())
        if share * (reg["n_boot"] + 1) < 1:
            need = int(1 / share)
            raise ThresholdsError(f"{source}: regression.n_boot = {reg['n_boot']} is too few sign flips for the tier "
                                  f"{tier!r}: its weight gives it {share:.4%} of the error rate, so no unit in it could "
                                  f"ever regress. Fix: set n_boot to at least {need}, or raise that weight.")
