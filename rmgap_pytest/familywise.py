"""Simultaneous tests of many paired differences: a weighted step-down max-T sign-flip test.

Generic statistics, no RMGAP knowledge. A *unit* is one column of per-record
matrices: per record r, ``delta[r, j]`` is the current run's numerator minus
the baseline's for unit j, over the same items, and the unit's difference is
sum(delta) / sum(denominator). ``regression.py`` builds the RMGAP units
(Pair, BoN and Consistency per Avg, domain and cell); anything expressible as
a ratio of per-record sums (a per-record score averaged with denominator 1)
can join the family as more columns.

The test is the step-down max-T procedure of Romano & Wolf (2005, "Stepwise
multiple testing as formalized data snooping", Econometrica 73(4)), with
record-level sign flips as the resampling scheme (Westfall & Young 1993's
randomisation max-T; a Rademacher wild bootstrap, Mammen 1993):

1. A harmless change makes the two runs exchangeable record by record:
   swapping baseline and current for any set of records (flipping the sign of
   their ``delta`` row) leaves the joint distribution unchanged. One set of
   random sign vectors flips every unit at once, so the null distribution keeps
   the correlation between units (a cell and the Avg that contains it, Pair and
   BoN of one cell) and the critical value is the family's, not that of
   independent tests. Under exchangeability the test is exact at any data
   size (up to the Monte Carlo error of n_boot flips); for a mean-zero
   change that is not exchangeable it is the wild bootstrap, valid as
   records grow. Unlike resampling records with
   replacement, a unit where only a few records changed gets a bounded,
   symmetric null distribution instead of a long Poisson tail that would
   inflate everyone's critical value.
2. Each difference is standardised by its exact sign-flip standard error,
   sqrt(sum(delta**2)) / sum(den), so a 40-group cell and the Avg enter the
   maximum on the same footing.
3. Units sit in *tiers* with weights (e.g. the Avg rows vs the per-domain
   cells). A tier gets its weight's share of the error rate (a weighted
   Bonferroni split between tiers, Holm-style: a tier whose units are all
   rejected hands its share to the others); within a tier the critical value
   is the sign-flip quantile of the tier's maximum |t|. So the few headline
   units are not drowned by hundreds of small cells, and within a tier the
   correlation between its units is used in full.
4. Step-down: units whose |t| exceeds their tier's critical value are
   rejected, removed, and the critical values recomputed over the rest until
   nothing more is rejected. Critical values only fall as units leave, so
   the procedure is the shortcut of a closed test and controls the
   family-wise error rate at ``1 - confidence``. For the same reason adding a
   unit to the family can only raise the critical values: it never turns
   another unit's pass into a fail.

Assumptions: records are independent (the items of one record are flipped
together, so any dependence inside a record is kept); a harmless change
leaves each record's (baseline, current) pair exchangeable, or at least its
difference mean-zero with enough records for the wild bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sign_flips(n_records: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_records) random signs, +1 or -1 with equal chance, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(n_boot, n_records)).astype(np.float64) * 2.0 - 1.0


@dataclass(frozen=True)
class Differences:
    """Per unit: the paired difference and its null distribution (arrays over units)."""

    est: np.ndarray  # (units,) current minus baseline
    se: np.ndarray  # (units,) sign-flip standard error; 0 when no record changed
    null_t: np.ndarray  # (n_boot, units) standardised differences under the sign flips

    @property
    def t(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.se > 0, self.est / np.where(self.se > 0, self.se, 1.0), 0.0)


def paired_differences(delta: np.ndarray, den_total: np.ndarray, flips: np.ndarray) -> Differences:
    """``delta`` (records, units): current minus baseline numerators; ``den_total`` (units,): sum of denominators.

    The denominator is the same in both runs (the same items), so it is fixed
    under the flips and only the numerators' signs change.
    """
    delta = np.asarray(delta, np.float64)
    den_total = np.asarray(den_total, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = delta.sum(axis=0) / den_total
        root = np.sqrt((delta * delta).sum(axis=0))
        se = root / den_total
        null_t = (flips @ delta) / np.where(root > 0, root, 1.0)
    return Differences(est, se, null_t)


@dataclass(frozen=True)
class FamilyResult:
    """Per unit: the decision and what it rests on (arrays of shape (units,))."""

    critical: np.ndarray  # simultaneous critical value of |t| the unit faced (its tier, its step)
    rejected: np.ndarray  # the difference is not zero, family-wise (either direction)
    tested: np.ndarray  # in the family and testable (some record changed)
    steps: int  # step-down rounds that rejected something


def stepdown_maxt(t: np.ndarray, null_t: np.ndarray, tier: np.ndarray, weights: dict[str, float],
                  confidence: float = 0.95) -> FamilyResult:
    """Two-sided weighted step-down max-T test of every difference against zero.

    ``t`` (units,) observed standardised differences, ``null_t`` (n_boot,
    units) their sign-flip null draws (``paired_differences``). ``tier``
    (units,): each unit's tier name, or None; a unit whose tier is None,
    missing from ``weights`` or weighted 0 is outside the family (never
    rejected; its critical value is the family's largest last one, for reading
    only). The simultaneous interval of unit j is ``est ± critical * se``; it
    excludes zero exactly when ``rejected``. At most ``1 - confidence`` of runs
    reject any unit whose true difference is zero (two-sided, so about half
    that for drops alone).
    """
    t_abs = np.abs(np.asarray(t, np.float64))
    n_boot, n_units = null_t.shape
    tier = np.asarray(tier, dtype=object)
    w = np.array([float(weights.get(x, 0.0)) if x is not None else 0.0 for x in tier])
    tested = (w > 0) & np.isfinite(t_abs) & (np.abs(null_t).max(axis=0) > 0)
    z = np.where(tested, np.abs(null_t), 0.0)
    crit = np.full(n_units, np.nan)
    rejected = np.zeros(n_units, bool)
    active = tested.copy()
    alpha = 1.0 - confidence
    steps, last = 0, {}
    while active.any():
        last = _tier_criticals(z, tier, active, weights, alpha)
        unit_crit = np.array([last.get(x, np.inf) for x in tier])
        new = active & (t_abs > unit_crit)
        crit[new] = unit_crit[new]
        if not new.any():
            break
        steps += 1
        rejected |= new
        active &= ~new
    undecided = np.isnan(crit)
    fallback = max(last.values()) if last else np.nan
    crit[undecided] = [last.get(x, fallback) for x in tier[undecided]]
    return FamilyResult(crit, rejected, tested, steps)


def _tier_criticals(z: np.ndarray, tier: np.ndarray, active: np.ndarray, weights: dict[str, float],
                    alpha: float) -> dict[str, float]:
    """Per tier with active units: the |t| a unit must exceed, at the tier's share of alpha.

    Randomisation-test convention (the observed data count as one of the n_boot + 1
    arrangements): reject when at most alpha_t * (n_boot + 1) - 1 draws reach |t|, so the
    error rate holds at any n_boot, not only as it grows.
    """
    n_boot = z.shape[0]
    present = list(dict.fromkeys(tier[active].tolist()))
    total = sum(float(weights[x]) for x in present)
    out = {}
    for x in present:
        allowed = int(np.floor(alpha * float(weights[x]) / total * (n_boot + 1) + 1e-9)) - 1
        if allowed < 0:  # too few draws to reach this tier's share of alpha: nothing can be rejected
            out[x] = np.inf
            continue
        maxima = np.sort(z[:, active & (tier == x)].max(axis=1))[::-1]
        out[x] = float(maxima[min(allowed, n_boot - 1)])
    return out
