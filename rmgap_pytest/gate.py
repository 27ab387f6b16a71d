"""The gate's checks: which exist, and how each one is decided.

``plan_checks`` depends only on the data, the thresholds and whether a
baseline is given, so every pytest-xdist worker collects the same items
before any model is scored. ``decide_checks`` turns an evaluation (and an
optional baseline comparison) into one verdict row per (check, metric).

Style bias and preference sensitivity (``bias.py``) are gated only when the
thresholds file sets a ceiling or a floor (``bias[Conciseness]``,
``sensitivity[All]``), decided on the point estimate like every other floor;
against a baseline they are regression units of the one family-wise family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .bias_units import BIAS_METRIC, SENSITIVITY_METRIC, TIER as WHY_TIER, WhyLayout
from .data import DIMENSIONS, DOMAINS, Benchmark, item_table
from .findings import bias_words
from .metrics import ALL, AVG, METRICS, key_part
from .regression import item_ids, regression_item_id, tier_of
from .thresholds import Thresholds, cell_name

CHECK_COLUMNS = ["id", "kind", "domain", "dimension", "level", "metric", "value", "lo", "hi", "threshold",
                 "direction", "support", "status", "reason", "mde"]  # mde: regression rows only (NaN elsewhere)


@dataclass(frozen=True)
class CheckSpec:
    """One gate test item, known before scoring."""

    id: str
    kind: str  # avg | domain | cell | gap | blindness | bias | sensitivity | regression
    domain: str
    dimension: str | None = None
    level: str | None = None
    metric: str | None = None  # None: every metric of a cell
    support: int | None = None  # prompt groups, for cells


def cell_supports(bench: Benchmark) -> dict[tuple[str, str, str], int]:
    """Prompt groups per (domain or All, dimension, winner level): known from the data alone."""
    groups = item_table(bench)
    groups = groups[groups["prompt"] == 0]
    out: dict[tuple[str, str, str], int] = {}
    for dim in DIMENSIONS:
        if groups[dim].isna().all():
            continue
        for (dom, lvl), n in groups.groupby(["domain", dim]).size().items():
            out[(dom, dim, lvl)] = int(n)
        for lvl, n in groups.groupby(dim).size().items():
            out[(ALL, dim, lvl)] = int(n)
    return out


def _ordered_cells(supports: dict[tuple[str, str, str], int]) -> list[tuple[str, str, str]]:
    return [(d, dim, lvl) for d in [*DOMAINS, ALL] for dim, lvls in DIMENSIONS.items() for lvl in lvls
            if (d, dim, lvl) in supports]


def plan_checks(bench: Benchmark, thresholds: Thresholds, with_baseline: bool = False) -> list[CheckSpec]:
    """Every gate item, in a stable order: averages, domains, cells, gaps, blindness, style bias and
    sensitivity (when a threshold is set), regressions."""
    domains = bench.domains
    supports = cell_supports(bench)
    why = WhyLayout.from_items(item_table(bench)).labels
    cells = _ordered_cells(supports)
    specs = [CheckSpec(f"avg[{m}]", "avg", AVG, metric=m) for m in METRICS]
    specs += [CheckSpec(f"domain[{d}/{m}]", "domain", d, metric=m) for d in domains for m in METRICS]
    specs += [CheckSpec(f"cell[{cell_name(d, dim, lvl)}]", "cell", d, dim, lvl, support=supports[(d, dim, lvl)])
              for d, dim, lvl in cells]
    gap_keys = sorted({(d, dim) for d, dim, _ in cells}, key=lambda k: ([*DOMAINS, ALL].index(k[0]),
                                                                         list(DIMENSIONS).index(k[1])))
    specs += [CheckSpec(f"gap[{d}/{dim}]", "gap", d, dim, metric="BoN gap") for d, dim in gap_keys]
    specs += [CheckSpec(f"blindness[{d}]", "blindness", d, metric="Prompt blindness") for d in [*domains, ALL]]
    specs += [CheckSpec(f"bias[{dim}]", "bias", ALL, dim, metric=BIAS_METRIC) for dim in DIMENSIONS
              if thresholds.bias_ceiling(dim) is not None]
    users = {r.domain: int(r.support) for r in why[why["kind"] == "sensitivity"].itertuples(index=False)}
    specs += [CheckSpec(f"sensitivity[{d}]", "sensitivity", d, metric=SENSITIVITY_METRIC, support=users.get(d))
              for d in [ALL, *domains] if thresholds.sensitivity_floor(d) is not None]
    if with_baseline:  # the regression family: a tier weighted 0 is not gated, so it has no items
        weighted = {t for t, w in thresholds.raw["regression"]["weights"].items() if w > 0}
        specs += [CheckSpec(f"regression[{d}/{m}]", "regression", d, metric=m) for d in [AVG, *domains]
                  for m in METRICS if tier_of("domain", d) in weighted]
        specs += [CheckSpec(f"regression[{cell_name(d, dim, lvl)}]", "regression", d, dim, lvl,
                            support=supports[(d, dim, lvl)])
                  for d, dim, lvl in cells
                  if supports[(d, dim, lvl)] >= thresholds.min_support and tier_of("cell", d) in weighted]
        if WHY_TIER in weighted:
            specs += [CheckSpec(regression_item_id(r.kind, r.domain, r.dimension, None, r.metric), "regression",
                                r.domain, r.dimension, metric=r.metric, support=int(r.support))
                      for r in why.itertuples(index=False)]
    return specs


def _row(spec: CheckSpec, metric: str, value: float, lo: float, hi: float, threshold: float | None,
         direction: str, support: int | None, reason_if_fail: str = "") -> dict:
    if threshold is None:
        status, reason = "pass", "not gated (threshold is null)"
    elif value is None or not np.isfinite(value):
        status, reason = "fail", "no value (every item invalid?)"
    else:
        ok = value >= threshold if direction == "min" else value <= threshold
        status, reason = ("pass", "") if ok else ("fail", reason_if_fail)
    return dict(id=spec.id, kind=spec.kind, domain=spec.domain, dimension=spec.dimension, level=spec.level,
                metric=metric, value=value, lo=lo, hi=hi, threshold=threshold, direction=direction,
                support=support, status=status, reason=reason, mde=np.nan)


def _skip(spec: CheckSpec, metric: str | None, reason: str) -> dict:
    return dict(id=spec.id, kind=spec.kind, domain=spec.domain, dimension=spec.dimension, level=spec.level,
                metric=metric, value=np.nan, lo=np.nan, hi=np.nan, threshold=None, direction=None,
                support=spec.support, status="skip", reason=reason, mde=np.nan)


def decide_checks(specs: list[CheckSpec], table: pd.DataFrame, thresholds: Thresholds,
                  comparison: pd.DataFrame | None = None, bias: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (check, metric); a check fails when any of its rows fails.

    ``table``: ``metrics.metric_table``; ``comparison``: ``regression.compare_outcomes``;
    ``bias``: ``bias.bias_table`` (``Evaluation.bias``), for the bias and sensitivity items.
    """
    lookup = {(r.kind, r.domain, key_part(r.dimension), key_part(r.level), r.metric): r
              for r in table.itertuples(index=False)}
    why = {} if bias is None else {(r.kind, r.domain, key_part(r.dimension)): r for r in bias.itertuples(index=False)
                                   if r.kind != "sensitivity_trend" and key_part(r.level) is None}
    rows: list[dict] = []
    for spec in specs:
        if spec.kind in ("avg", "domain"):
            r = lookup[("domain", spec.domain, None, None, spec.metric)]
            rows.append(_row(spec, spec.metric, r.value, r.lo, r.hi, thresholds.domain_floor(spec.domain, spec.metric),
                             "min", r.support, "below the floor"))
        elif spec.kind == "cell":
            rows += _cell_rows(spec, lookup, thresholds)
        elif spec.kind == "gap":
            r = lookup.get(("gap", spec.domain, spec.dimension, _gap_level(table, spec), "BoN gap"))
            if r is None:
                rows.append(_skip(spec, "BoN gap", f"fewer than 2 levels reach min_support {thresholds.min_support}"))
            else:
                rows.append(_row(spec, "BoN gap", r.value, r.lo, r.hi, thresholds.gap_ceiling(spec.domain, spec.dimension),
                                 "max", r.support, f"{r.level}: some users are served far worse than others"))
        elif spec.kind == "blindness":
            r = lookup[("blindness", spec.domain, None, None, "Prompt blindness")]
            rows.append(_row(spec, "Prompt blindness", r.value, r.lo, r.hi, thresholds.blindness_ceiling(spec.domain),
                             "max", r.support, "the model ignores what the user asked on too many records"))
        elif spec.kind in ("bias", "sensitivity"):
            rows.append(_why_row(spec, why.get((spec.kind, spec.domain, spec.dimension)), thresholds))
        elif spec.kind == "regression":
            rows += _regression_rows(spec, comparison, thresholds)
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def _why_row(spec: CheckSpec, r: Any, thresholds: Thresholds) -> dict:
    """A style-bias ceiling on |coefficient| (its interval folded at zero) or a sensitivity floor."""
    if r is None or not np.isfinite(r.value):
        what = "style profiles that tell the five dimensions apart" if spec.kind == "bias" else \
            "records whose four users want four different responses"
        return _skip(spec, spec.metric, f"not measurable: the data has no {what}")
    if spec.kind == "sensitivity":
        return _row(spec, spec.metric, r.value, r.lo, r.hi, thresholds.sensitivity_floor(spec.domain), "min",
                    int(r.support), "the model does not follow what users ask for")
    lo, hi = sorted((abs(r.lo), abs(r.hi)))
    lo = 0.0 if r.lo <= 0 <= r.hi else lo
    word, towards = bias_words(spec.dimension, r.value)
    return _row(spec, spec.metric, abs(r.value), lo, hi, thresholds.bias_ceiling(spec.dimension), "max", None,
                f"rewards {word} whoever asks ({r.value:+.2f} SD per level towards {towards})")


