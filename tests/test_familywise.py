"""The family-wise test on its own: error rate under simulated nulls, power, determinism, monotonicity."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import binom

from rmgap_pytest.familywise import paired_differences, sign_flips, stepdown_maxt

WEIGHTS = {"a": 0.4, "b": 0.6}


def null_deltas(rng, records=40, units=30, exchangeable=True):
    """Per-record differences of correlated units under no change: a shared record effect plus unit noise.

    Exchangeable: symmetric around 0 (a harmless retrain). Otherwise mean-zero but skewed
    (centred exponentials), where the sign-flip test is only the wild bootstrap.
    """
    shared = rng.standard_normal((records, 1)) * rng.uniform(0.5, 2, size=(records, 1))
    own = rng.standard_normal((records, units)) if exchangeable else rng.exponential(size=(records, units)) - 1
    delta = shared + own
    delta[:, :5] = np.round(delta[:, :5])  # a few discrete units with ties and zeros, like BoN counts
    return delta


def test_sign_flips_are_fixed_by_the_seed():
    a, b, c = sign_flips(7, 50, 3), sign_flips(7, 50, 3), sign_flips(7, 50, 4)
    assert a.shape == (50, 7) and set(np.unique(a)) == {-1.0, 1.0}
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("exchangeable", [True, False], ids=["exchangeable", "skewed"])
def test_family_wise_error_stays_within_a_binomial_bound_of_the_nominal_level(exchangeable):
    rng = np.random.default_rng(11)
    tier = np.array(["a"] * 10 + ["b"] * 20, dtype=object)
    reps, any_rejection, drops = 300, 0, 0
    flips = sign_flips(40, 400, 0)
    for _ in range(reps):
        d = paired_differences(null_deltas(rng, exchangeable=exchangeable), np.full(30, 40.0), flips)
        res = stepdown_maxt(d.t, d.null_t, tier, WEIGHTS, 0.95)
        any_rejection += res.rejected.any()
        drops += (res.rejected & (d.est < 0)).any()
    # A true rate of 5% exceeds this count in fewer than 1 in 1,000 such experiments.
    bound = binom.ppf(0.999, reps, 0.05)
    assert any_rejection <= bound, (any_rejection, bound)
    assert drops <= binom.ppf(0.999, reps, 0.025)  # two-sided: drops alone get about half
    assert any_rejection > 0  # not vacuous: the test does reject at about its level


def test_a_known_drop_is_detected_and_named():
    rng = np.random.default_rng(5)
    tier = np.array(["a"] * 10 + ["b"] * 20, dtype=object)
    hits = 0
    for _ in range(50):
        delta = null_deltas(rng, records=200)
        delta[:, 12] -= 0.5  # unit 12 drops by 0.5 per record, about 3.5 standard errors
        d = paired_differences(delta, np.full(30, 200.0), sign_flips(200, 400, 0))
        res = stepdown_maxt(d.t, d.null_t, tier, WEIGHTS, 0.95)
        hits += res.rejected[12] and d.est[12] < 0
    assert hits >= 40


def test_fixed_seed_gives_identical_verdicts():
    delta = null_deltas(np.random.default_rng(2))
    delta[:, 3] -= 1.0
    tier = np.array(["a"] * 10 + ["b"] * 20, dtype=object)
    runs = [stepdown_maxt(*_td(delta, seed), tier, WEIGHTS) for seed in (7, 7)]
    assert np.array_equal(runs[0].rejected, runs[1].rejected)
    assert np.array_equal(runs[0].critical, runs[1].critical)


def _td(delta, seed):
    d = paired_differences(delta, np.full(delta.shape[1], float(len(delta))), sign_flips(len(delta), 300, seed))
    return d.t, d.null_t


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), extra_tier=st.sampled_from(["a", "b", "c"]), shift=st.floats(0, 1.5))
def test_an_extra_unit_never_turns_a_pass_into_a_fail(seed, extra_tier, shift):
    rng = np.random.default_rng(seed)
    delta = null_deltas(rng, records=60)
    delta[:, :8] -= shift * rng.uniform(0, 1, size=8)  # some real drops, so there is something to reject
    tier = np.array(["a"] * 10 + ["b"] * 20, dtype=object)
    flips = sign_flips(60, 300, 1)
    before = stepdown_maxt(*_td_flips(delta, flips), tier, {**WEIGHTS, "c": 0.3})
    extra = np.column_stack([delta, rng.standard_normal(60) + rng.standard_normal() * delta[:, 0]])
    after = stepdown_maxt(*_td_flips(extra, flips), np.append(tier, extra_tier), {**WEIGHTS, "c": 0.3})
    assert not (after.rejected[:30] & ~before.rejected).any()


def _td_flips(delta, flips):
    d = paired_differences(delta, np.full(delta.shape[1], float(len(delta))), flips)
    return d.t, d.null_t


def test_degenerate_units_are_never_rejected():
    rng = np.random.default_rng(0)
    delta = rng.standard_normal((50, 6))
    delta[:, 0] = 0.0  # nothing changed
    delta[:, 1] = 0.0
    delta[3, 1] = -5.0  # one record changed: |t| = 1 in every arrangement
    delta[:, 2] = -1.0  # every record dropped the same: only 2 of 2^50 arrangements match it
    delta[:, 3] -= 3.0  # a clear drop, but in a tier weighted 0
    tier = np.array(["a", "a", "a", "off", "a", "a"], dtype=object)
    d = paired_differences(delta, np.full(6, 50.0), sign_flips(50, 500, 0))
    res = stepdown_maxt(d.t, d.null_t, tier, {"a": 1.0, "off": 0.0})
    assert d.se[0] == 0 and not res.tested[0] and not res.rejected[0] and np.isfinite(res.critical[0])
    assert d.t[1] == pytest.approx(-1.0) and not res.rejected[1]
    assert res.rejected[2]
    assert not res.tested[3] and not res.rejected[3]


def test_too_few_flips_for_a_tier_reject_nothing():
    delta = np.full((30, 2), -1.0)
    d = paired_differences(delta, np.full(2, 30.0), sign_flips(30, 10, 0))  # 5% of 11 arrangements < 1
    res = stepdown_maxt(d.t, d.null_t, np.array(["a", "a"], dtype=object), {"a": 1.0})
    assert not res.rejected.any() and np.isinf(res.critical).all()
