"""Style bias and preference sensitivity (bias.py), validated on scorers with planted effects."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy.special import ndtr, stdtrit

from builders import make_record, write_jsonl
from rmgap_pytest.bias import bias_draws, bias_table, response_levels, standardized_scores
from rmgap_pytest.findings import claims, findings, holm
from rmgap_pytest.data import DIMENSIONS, item_table, load_benchmark, response_keys, sample_path
from rmgap_pytest.metrics import bootstrap_counts, outcome_table, record_domains
from rmgap_pytest.synth import planted_scores, write_synthetic

DIMS = list(DIMENSIONS)
BOOT = 400


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return load_benchmark(write_synthetic(tmp_path_factory.mktemp("synth") / "synth.jsonl", 150, seed=3))


@pytest.fixture(scope="module")
def sample():
    return load_benchmark()


def outcomes(bench, scores):
    return outcome_table(item_table(bench), scores, response_keys(bench))


def table_for(bench, scores, n_boot=BOOT, seed=0):
    return bias_table(outcomes(bench, scores), response_levels(bench), n_boot=n_boot, seed=seed)


def row(table, kind, dimension=None, level=None, domain="All"):
    t = table[(table["kind"] == kind) & (table["domain"] == domain)]
    t = t[t["dimension"].isna()] if dimension is None else t[t["dimension"] == dimension]
    t = t[t["level"].isna()] if level is None else t[t["level"] == level]
    assert len(t) == 1, (kind, dimension, level, domain)
    return t.iloc[0]


def covers(r, truth):
    return r["raw_lo"] <= truth <= r["raw_hi"]


# -- known truth, no noise: exact ------------------------------------------------------------------------

@pytest.mark.parametrize("b", [-0.8, 0.25, 1.5])
@pytest.mark.parametrize("follow", [0.0, 0.5])
@pytest.mark.parametrize("data", ["sample", "synth"])
def test_noise_free_effects_are_recovered_exactly(request, data, b, follow):
    bench = request.getfixturevalue(data)
    scores = planted_scores(bench, bias={"Formality": b}, follow=follow, noise=0.0, offsets=3.0, seed=1)
    t = table_for(bench, scores)
    for dim in DIMS:
        r = row(t, "bias", dim)
        truth = b if dim == "Formality" else 0.0
        assert r["raw"] == pytest.approx(truth, abs=1e-9)
        assert r["raw_lo"] == pytest.approx(truth, abs=1e-9) and r["raw_hi"] == pytest.approx(truth, abs=1e-9)
    sens = t[t["kind"] == "sensitivity"]
    assert np.allclose(sens["raw"], follow, atol=1e-9) and np.allclose(sens["raw_lo"], follow, atol=1e-9)
    assert np.allclose(t[t["kind"] == "sensitivity_trend"]["raw"], 0.0, atol=1e-9)
    assert np.sign(row(t, "bias", "Formality")["value"]) == np.sign(b)


def test_sensitivity_that_varies_by_user_does_not_leak_into_the_bias(synth):
    """Users who want verbose answers are followed more: per-level cells and the trend recover it; no bias."""
    by_level = [0.0, 0.1, 0.2, 0.3, 0.4]
    scores = planted_scores(synth, follow=by_level, follow_by="Conciseness", noise=0.0, seed=2)
    t = table_for(synth, scores)
    for i, lvl in enumerate(DIMENSIONS["Conciseness"]):
        assert row(t, "sensitivity", "Conciseness", lvl)["raw"] == pytest.approx(by_level[i], abs=1e-9)
    assert row(t, "sensitivity_trend", "Conciseness")["raw"] == pytest.approx(0.1, abs=1e-9)
    assert np.allclose(t[t["kind"] == "bias"]["raw"], 0.0, atol=1e-9)
    words = findings(t)
    assert "follows users who want terse answers less than those who want verbose ones" in words[1]


def test_perfect_follower(sample):
    """Scores 1 for the response the prompt's user wants, 0 otherwise: sensitivity 1, no bias."""
    scores = planted_scores(sample, follow=1.0, noise=0.0, offsets=0.0)
    assert set(np.unique(scores)) == {0.0, 1.0}
    t = table_for(sample, scores)
    assert np.allclose(t[t["kind"] == "sensitivity"]["raw"], 1.0)
    assert np.allclose(t[t["kind"] == "bias"]["raw"], 0.0, atol=1e-12)
    # within a prompt the scores are (1, 0, 0, 0): SD sqrt(3)/4, so 1 raw unit is 4/sqrt(3) SD
    assert row(t, "sensitivity")["value"] == pytest.approx(4 / np.sqrt(3))
    first, second = findings(t)
    assert first.startswith("no style bias stands out")
    assert second == ("follows the user: a response's lead over another grows by +2.31 SD [+2.31, +2.31] when "
                      "the user who wants it asks, compared with a user who wants neither")