def _gap_level(table: pd.DataFrame, spec: CheckSpec) -> str | None:
    hit = table[(table["kind"] == "gap") & (table["domain"] == spec.domain) & (table["dimension"] == spec.dimension)]
    return hit["level"].iloc[0] if len(hit) else None


def _cell_rows(spec: CheckSpec, lookup: dict, thresholds: Thresholds) -> list[dict]:
    if spec.support is not None and spec.support < thresholds.min_support:
        return [_skip(spec, None, f"support {spec.support} prompt groups < min_support {thresholds.min_support}")]
    rows = []
    for m in METRICS:
        floor = thresholds.cell_floor(spec.domain, spec.dimension, spec.level, m)
        if floor is None:
            continue
        r = lookup[("cell", spec.domain, spec.dimension, spec.level, m)]
        rows.append(_row(spec, m, r.value, r.lo, r.hi, floor, "min", r.support, "below the floor"))
    return rows or [_skip(spec, None, "every metric of this cell is un-gated (null floors)")]


def _regression_rows(spec: CheckSpec, comparison: pd.DataFrame | None, thresholds: Thresholds) -> list[dict]:
    if comparison is None:
        return [_skip(spec, spec.metric, "no baseline to compare with")]
    sel = comparison[np.array(item_ids(comparison), dtype=object) == spec.id] if len(comparison) else comparison
    if not len(sel):
        return [_skip(spec, spec.metric, "not measurable in this comparison")]
    rows = []
    for r in sel.itertuples(index=False):
        # Worse is down for a share or the sensitivity; for a style bias, away from zero (its current side).
        up = r.kind == "bias" and r.current >= 0
        # Support: what the unit's MDE and interval were computed at (prompt groups; a domain has no spec support).
        support = None if pd.isna(r.support) else int(r.support)
        row = _row(spec, r.metric, r.diff, r.lo, r.hi, r.tolerance if up else -r.tolerance, "max" if up else "min",
                   support)
        # The decision is the family-wise one (regression.py): the point estimate alone does not decide.
        row["status"] = "fail" if r.regressed else "pass"
        row["reason"] = regression_reason(r) if r.regressed else ""
        row["mde"] = r.mde
        rows.append(row)
    return rows


def regression_reason(r: Any) -> str:
    """Why a unit regressed, with its adjusted interval and what this unit can see at all."""
    if r.kind == "bias":
        return (f"moved {abs(r.current) - abs(r.baseline):.3f} SD per level further from zero ({r.baseline:+.3f} -> "
                f"{r.current:+.3f}): the family-wise interval [{r.lo:+.3f}, {r.hi:+.3f}] excludes zero and the "
                f"change exceeds the tolerance {r.tolerance:g}; the smallest change this unit can flag is {r.mde:.3f}")
    unit = " SD" if r.kind == "sensitivity" else ""
    return (f"dropped {-r.diff:.3f}{unit} ({r.baseline:.3f} -> {r.current:.3f}): the family-wise interval "
            f"[{r.lo:+.3f}, {r.hi:+.3f}] lies below zero and the drop exceeds the tolerance {r.tolerance:g}; "
            f"the smallest drop this unit can flag at support {int(r.support)} is {r.mde:.3f}")


def check_status(rows: pd.DataFrame) -> str:
    """fail if any metric failed, skip if all skipped, else pass."""
    statuses = set(rows["status"])
    return "fail" if "fail" in statuses else "skip" if statuses == {"skip"} else "pass"
