"""The baseline comparison: every regression unit of RMGAP, tested as one family.

A *unit* is one metric over one set of items: Pair, BoN and Consistency for
the Avg, each domain and each category-profile cell; and, in their own tier,
the style bias per dimension and the preference sensitivity overall and per
domain (``bias_units.py``). ``UnitLayout`` turns per-item outcomes into
per-record numerator and denominator matrices (one column per unit), and
``compare_outcomes`` tests every difference at once with
``familywise.stepdown_maxt``. A unit **regresses** when

- it is gated (its tier has a weight and, for a cell, support >= min_support),
- the family-wise adjusted interval of (current - baseline) excludes zero, on
  the worse side: below zero for a share or the sensitivity; for a style bias,
  its absolute value grew (the coefficient moved away from zero), and
- it got worse by more than the tolerance (a practical-significance floor: a
  real but tiny drop does not block a merge): ``tolerance`` for shares,
  ``sd_tolerance`` (SD of reward) for bias and sensitivity.

The family is fixed by the data and the settings alone, before any score is
seen, so a harmless change fails at most ``1 - confidence`` of the time over
all units together. Tiers and their default weights are in ``thresholds.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bias_units import TIER as WHY_TIER, WHY_KINDS, WhyLayout
from .data import N_GROUPS, N_PROMPTS, N_RESPONSES
from .familywise import Differences, FamilyResult, paired_differences, sign_flips, stepdown_maxt
from .metrics import ALL, AVG, COMPARE_COLUMNS, ITEMS_PER_RECORD, METRICS, group_consistency, unit_masks

TIERS: tuple[str, ...] = ("avg", "domain", "all_cells", "domain_cells", WHY_TIER)


def tier_of(kind: str, domain: str) -> str:
    """A unit's tier: avg (Avg), domain (Chat..Safety), all_cells (All/...), domain_cells (Chat/... cells),
    bias_sensitivity (style bias and preference sensitivity)."""
    if kind in WHY_KINDS:
        return WHY_TIER
    if kind == "cell":
        return "all_cells" if domain == ALL else "domain_cells"
    return "avg" if domain == AVG else "domain"


@dataclass(frozen=True)
class RegressionSettings:
    """How the comparison decides; ``Thresholds.regression_settings()`` fills it from the file."""

    tolerance: float  # practical floor: a drop must exceed this (metric units: 0.01 = one point)
    confidence: float  # family-wise: 1 - the chance that a harmless change fails anything
    n_boot: int  # random sign flips
    seed: int
    min_support: int  # prompt groups a cell needs to be gated
    weights: Mapping[str, float]  # tier -> share of 1 - confidence; 0 takes the tier out of the family
    sd_tolerance: float = 0.02  # practical floor of the bias and sensitivity units, in SD of reward


@dataclass(frozen=True)
class UnitLayout:
    """Which items make up each unit, known from the item table alone.

    ``labels``: one row per unit (kind, domain, dimension, level, metric,
    support in prompt groups, tier), metric-major,
    then the three Avg units, then the bias and sensitivity units (``why``).
    ``den``: (records, units) per-record denominators; ``numerators`` gives
    the matching numerators for one run's outcomes.
    """

    labels: pd.DataFrame
    item_mask: np.ndarray  # (records, 12, base units): item i of record r is in domain/cell u
    den: np.ndarray  # (records, units)
    avg_scale: np.ndarray  # (records, 3): 1 / (n_domains * the record's domain total), per metric
    record_domains: np.ndarray  # (records,)
    why: WhyLayout | None = None  # the bias and sensitivity units, last; their numerators need the scores

    @classmethod
    def from_items(cls, items: pd.DataFrame) -> "UnitLayout":
        bare, mask = unit_masks(items)
        labels = [(*lab, tier_of(lab[0], lab[1])) for lab in bare]
        record_domains = items["domain"].to_numpy()[::ITEMS_PER_RECORD]
        dom_cols = [i for i, lab in enumerate(labels) if lab[0] == "domain"]
        item_count = mask.sum(axis=1)
        group_count = mask[:, ::N_PROMPTS, :].sum(axis=1)
        base_den = {"Pair": 3 * item_count, "BoN": item_count, "Consistency": group_count}
        # Avg = unweighted mean of the domain ratios = one ratio of reweighted sums: a record counts
        # 1 / (n_domains * its domain's total), so the Avg's denominator sums to 1.
        names = [labels[c][1] for c in dom_cols]
        rec_col = np.array([dom_cols[names.index(d)] for d in record_domains], dtype=int)
        avg_scale = {m: 1.0 / (len(dom_cols) * base_den[m].sum(axis=0)[rec_col]) for m in METRICS}
        rows, dens = [], []
        for m in METRICS:
            for u, (kind, d, dim, lvl, tier) in enumerate(labels):
                rows.append((kind, d, dim, lvl, m, int(group_count[:, u].sum()), tier))
            dens.append(base_den[m])
        for m in METRICS:
            rows.append(("domain", AVG, None, None, m, int(group_count[:, dom_cols].sum()), tier_of("domain", AVG)))
            dens.append((base_den[m][:, dom_cols].sum(axis=1) * avg_scale[m])[:, None])
        table = pd.DataFrame(rows, columns=["kind", "domain", "dimension", "level", "metric", "support", "tier"])
        scale = np.stack([avg_scale[m] for m in METRICS], axis=1)
        why = WhyLayout.from_items(items)
        if len(why.labels):
            table = pd.concat([table, why.labels], ignore_index=True)
            dens.append(why.den)
        return cls(table, mask, np.concatenate(dens, axis=1), scale, record_domains, why if len(why.labels) else None)

    def numerators(self, wins: np.ndarray, bon: np.ndarray, consistent: np.ndarray,
                   scores: np.ndarray | None = None) -> np.ndarray:
        """Per-record numerators (..., records, units) from per-item outcomes.

        ``wins``, ``bon``: (..., records, 12) in item-table order; ``consistent``:
        (..., records, 4) per prompt group; ``scores``: (..., records, 12, 4), the
        bias and sensitivity units' input (required when the layout has them). A
        leading axis holds several runs.
        """
        mask = self.item_mask
        dom_cols = np.flatnonzero((self.labels["kind"].to_numpy() == "domain")[: mask.shape[2]])
        per_metric = [np.einsum("...ri,riu->...ru", np.asarray(wins, np.float64), mask),
                      np.einsum("...ri,riu->...ru", np.asarray(bon, np.float64), mask),
                      np.einsum("...rg,rgu->...ru", np.asarray(consistent, np.float64), mask[:, ::N_PROMPTS, :])]
        avg = [p[..., dom_cols].sum(axis=-1, keepdims=True) * self.avg_scale[:, j:j + 1]
               for j, p in enumerate(per_metric)]
        why = []
        if self.why is not None:
            if scores is None:
                raise ValueError("this layout has bias and sensitivity units: pass the scores too")
            why = [self.why.numerators(scores)]
        return np.concatenate([*per_metric, *avg, *why], axis=-1)

    def gated(self, settings: RegressionSettings) -> np.ndarray:
        """(units,) in the family: a weighted tier and, for a cell, enough prompt groups."""
        lab = self.labels
        weighted = lab["tier"].map(lambda t: float(settings.weights.get(t, 0.0)) > 0).to_numpy(bool)
        return weighted & ((lab["kind"] != "cell") | (lab["support"] >= settings.min_support)).to_numpy()


def numerators_from_outcomes(layout: UnitLayout, out: pd.DataFrame) -> np.ndarray:
    """(records, units) numerators of one outcome table (``metrics.outcome_table``)."""
    n_rec = len(out) // ITEMS_PER_RECORD
    scores = out[[f"s{j}" for j in range(N_RESPONSES)]].to_numpy(np.float64)
    return layout.numerators(out["wins"].to_numpy().reshape(n_rec, ITEMS_PER_RECORD),
                             out["bon"].to_numpy().reshape(n_rec, ITEMS_PER_RECORD),
                             group_consistency(out).reshape(n_rec, N_GROUPS),
                             scores.reshape(n_rec, ITEMS_PER_RECORD, N_RESPONSES))


def compare_outcomes(base: pd.DataFrame, cur: pd.DataFrame, settings: RegressionSettings) -> pd.DataFrame:
    """Paired comparison of two outcome tables over the same items (``COMPARE_COLUMNS``).

    ``lo``/``hi``: the family-wise (simultaneous) interval of current minus
    baseline at ``settings.confidence``; ``mde``: the smallest drop this unit
    could be called a regression with at this data size and noise,
    max(tolerance, critical * se); NaN for units outside the family or
    without noise (no outcome changed). Raises ValueError when the tables
    cover different items.
    """
    if len(base) != len(cur) or not (base["record_id"].to_numpy() == cur["record_id"].to_numpy()).all():
        raise ValueError("compare() needs two outcome tables over the same items in the same order")
    layout = UnitLayout.from_items(cur)
    flips = sign_flips(len(layout.record_domains), settings.n_boot, settings.seed)
    return decide(layout, numerators_from_outcomes(layout, base), numerators_from_outcomes(layout, cur),
                  flips, settings)


def decide(layout: UnitLayout, base_num: np.ndarray, cur_num: np.ndarray, flips: np.ndarray | None,
           settings: RegressionSettings, diff: Differences | None = None) -> pd.DataFrame:
    """The comparison table from per-record numerators: the one code path of the gate and ``rmgap calibrate``.

    ``flips``: ``familywise.sign_flips(records, settings.n_boot, settings.seed)``; or ``diff``, the
    ``paired_differences`` already computed (``rmgap calibrate`` does that for many runs in one product).
    """
    if diff is None:
        diff = paired_differences(np.asarray(cur_num, np.float64) - base_num, layout.den.sum(axis=0), flips)
    gated = layout.gated(settings)
    tier = np.where(gated, layout.labels["tier"].to_numpy(object), None)
    res = stepdown_maxt(diff.t, diff.null_t, tier, settings.weights, settings.confidence)
    return _table(layout, base_num, cur_num, diff, res, gated, settings)


def _table(layout: UnitLayout, base_num: np.ndarray, cur_num: np.ndarray, diff: Differences,
           res: FamilyResult, gated: np.ndarray, settings: RegressionSettings) -> pd.DataFrame:
    den = layout.den.sum(axis=0)
    est, se = diff.est, diff.se
    with np.errstate(invalid="ignore", divide="ignore"):
        vb, vc = base_num.sum(axis=0) / den, cur_num.sum(axis=0) / den
    half = np.where(se == 0, 0.0, res.critical * se)  # no record changed: the interval is the point
    kind = layout.labels["kind"].to_numpy(object)
    share, bias = ~np.isin(kind, WHY_KINDS), kind == "bias"
    # Clipped to what a difference of two shares in [0, 1] can be; the decision (zero inside or not) is unchanged.
    lo = np.where(share, np.maximum(est - half, -vb), est - half)
    hi = np.where(share, np.minimum(est + half, 1 - vb), est + half)
    tol = np.where(share, settings.tolerance, settings.sd_tolerance)
    # Worse: a lower share or sensitivity; a style bias further from zero, either way (two-sided test, so
    # a harmless change still fails at most 1 - confidence of runs over every unit).
    worse = np.where(bias, np.abs(vc) - np.abs(vb), -est)
    regressed = gated & res.rejected & (worse > tol) & ((lo > 0) | (hi < 0)) & (bias | (hi < 0))
    mde = np.where(res.tested, np.maximum(tol, half), np.nan)
    out = layout.labels[["kind", "domain", "dimension", "level", "metric"]].copy()
    out = out.assign(baseline=vb, current=vc, diff=est, lo=lo, hi=hi, support=layout.labels["support"],
                     regressed=regressed, mde=mde, gated=gated, tier=layout.labels["tier"], se=se,
                     critical=res.critical, tolerance=tol)
    return out[COMPARE_COLUMNS].reset_index(drop=True)


def regression_item_id(kind: str, domain: str, dimension: str | None, level: str | None, metric: str) -> str:
    """The gate item that carries a unit: ``regression[Avg/BoN]`` per metric, ``regression[All/Formality=casual]``
    per cell, ``regression[bias/Conciseness]`` per style bias, ``regression[sensitivity/Chat]`` per sensitivity."""
    if kind == "bias":
        return f"regression[bias/{dimension}]"
    if kind == "sensitivity":
        return f"regression[sensitivity/{domain}]"
    return f"regression[{domain}/{metric}]" if kind != "cell" else f"regression[{domain}/{dimension}={level}]"


def item_ids(comparison: pd.DataFrame) -> list[str]:
    """``regression_item_id`` of every row of a comparison table (a cell's three metrics share one item)."""
    cols = comparison[["kind", "domain", "dimension", "level", "metric"]].astype(object)
    return [regression_item_id(*row) for row in cols.where(cols.notna(), None).itertuples(index=False)]