# -- known truth with noise: within the interval ---------------------------------------------------------

@pytest.mark.parametrize("b", [-1.0, -0.2, 0.3, 0.8])
@pytest.mark.parametrize("data", ["sample", "synth"])
def test_planted_formality_bias_is_inside_its_interval(request, data, b):
    bench = request.getfixturevalue(data)
    scores = planted_scores(bench, bias={"Formality": b}, noise=1.0, response_noise=0.5, seed=11)
    t = table_for(bench, scores)
    assert covers(row(t, "bias", "Formality"), b)
    if data == "synth" and abs(b) >= 0.2:  # 150 records resolve 0.2 score units per level
        r = row(t, "bias", "Formality")
        assert np.sign(r["lo"]) == np.sign(r["hi"]) == np.sign(b)
        assert np.sign(r["raw_lo"]) == np.sign(r["raw_hi"]) == np.sign(b)


def test_mix_of_bias_and_sensitivity(synth):
    """One seeded draw: each interval misses its truth 5% of the time by design (test_coverage measures that)."""
    planted = {"Formality": 0.4, "Conciseness": -0.3}
    scores = planted_scores(synth, bias=planted, follow=0.6, noise=1.0, response_noise=0.5, seed=6)
    t = table_for(synth, scores)
    for dim, b in planted.items():
        assert covers(row(t, "bias", dim), b), dim
    assert covers(row(t, "sensitivity"), 0.6)
    first, second = findings(t)
    assert first.startswith("rewards formality regardless of the user: +") and "also terseness" in first
    assert second.startswith("follows the user: a response's lead over another grows by +")


def test_prompt_blind_scorer_has_sensitivity_exactly_zero(synth, sample):
    """Scores that depend on the response only (plus prompt shifts): every sensitivity row is 0."""
    for bench in (synth, sample):
        scores = planted_scores(bench, bias={"Objectivity": 0.5}, noise=0.0, response_noise=1.0, seed=4)
        t = table_for(bench, scores)
        sens = t[t["kind"].str.startswith("sensitivity")]
        assert np.allclose(sens[["value", "lo", "hi", "raw", "raw_lo", "raw_hi"]], 0.0, atol=1e-9)
        assert (sens["p"] == 1.0).all()
        assert findings(t)[1].startswith("does not measurably follow the user")


def test_scorer_that_ignores_the_user_has_an_interval_around_zero(synth):
    scores = planted_scores(synth, bias={"Technicality": 0.3}, noise=1.0, seed=8)
    t = table_for(synth, scores)
    assert covers(row(t, "sensitivity"), 0.0) and row(t, "sensitivity")["lo"] < 0 < row(t, "sensitivity")["hi"]


# -- the builtin baselines -------------------------------------------------------------------------------

@pytest.mark.parametrize("data", ["sample", "synth"])
def test_builtin_length_rewards_verbosity_and_random_nothing(request, data):
    from rmgap_pytest.evaluation import evaluate

    bench = request.getfixturevalue(data)
    length = evaluate(bench, "builtin:length", cache=False, n_boot=BOOT).bias
    r = row(length, "bias", "Conciseness")
    assert r["lo"] > 0.3 and r["raw_lo"] > 0  # longer text at every Conciseness level
    assert findings(length)[0].startswith("rewards verbosity regardless of the user: +")
    assert np.allclose(length[length["kind"] == "sensitivity"]["value"], 0.0, atol=1e-9)  # length ignores prompts
    rand = evaluate(bench, "builtin:random", cache=False, n_boot=BOOT).bias
    assert row(rand, "sensitivity")["lo"] < 0 < row(rand, "sensitivity")["hi"]
    # 11 candidate claims: none is made, and each estimate lies within about 4 standard errors
    # (one interval width) of 0, where a single 95% interval alone misses 0 one time in 20.
    fam = claims(rand)
    assert len(fam) == 11 and not fam["claim"].any()
    assert (fam["value"].abs() < fam["hi"] - fam["lo"]).all()
    assert findings(rand)[0].startswith("no style bias stands out")


