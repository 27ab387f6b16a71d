"""The RMGAP regression family: units match the metrics, the gate's rules, the settings."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from rmgap_pytest.bias import bias_table, response_levels
from rmgap_pytest.data import item_table, load_benchmark, response_keys
from rmgap_pytest.familywise import sign_flips
from rmgap_pytest.metrics import metric_table, outcome_table
from rmgap_pytest.regression import (COMPARE_COLUMNS, UnitLayout, compare_outcomes, decide, numerators_from_outcomes,
                                     regression_item_id)
from rmgap_pytest.thresholds import Thresholds

SETTINGS = replace(Thresholds().regression_settings(), n_boot=400)
KEY = ["kind", "domain", "dimension", "level", "metric"]


@pytest.fixture(scope="module")
def sample():
    bench = load_benchmark()
    items, keys = item_table(bench), response_keys(bench)
    rng = np.random.default_rng(4)
    good = np.zeros((len(items), 4))
    good[np.arange(len(items)), items["winner_idx"]] = 1.0
    base = outcome_table(items, good + rng.normal(scale=0.8, size=good.shape), keys)
    return items, keys, good, base, rng


def _key(df):
    return df[KEY].astype(object).where(df[KEY].notna(), None).apply(tuple, axis=1)


def test_units_reproduce_every_domain_cell_and_avg_value(sample):
    """Metric units reproduce metric_table; the bias and sensitivity units (issue 13) reproduce bias_table."""
    items, keys, good, base, _ = sample
    table = metric_table(base, n_boot=10)
    same = compare_outcomes(base, base, SETTINGS)
    assert list(same.columns) == COMPARE_COLUMNS
    why = same["kind"].isin(["bias", "sensitivity"])
    want = dict(zip(_key(table), table["value"]))
    got = dict(zip(_key(same[~why]), same.loc[~why, "baseline"]))
    assert set(got) <= set(want) and len(got) == (~why).sum()
    for k, v in got.items():
        assert v == pytest.approx(want[k], abs=1e-12), k
    bias = bias_table(base, response_levels(load_benchmark()), n_boot=10)
    bias = bias[bias["level"].isna() & ((bias["kind"] == "sensitivity") | (bias["domain"] == "All"))
                & (bias["kind"] != "sensitivity_trend")]
    want_why = {(r.kind, r.domain, None if r.kind == "sensitivity" else r.dimension): r.value
                for r in bias.itertuples(index=False)}
    got_why = {(r.kind, r.domain, r.dimension if r.kind == "bias" else None): r.baseline
               for r in same[why].itertuples(index=False)}
    assert set(got_why) == set(want_why) and len(got_why) == 5 + 5  # 5 dimensions; All and 4 domains
    for k, v in got_why.items():
        assert v == pytest.approx(want_why[k], abs=1e-12), k
    assert set(same.loc[why, "tier"]) == {"bias_sensitivity"}
    # No record changed: zero difference, a point interval, nothing to see, nothing regressed.
    assert (same["diff"] == 0).all() and (same["lo"] == 0).all() and (same["hi"] == 0).all()
    assert same["mde"].isna().all() and not same["regressed"].any()


def test_a_reversed_model_regresses_with_adjusted_interval_and_mde(sample):
    items, keys, good, base, rng = sample
    worse = outcome_table(items, -good + rng.normal(scale=0.8, size=good.shape), keys)
    t = compare_outcomes(base, worse, SETTINGS)
    avg = t[(t["domain"] == "Avg") & (t["metric"] == "BoN")].iloc[0]
    assert avg.regressed and avg.hi < 0 and avg["diff"] < -0.3 and avg.lo >= -avg.baseline
    assert avg.mde == pytest.approx(max(SETTINGS.tolerance, avg.critical * avg.se))
    assert avg.gated and avg.tier == "avg"
    # the interval is est +- critical * se, clipped to the feasible range
    assert avg.hi == pytest.approx(min(avg["diff"] + avg.critical * avg.se, 1 - avg.baseline))
    assert regression_item_id(avg.kind, avg.domain, avg.dimension, avg.level, avg.metric) == "regression[Avg/BoN]"


def test_only_gated_units_regress_and_the_tolerance_is_a_floor(sample):
    items, keys, good, base, rng = sample
    worse = outcome_table(items, -good + rng.normal(scale=0.8, size=good.shape), keys)
    t = compare_outcomes(base, worse, replace(SETTINGS, weights={**SETTINGS.weights, "all_cells": 0.0}))
    cells = t[t["kind"] == "cell"]
    assert not cells["gated"].any() and not cells["regressed"].any()
    small = compare_outcomes(base, worse, replace(SETTINGS, min_support=10**6))
    assert not small.loc[small["kind"] == "cell", "regressed"].any()
    assert small.loc[small["kind"] == "domain", "regressed"].any()
    floor = compare_outcomes(base, worse, replace(SETTINGS, tolerance=0.99, sd_tolerance=99.0))
    assert not floor["regressed"].any()  # every drop is real but smaller than the floor
    # The bias and sensitivity units have their own floor, in SD of reward: the share floor alone leaves them.
    sd_only = compare_outcomes(base, worse, replace(SETTINGS, tolerance=0.99))
    assert set(sd_only.loc[sd_only["regressed"], "kind"]) == {"sensitivity"}


def test_an_extra_harmless_unit_never_turns_a_pass_into_a_fail(sample):
    """Issue 13's measures will join as more columns: a harmless one must not change any verdict for the worse."""
    items, keys, good, base, rng = sample
    cur = outcome_table(items, good * 0.7 + rng.normal(scale=0.8, size=good.shape), keys)
    layout = UnitLayout.from_items(cur)
    nb, nc = numerators_from_outcomes(layout, base), numerators_from_outcomes(layout, cur)
    flips = sign_flips(len(layout.record_domains), SETTINGS.n_boot, SETTINGS.seed)
    before = decide(layout, nb, nc, flips, SETTINGS)
    for tier in ("avg", "all_cells"):
        n_rec = len(layout.record_domains)
        extra_row = pd.DataFrame([dict(kind="domain", domain="Style", dimension=None, level=None, metric="bias",
                                       support=n_rec, tier=tier)])
        wider = replace(layout, labels=pd.concat([layout.labels, extra_row], ignore_index=True),
                        den=np.column_stack([layout.den, np.ones(n_rec)]))
        stat = rng.normal(size=n_rec)
        after = decide(wider, np.column_stack([nb, stat]), np.column_stack([nc, stat + rng.normal(size=n_rec)]),
                       flips, SETTINGS)
        assert not (after["regressed"].to_numpy()[:-1] & ~before["regressed"].to_numpy()).any()


def test_different_items_are_an_error(sample):
    items, keys, good, base, _ = sample
    with pytest.raises(ValueError, match="same items"):
        compare_outcomes(base, base.iloc[:12], SETTINGS)
