"""Style bias and sensitivity as regression units: exact values, the family's error rate, detection, monotonicity."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from rmgap_pytest.bias import bias_table, response_levels
from rmgap_pytest.bias_units import WhyLayout, standardised
from rmgap_pytest.data import item_table, load_benchmark, response_keys
from rmgap_pytest.familywise import sign_flips
from rmgap_pytest.metrics import outcome_table
from rmgap_pytest.regression import UnitLayout, compare_outcomes, decide, numerators_from_outcomes
from rmgap_pytest.synth import planted_scores, write_synthetic
from rmgap_pytest.thresholds import Thresholds

SETTINGS = replace(Thresholds().regression_settings(), n_boot=400)
WHY = ["bias", "sensitivity"]


@pytest.fixture(scope="module")
def sample():
    bench = load_benchmark()
    return bench, item_table(bench), response_keys(bench)


@pytest.fixture(scope="module")
def synth300(tmp_path_factory):
    bench = load_benchmark(write_synthetic(tmp_path_factory.mktemp("d") / "s.jsonl", 300, seed=2))
    return bench, item_table(bench), response_keys(bench)


def _out(items, keys, scores):
    return outcome_table(items, scores, keys)


def test_units_equal_bias_table_with_planted_effects_and_offsets(sample):
    bench, items, keys = sample
    s = planted_scores(bench, bias={"Formality": 0.4, "Objectivity": -0.3}, follow=0.7, offsets=5.0, seed=3)
    why = WhyLayout.from_items(items)
    value = why.numerators(s.reshape(-1, 12, 4)).sum(axis=0) / why.den.sum(axis=0)
    t = bias_table(_out(items, keys, s), response_levels(bench), n_boot=20)
    want = {("bias", r.domain, r.dimension): r.value for r in t[t["kind"] == "bias"].itertuples()}
    want |= {("sensitivity", r.domain, None): r.value for r in t[(t["kind"] == "sensitivity") & t["level"].isna()]
             .itertuples()}
    for (kind, dom, dim, *_), v in zip(why.labels.itertuples(index=False), value):
        assert v == pytest.approx(want[(kind, dom, dim if kind == "bias" else None)], abs=1e-12)
    # Standardised within the record: a shift and a positive scale per record change nothing.
    rng = np.random.default_rng(0)
    scale = np.repeat(rng.uniform(0.1, 10, len(bench.records)), 12)[:, None]
    moved = why.numerators((s * scale + np.repeat(rng.normal(size=len(bench.records)), 12)[:, None]).reshape(-1, 12, 4))
    np.testing.assert_allclose(moved, why.numerators(s.reshape(-1, 12, 4)), atol=1e-10)


def test_vectorised_over_runs_and_invalid_scores_count_as_no_signal(sample):
    bench, items, keys = sample
    why = WhyLayout.from_items(items)
    runs = np.stack([planted_scores(bench, follow=f, seed=f) for f in (1, 2)]).reshape(2, -1, 12, 4)
    both = why.numerators(runs)
    for j in range(2):
        np.testing.assert_allclose(both[j], why.numerators(runs[j]), atol=1e-12)
    bad = runs[0].copy()
    bad[5, 3, 1] = np.nan  # one score of record 5
    num = why.numerators(bad)
    assert np.isfinite(num).all() and (num[5] == 0).all()  # that record gives no signal; it does not vanish
    np.testing.assert_allclose(np.delete(num, 5, 0), np.delete(both[0], 5, 0), atol=1e-12)
    assert (standardised(bad.reshape(-1, 4, 3, 4))[5] == 0).all()


def test_unidentified_bias_has_no_units_but_sensitivity_stays(tmp_path):
    from builders import small_benchmark

    items = item_table(load_benchmark(small_benchmark(tmp_path / "b.jsonl")))  # every record: the same 4 profiles
    why = WhyLayout.from_items(items)
    assert why.a_inv is None and set(why.labels["kind"]) == {"sensitivity"}
    assert set(UnitLayout.from_items(items).labels["tier"]) >= {"bias_sensitivity"}


def _harmless_pair(bench, rng):
    """Two runs of the same model with planted effects: independent noise, exchangeable per record."""
    effects = dict(bias={"Conciseness": 0.3}, follow=0.6, noise=1.0, response_noise=0.5)
    return [planted_scores(bench, **effects, seed=int(rng.integers(2**31))) for _ in range(2)]


def test_harmless_changes_fail_the_family_within_the_nominal_rate(sample):
    """200 harmless pairs on the sample: runs with any regression item (bias, sensitivity or metric) stay
    within a binomial bound of 5%, and the bias/sensitivity units alone within one of their 0.5% share."""
    bench, items, keys = sample
    rng = np.random.default_rng(7)
    layout = UnitLayout.from_items(items)
    flips = sign_flips(len(layout.record_domains), SETTINGS.n_boot, SETTINGS.seed)
    reps, any_fail, why_fail, why_reject = 200, 0, 0, 0
    for _ in range(reps):
        base, cur = (_out(items, keys, s) for s in _harmless_pair(bench, rng))
        t = decide(layout, numerators_from_outcomes(layout, base), numerators_from_outcomes(layout, cur), flips,
                   SETTINGS)
        any_fail += t["regressed"].any()
        why = t["kind"].isin(WHY)
        why_fail += t.loc[why, "regressed"].any()
        why_reject += ((t["lo"] > 0) | (t["hi"] < 0))[why & t["gated"]].any()
    assert any_fail <= binom.ppf(0.999, reps, 0.05), any_fail
    # The tier's share of the two-sided error rate is 5% x 0.1; a true rate of 0.5% exceeds this count 1 in 1,000.
    assert why_reject <= binom.ppf(0.999, reps, 0.005), why_reject
    assert why_fail <= why_reject


def test_planted_drop_in_sensitivity_and_growth_of_a_bias_are_detected(synth300):
    bench, items, keys = synth300
    hits = {"sensitivity": 0, "bias": 0, "improved": 0}
    for seed in range(10):
        base = planted_scores(bench, bias={"Conciseness": 0.1}, follow=1.0, seed=100 + seed)
        less = planted_scores(bench, bias={"Conciseness": 0.1}, follow=0.6, seed=200 + seed)
        biased = planted_scores(bench, bias={"Conciseness": 0.4}, follow=1.0, seed=300 + seed)
        t = compare_outcomes(_out(items, keys, base), _out(items, keys, less), SETTINGS)
        row = t[(t["kind"] == "sensitivity") & (t["domain"] == "All")].iloc[0]
        hits["sensitivity"] += bool(row.regressed and row.hi < 0)
        assert not t.loc[t["kind"] == "bias", "regressed"].any()  # the bias did not move
        t = compare_outcomes(_out(items, keys, base), _out(items, keys, biased), SETTINGS)
        row = t[(t["kind"] == "bias") & (t["dimension"] == "Conciseness")].iloc[0]
        hits["bias"] += bool(row.regressed and row["diff"] > 0)
        # The other way round the bias shrinks towards zero: an improvement, never a regression.
        t = compare_outcomes(_out(items, keys, biased), _out(items, keys, base), SETTINGS)
        hits["improved"] += bool(t.loc[t["kind"] == "bias", "regressed"].any())
    assert hits["sensitivity"] >= 9 and hits["bias"] >= 9 and hits["improved"] == 0, hits


def test_a_bias_that_flips_sign_and_grows_is_a_regression(synth300):
    bench, items, keys = synth300
    base = planted_scores(bench, bias={"Formality": 0.1}, follow=1.0, seed=1)
    flipped = planted_scores(bench, bias={"Formality": -0.5}, follow=1.0, seed=2)
    t = compare_outcomes(_out(items, keys, base), _out(items, keys, flipped), SETTINGS)
    row = t[(t["kind"] == "bias") & (t["dimension"] == "Formality")].iloc[0]
    assert row.regressed and row["diff"] < 0 and abs(row.current) > abs(row.baseline)
    assert row.tolerance == SETTINGS.sd_tolerance and row.tier == "bias_sensitivity"


@pytest.mark.parametrize("seed", range(6))
def test_adding_the_bias_and_sensitivity_units_never_turns_a_pass_into_a_fail(sample, seed):
    """The same runs decided with and without the new units: the metric units can only lose rejections."""
    bench, items, keys = sample
    rng = np.random.default_rng(seed)
    base = planted_scores(bench, follow=1.5, noise=1.0, seed=seed)
    cur = planted_scores(bench, follow=1.5 * rng.uniform(0.5, 1.0), bias={"Conciseness": rng.uniform(0, 0.5)},
                         noise=1.0, seed=seed + 50)
    ob, oc = _out(items, keys, base), _out(items, keys, cur)
    full = UnitLayout.from_items(items)
    n = int((~full.labels["kind"].isin(WHY)).sum())
    bare = replace(full, labels=full.labels.iloc[:n], den=full.den[:, :n], why=None)
    flips = sign_flips(len(full.record_domains), SETTINGS.n_boot, SETTINGS.seed)
    without = decide(bare, numerators_from_outcomes(bare, ob), numerators_from_outcomes(bare, oc), flips, SETTINGS)
    with_why = decide(full, numerators_from_outcomes(full, ob), numerators_from_outcomes(full, oc), flips, SETTINGS)
    after, before = with_why["regressed"].to_numpy()[:n], without["regressed"].to_numpy()
    assert not (after & ~before).any()
    pd.testing.assert_frame_equal(with_why.iloc[:n].drop(columns=["critical", "lo", "hi", "mde", "regressed"]),
                                  without.drop(columns=["critical", "lo", "hi", "mde", "regressed"]))