# -- the estimators match a slow, literal implementation -------------------------------------------------

def _literal(bench, scores, weights):
    """Bias (lstsq over every unwanted response of every prompt) and mean user sensitivity, records weighted."""
    lv = response_levels(bench)
    s = scores.reshape(len(bench.records), 4, 3, 4)
    xs, ys, ws, sens, sw = [], [], [], [], []
    for r, rec in enumerate(bench.records):
        w = [rec.keys.index(k) for k in rec.winners]
        for g in range(4):
            others = [j for j in range(4) if j != w[g]]
            for p in range(3):
                for j in others:
                    xs.append(lv[r, j] - lv[r, others].mean(0))
                    ys.append(s[r, g, p, j] - s[r, g, p, others].mean())
                    ws.append(weights[r])
            m = s[r].mean(axis=1)  # (user, response)
            did = [(m[g, w[g]] - m[g, w[h]]) - (m[n, w[g]] - m[n, w[h]])
                   for h in range(4) for n in range(4) if h != g and n not in (g, h)]
            sens.append(np.mean(did))
            sw.append(weights[r])
    sq = np.sqrt(np.array(ws))[:, None]
    beta = np.linalg.lstsq(np.array(xs) * sq, np.array(ys) * sq[:, 0], rcond=None)[0]
    return beta, np.average(sens, weights=sw)


def test_matches_literal_implementation_with_the_same_bootstrap_draws(sample):
    scores = planted_scores(sample, bias={"Formality": 0.3, "Technicality": -0.2}, follow=0.4, seed=9)
    n_boot = 60
    t = table_for(sample, scores, n_boot=n_boot, seed=4)
    beta, sens = _literal(sample, scores, np.ones(len(sample.records)))
    assert np.allclose([row(t, "bias", d)["raw"] for d in DIMS], beta)
    assert row(t, "sensitivity")["raw"] == pytest.approx(sens)
    counts = bootstrap_counts(record_domains(outcomes(sample, scores)), n_boot, 4)  # the metrics' own draws
    draws = np.array([np.append(*_literal(sample, scores, c)) for c in counts])
    # expanded percentile interval (Hesterberg 2015): 26 records in 4 domains, df = 22
    tail = 2 * ndtr(-np.sqrt(26 / 22) * stdtrit(22, 0.975))
    assert 0.023 < tail < 0.025
    lo, hi = np.percentile(draws, [50 * tail, 100 - 50 * tail], axis=0)
    assert np.allclose([row(t, "bias", d)["raw_lo"] for d in DIMS], lo[:5])
    assert np.allclose([row(t, "bias", d)["raw_hi"] for d in DIMS], hi[:5])
    assert (row(t, "sensitivity")["raw_lo"], row(t, "sensitivity")["raw_hi"]) == pytest.approx((lo[5], hi[5]))


def test_standardized_scores_by_hand(tmp_path):
    bench = load_benchmark(write_jsonl(tmp_path / "one.jsonl", [make_record("r", "Chat", (1, 2, 3, 4))]))
    scores = np.tile([1.0, 2.0, 3.0, 4.0], (12, 1)) + np.arange(12)[:, None]  # prompt shifts vanish
    z = standardized_scores(outcomes(bench, scores))
    assert np.allclose(z, np.tile([-1.5, -0.5, 0.5, 1.5], (12, 1)) / np.sqrt(1.25))


# -- properties ------------------------------------------------------------------------------------------

VALUES = ["value", "lo", "hi", "p"]
RAW = ["raw", "raw_lo", "raw_hi"]
SAMPLE = load_benchmark()
SAMPLE_SCORES = planted_scores(SAMPLE, bias={"Conciseness": 0.4}, follow=0.3, response_noise=0.5, seed=21)
SAMPLE_TABLE = table_for(SAMPLE, SAMPLE_SCORES, n_boot=200)


