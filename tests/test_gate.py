"""The gate's style-bias and sensitivity items: planned only when asked, decided on the point estimate with the
straddle wording, skipped when the data cannot measure them, and their regression items match the comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from builders import small_benchmark
from rmgap_pytest.data import DIMENSIONS, load_benchmark
from rmgap_pytest.evaluation import evaluate, evaluation_from_scores
from rmgap_pytest.gate import decide_checks, plan_checks
from rmgap_pytest.regression import compare_outcomes, item_ids
from rmgap_pytest.scorers import load_scorer
from rmgap_pytest.synth import planted_scores
from rmgap_pytest.thresholds import Thresholds, load_thresholds
from rmgap_pytest.verdict import outcome_note, row_texts, straddles


def thresholds(tmp_path: Path, text: str) -> Thresholds:
    p = tmp_path / "t.yaml"
    p.write_text(text)
    return load_thresholds(p)


@pytest.fixture(scope="module")
def sample():
    return load_benchmark()


@pytest.fixture(scope="module")
def length(sample):
    """builtin:length: +0.60 SD per Conciseness level [+0.55, +0.64], sensitivity exactly 0."""
    return evaluate(sample, "builtin:length", cache=False, n_boot=200)


def _row(checks, cid):
    rows = checks[checks["id"] == cid]
    assert len(rows) == 1, cid
    return rows.iloc[0]


def test_items_exist_only_when_a_threshold_is_set(sample, tmp_path):
    ids = [s.id for s in plan_checks(sample, Thresholds())]
    assert not any(i.startswith(("bias[", "sensitivity[")) for i in ids)
    t = thresholds(tmp_path, "bias: {max: 0.5}\nsensitivity: {min: 0.2, Chat: null}\n")
    ids = [s.id for s in plan_checks(sample, t)]
    assert [i for i in ids if i.startswith("bias[")] == [f"bias[{d}]" for d in DIMENSIONS]
    assert [i for i in ids if i.startswith("sensitivity[")] == [
        "sensitivity[All]", "sensitivity[Writing]", "sensitivity[Reasoning]", "sensitivity[Safety]"]


def test_decisions_on_the_point_estimate_with_reasons(sample, length, tmp_path):
    t = thresholds(tmp_path, "bias: {max: 0.3}\nsensitivity: {All: 0.2}\n")
    checks = decide_checks(plan_checks(sample, t), length.table, t, bias=length.bias)
    conc = _row(checks, "bias[Conciseness]")
    want = length.bias[(length.bias["kind"] == "bias") & (length.bias["domain"] == "All")
                       & (length.bias["dimension"] == "Conciseness")].iloc[0]
    assert conc.status == "fail" and conc.value == pytest.approx(abs(want.value)) and conc.direction == "max"
    assert (conc.lo, conc.hi) == pytest.approx((want.lo, want.hi))  # positive interval: folding changes nothing
    assert conc.reason == f"rewards verbosity whoever asks ({want.value:+.2f} SD per level towards verbose)"
    assert outcome_note(conc).startswith("above the ceiling; rewards verbosity")
    assert _row(checks, "bias[Formality]").status == "pass"  # -0.03 [-0.09, +0.04]: |value| under 0.3
    sens = _row(checks, "sensitivity[All]")
    assert sens.status == "fail" and sens.value == 0 and sens.threshold == 0.2 and sens.support == 104
    assert row_texts(sens)[1] == "Sensitivity 0.000 [0.00, 0.00]: below the floor 0.200"


def test_a_failing_ceiling_whose_interval_reaches_it_says_so(sample, length, tmp_path):
    value = float(length.bias.query("kind == 'bias' and domain == 'All' and dimension == 'Conciseness'")["value"].iloc[0])
    t = thresholds(tmp_path, f"bias: {{Conciseness: {value - 0.02:.4f}}}\n")
    conc = _row(decide_checks(plan_checks(sample, t), length.table, t, bias=length.bias), "bias[Conciseness]")
    assert conc.status == "fail" and straddles(conc.value, conc.lo, conc.hi, conc.threshold, conc.direction)
    assert outcome_note(conc) == "not distinguishable from the ceiling at this support"
    assert "not distinguishable from the ceiling" in row_texts(conc)[1]


def test_a_bias_interval_across_zero_folds_to_start_at_zero(sample, tmp_path):
    ev = evaluation_from_scores(sample, planted_scores(sample, noise=1.0, seed=4), load_scorer("builtin:random"),
                                n_boot=200)
    t = thresholds(tmp_path, "bias: {max: 0.01}\n")
    checks = decide_checks(plan_checks(sample, t), ev.table, t, bias=ev.bias)
    crossing = [r for r in checks.itertuples() if r.kind == "bias" and r.lo == 0]
    assert crossing  # a noise-only model: some coefficient's interval contains zero
    for r in crossing:
        b = ev.bias[(ev.bias["kind"] == "bias") & (ev.bias["domain"] == "All") & (ev.bias["dimension"] == r.dimension)]
        assert b["lo"].iloc[0] <= 0 <= b["hi"].iloc[0] and r.hi == pytest.approx(max(-b["lo"].iloc[0], b["hi"].iloc[0]))


def test_data_that_cannot_measure_a_bias_skips_its_item(tmp_path):
    bench = load_benchmark(small_benchmark(tmp_path / "b.jsonl"))  # every record has the same four profiles
    ev = evaluate(bench, "builtin:length", cache=False, n_boot=50)
    t = thresholds(tmp_path, "bias: {max: 0.3}\nsensitivity: {min: 0.5}\n")
    checks = decide_checks(plan_checks(bench, t), ev.table, t, bias=ev.bias)
    bias = checks[checks["kind"] == "bias"]
    assert len(bias) == 5 and set(bias["status"]) == {"skip"}
    assert bias["reason"].iloc[0].startswith("not measurable: the data has no style profiles")
    assert set(checks.loc[checks["kind"] == "sensitivity", "status"]) == {"fail"}  # length ignores the prompt


def test_regression_items_cover_every_bias_and_sensitivity_unit(sample):
    specs = plan_checks(sample, Thresholds(), with_baseline=True)
    base = planted_scores(sample, follow=2.0, bias={"Conciseness": 0.1}, noise=0.5, seed=1)
    cur = planted_scores(sample, follow=0.5, bias={"Conciseness": 0.1}, noise=0.5, seed=2)
    scorer = load_scorer("builtin:random")
    eb, ec = (evaluation_from_scores(sample, s, scorer, n_boot=50) for s in (base, cur))
    comparison = compare_outcomes(eb.outcomes, ec.outcomes, Thresholds().regression_settings())
    why = comparison["kind"].isin(["bias", "sensitivity"]).to_numpy()
    spec_ids = {s.id for s in specs if s.kind == "regression"}
    assert {i for i, w in zip(item_ids(comparison), why) if w} <= spec_ids
    assert {"regression[bias/Conciseness]", "regression[sensitivity/All]", "regression[sensitivity/Chat]"} <= spec_ids
    checks = decide_checks(specs, ec.table, Thresholds(), comparison, bias=ec.bias)
    sens = _row(checks, "regression[sensitivity/All]")
    assert sens.status == "fail" and sens.value < 0 and sens.threshold == -0.02
    assert sens.reason.startswith("dropped ") and " SD (" in sens.reason and "family-wise interval" in sens.reason
    assert row_texts(sens)[1].startswith("Sensitivity change -") and "dropped more than the tolerance 0.020" in \
        row_texts(sens)[1]
    conc = _row(checks, "regression[bias/Conciseness]")
    unit = comparison[(comparison["kind"] == "bias") & (comparison["dimension"] == "Conciseness")].iloc[0]
    assert (conc.status == "fail") == bool(unit.regressed) and conc.mde == unit.mde and np.isfinite(conc.mde)
    # Every regression row names the support its interval and MDE were computed at (domains and Avg too).
    regression = checks[(checks["kind"] == "regression") & (checks["status"] != "skip")]
    assert regression["support"].notna().all() and (regression["support"] > 0).all()
    # In SD units the same raw bias is a larger share of a model that follows the user less: it grew.
    assert abs(unit.current) > abs(unit.baseline)
    weights = {"weights": {"bias_sensitivity": 0}}
    off = Thresholds(raw={**Thresholds().raw, "regression": {**Thresholds().raw["regression"], **weights}})
    assert not any(s.id.startswith(("regression[bias/", "regression[sensitivity/"))
                   for s in plan_checks(sample, off, with_baseline=True))