@settings(max_examples=25, deadline=None)
@given(shift=st.floats(-1e4, 1e4), scale=st.floats(1e-3, 1e3))
def test_shift_and_positive_scale_change_nothing(shift, scale):
    t = table_for(SAMPLE, SAMPLE_SCORES * scale + shift, n_boot=200)
    assert np.allclose(t[VALUES], SAMPLE_TABLE[VALUES], rtol=1e-7, atol=1e-9)
    assert np.allclose(t[RAW], SAMPLE_TABLE[RAW] * scale, rtol=1e-6, atol=1e-9 * scale)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(perms=st.lists(st.permutations(range(4)), min_size=len(SAMPLE.records), max_size=len(SAMPLE.records)))
def test_permuting_response_order_changes_nothing(perms):
    """Keys, texts and profiles move together; winners name keys, so they follow."""
    lines = [json.loads(line) for line in sample_path().read_text().split("\n") if line.strip()]  # not splitlines: U+2028
    for rec, perm in zip(lines, perms):
        rec["responses"] = [rec["responses"][i] for i in perm]
        rec["style_assignments"] = {f"r{k + 1}": rec["style_assignments"][f"r{i + 1}"] for k, i in enumerate(perm)}
    with tempfile.TemporaryDirectory() as tmp:
        bench = load_benchmark(write_jsonl(Path(tmp) / "perm.jsonl", lines))
    order = np.repeat(np.array(perms), 12, axis=0)  # per item: new position k holds old response perm[k]
    scores = np.take_along_axis(SAMPLE_SCORES, order, axis=1)
    t = table_for(bench, scores, n_boot=200)
    assert np.allclose(t[VALUES + RAW], SAMPLE_TABLE[VALUES + RAW], rtol=1e-9, atol=1e-12)


# -- records the estimators cannot use -------------------------------------------------------------------

def test_invalid_scores_broken_design_and_missing_profiles_are_left_out_and_counted(tmp_path):
    recs = [make_record(f"r{i}", "Chat", order, profiles=profiles) for i, (order, profiles) in enumerate([
        ((1, 2, 3, 4), None), ((4, 3, 2, 1), [(1, 0, 4, 2, 0), (0, 4, 0, 4, 2), (4, 2, 0, 0, 4), (2, 1, 2, 4, 4)]),
        ((2, 1, 4, 3), [(3, 3, 1, 0, 0), (0, 0, 4, 4, 1), (1, 4, 0, 2, 4), (4, 0, 2, 1, 2)]),
        ((1, 1, 3, 4), None), ((3, 4, 1, 2), None)])]
    del recs[4]["style_assignments"]
    bench = load_benchmark(write_jsonl(tmp_path / "mixed.jsonl", recs))
    scores = planted_scores(bench, follow=0.5, noise=0.0, seed=0)
    scores[0, 2] = np.nan  # record r0: an invalid score
    t = table_for(bench, scores, n_boot=50)
    # r0 invalid, r3 wants response1 twice: out. r1, r2, r4 used; r4 has no profiles.
    assert row(t, "sensitivity")["support"] == 3 * 4 and row(t, "sensitivity")["raw"] == pytest.approx(0.5)
    assert row(t, "bias", "Formality")["support"] == 2  # r1, r2: r0 is invalid, r3 breaks the design, r4 lacks profiles
    assert row(t, "sensitivity", "Formality", "casual")["support"] == sum(
        p[0] == 0 for p in [(1, 0, 4, 2, 0), (0, 4, 0, 4, 2), (4, 2, 0, 0, 4), (2, 1, 2, 4, 4),
                            (3, 3, 1, 0, 0), (0, 0, 4, 4, 1), (1, 4, 0, 2, 4), (4, 0, 2, 1, 2)])
    z = standardized_scores(outcomes(bench, scores))
    assert np.isnan(z[:12]).all() and np.isnan(z[36:48]).all() and np.isfinite(z[12:36]).all()


def test_bias_is_not_identified_when_every_record_has_the_same_profiles(bench_file):
    """The test builders reuse 4 profiles: 3 directions, 5 coefficients. NaN, never a made-up number."""
    bench = load_benchmark(bench_file)
    t = table_for(bench, planted_scores(bench, bias={"Formality": 1.0}, seed=0), n_boot=50)
    assert t[t["kind"] == "bias"][["value", "lo", "hi", "raw"]].isna().all().all()
    assert len(findings(t)) == 1 and "follow" in findings(t)[0]


def test_levels_must_match_the_outcome_table(sample, synth):
    with pytest.raises(ValueError, match="levels must be"):
        bias_table(outcomes(sample, np.zeros((sample.n_items, 4))), response_levels(synth))


def test_holm_by_hand():
    assert np.allclose(holm(np.array([0.01, 0.04, 0.03, 0.5])), [0.04, 0.09, 0.09, 0.5])


# -- how often the intervals and the claims are right -----------------------------------------------------

def test_coverage_and_false_claims_on_the_sample(sample):
    """200 simulated reward models on the 26-record sample, each with new noise and new bootstrap draws.

    A correct 95% interval covers its truth in 179..198 of 200 replicates except with probability 0.2%
    (binomial); a report of a model with no effect claims one in at most 21 of 200 except with probability
    0.1% when the family-wise error is 5%. Larger samples: benchmarks/sim_bias.py.
    """
    from scipy.stats import binom

    reps = 200
    out = outcomes(sample, np.zeros((sample.n_items, 4)))
    levels = response_levels(sample)
    truth = {("bias", "Formality"): 0.3, ("bias", "Conciseness"): 0.0, ("sensitivity", None): 0.4,
             ("sensitivity_trend", "Conciseness"): 0.0}
    hits = dict.fromkeys(truth, 0)
    false_claims = 0
    for rep in range(reps):
        for planted, null in ((dict(bias={"Formality": 0.3}, follow=0.4, response_noise=0.5), False), ({}, True)):
            scores = planted_scores(sample, seed=10_000 * null + rep, **planted)
            for j in range(4):
                out[f"s{j}"] = scores[:, j]
            t = bias_table(out, levels, n_boot=200, seed=rep)
            if null:
                false_claims += bool(claims(t)["claim"].any())
                continue
            for (kind, dim), value in truth.items():
                hits[(kind, dim)] += covers(row(t, kind, dim), value)
    lo, hi = binom.ppf(0.001, reps, 0.95), binom.isf(0.001, reps, 0.95)
    assert (lo, hi) == (179, 198)
    for key, n in hits.items():
        assert lo <= n <= hi, (key, n)
    assert false_claims <= binom.isf(0.001, reps, 0.05) == 21


# -- plumbing: Evaluation and report.json ----------------------------------------------------------------

def test_evaluation_and_report_json_carry_the_table_and_findings(sample, tmp_path):
    from rmgap_pytest.evaluation import evaluate
    from rmgap_pytest.results import write_run

    ev = evaluate(sample, "builtin:length", cache=False, n_boot=100, seed=3)
    direct = bias_table(ev.outcomes, response_levels(sample), n_boot=100, seed=3)  # same draws: same numbers
    assert ev.bias.equals(direct)
    report = json.loads(write_run(ev, tmp_path / "run")["report"].read_text())
    assert len(report["bias"]) == len(ev.bias) and set(report["bias"][0]) == set(ev.bias.columns)
    conc = next(r for r in report["bias"] if r["kind"] == "bias" and r["domain"] == "All"
                and r["dimension"] == "Conciseness")
    assert conc["value"] == pytest.approx(row(ev.bias, "bias", "Conciseness")["value"])
    assert conc["unit"] == "SD/level" and conc["raw_unit"] == "score/level"
    assert report["findings"] == findings(ev.bias) and report["findings"][0].startswith("rewards verbosity")


def test_bias_draws_pair_two_runs_draw_by_draw(sample):
    """Same items, same counts: a change of exactly +0.2 per Formality level is +0.2 in every draw."""
    base = planted_scores(sample, bias={"Formality": 0.1}, follow=0.3, noise=1.0, seed=12)
    shift = planted_scores(sample, bias={"Formality": 0.2}, noise=0.0, offsets=0.0)
    counts = bootstrap_counts(record_domains(outcomes(sample, base)), 100, 5)
    b = bias_draws(outcomes(sample, base), response_levels(sample), counts)
    c = bias_draws(outcomes(sample, base + shift), response_levels(sample), counts)
    assert b.rows[["kind", "domain", "dimension", "level"]].equals(c.rows[["kind", "domain", "dimension", "level"]])
    k = b.rows.index[(b.rows["kind"] == "bias") & (b.rows["domain"] == "All") & (b.rows["dimension"] == "Formality")]
    assert np.allclose(c.raw[:, k] - b.raw[:, k], 0.2)
    sens = (b.rows["kind"] == "sensitivity").to_numpy()
    assert np.allclose(c.raw[:, sens], b.raw[:, sens])  # a style change leaves the sensitivity alone
