"""``rmgap calibrate``: the simulation is faithful, and the gate meets its error rate and finds real drops."""

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import binom

from rmgap_pytest.calibrate import _decide_batch, calibrate, default_scenarios, format_calibration, parse_cell
from rmgap_pytest.cli import main
from rmgap_pytest.data import item_table, load_benchmark, response_keys
from rmgap_pytest.errors import CalibrationError
from rmgap_pytest.metrics import outcome_table
from rmgap_pytest.familywise import sign_flips
from rmgap_pytest.regression import UnitLayout, compare_outcomes, numerators_from_outcomes
from rmgap_pytest.simulate import PRESETS, Scenario, Simulator
from rmgap_pytest.synth import write_synthetic
from rmgap_pytest.thresholds import Thresholds

SETTINGS = replace(Thresholds().regression_settings(), n_boot=200)  # the fewest flips the default weights allow


@pytest.fixture(scope="module")
def sample():
    return load_benchmark()


@pytest.mark.parametrize("preset", ["consistent", "heavy"])
def test_vectorised_outcomes_match_the_outcome_table(sample, preset):
    items, keys = item_table(sample), response_keys(sample)
    sim = Simulator(items, PRESETS[preset])
    base, cur = sim.pairs(np.random.default_rng(1), 2, Scenario("cell_drop", 0.5, 0.1, ("All", "Formality", "casual")))
    layout = UnitLayout.from_items(items)
    for scores in (base, cur):
        fast = layout.numerators(*sim.outcomes(scores))
        for run in range(2):
            out = outcome_table(items, scores[run].reshape(-1, 4), keys)
            np.testing.assert_allclose(fast[run], numerators_from_outcomes(layout, out), rtol=0, atol=1e-12)
    # The batched decision is the gate's decision on the same two runs.
    nb, nc = layout.numerators(*sim.outcomes(base)), layout.numerators(*sim.outcomes(cur))
    flips = sign_flips(len(layout.record_domains), SETTINGS.n_boot, SETTINGS.seed)
    batched = _decide_batch(layout, nb, nc, layout.den.sum(axis=0), flips, SETTINGS)
    for run in range(2):
        gate = compare_outcomes(outcome_table(items, base[run].reshape(-1, 4), keys),
                                outcome_table(items, cur[run].reshape(-1, 4), keys), SETTINGS)
        assert (batched[run]["regressed"] == gate["regressed"]).all()
        np.testing.assert_allclose(batched[run][["lo", "hi", "mde"]], gate[["lo", "hi", "mde"]], atol=1e-9)


def test_the_simulated_model_has_the_asked_accuracy_and_drops(sample):
    sim = Simulator(item_table(sample), PRESETS["heavy"])
    assert sim.expected_bon(sim.signal) == pytest.approx(0.45, abs=0.002)
    assert sim.expected_bon(sim.signal * sim.drop_scale(0.1)) == pytest.approx(0.35, abs=0.002)
    ob, _ = map(sim.outcomes, sim.pairs(np.random.default_rng(0), 30, Scenario("harmless", 0.5)))
    assert ob[1].mean() == pytest.approx(0.45, abs=0.03)  # 30 runs x 312 items, clustered in groups
    consistent = Simulator(item_table(sample), PRESETS["consistent"])
    incons = Simulator(item_table(sample), PRESETS["inconsistent"])
    c = consistent.outcomes(consistent.pairs(np.random.default_rng(0), 10, Scenario("harmless", 0.5))[0])[2].mean()
    i = incons.outcomes(incons.pairs(np.random.default_rng(0), 10, Scenario("harmless", 0.5))[0])[2].mean()
    assert c > 0.15 > 0.02 > i


def test_harmless_changes_stay_within_a_binomial_bound_of_the_nominal_rate(sample):
    """Two different simulated models, two correlations, on the 26-record sample."""
    results = []
    for preset in ("consistent", "heavy"):
        cal = calibrate(sample, SETTINGS, PRESETS[preset], default_scenarios(drop=0, cell_drop=0), runs=100)
        results += cal.results
    runs, blocked = sum(r.runs for r in results), sum(r.blocked for r in results)
    assert runs == 400
    assert blocked <= binom.ppf(0.999, runs, 0.05), blocked  # a 5% rate exceeds this 1 time in 1,000


def test_real_drops_are_detected_and_located(tmp_path):
    bench = load_benchmark(write_synthetic(tmp_path / "s.jsonl", 300))
    cell = ("All", "Conciseness", "terse")
    scenarios = [Scenario("uniform_drop", 0.9, 0.04), Scenario("cell_drop", 0.9, 0.10, cell)]
    cal = calibrate(bench, SETTINGS, PRESETS["inconsistent"], scenarios, runs=30)
    uniform, one_cell = cal.results
    assert uniform.blocked >= 24 and uniform.located >= 24
    assert one_cell.located >= 24 and one_cell.items["regression[All/Conciseness=terse]"] == one_cell.located


def test_fixed_seed_gives_identical_results(sample):
    scenarios = default_scenarios(rhos=(0.7,), drop=0.05, cell_drop=0.0)
    a, b = (calibrate(sample, SETTINGS, PRESETS["inconsistent"], scenarios, runs=20, seed=3) for _ in range(2))
    assert [(r.blocked, r.located, dict(r.items)) for r in a.results] == \
           [(r.blocked, r.located, dict(r.items)) for r in b.results]
    text = format_calibration(a)
    assert "false-block rate over all harmless runs" in text and "BoN -0.05 everywhere, rho 0.7" in text


def test_cli_prints_rates_and_rejects_bad_options(capsys):
    assert main(["calibrate", "--runs", "10", "--n-boot", "200", "--rho", "0.9", "--drop", "0.05",
                 "--cell-drop", "0", "--model", "inconsistent", "--noise", "logistic"]) == 0
    out = capsys.readouterr().out
    assert "harmless change, rho 0.9" in out and "logistic noise" in out and "95% interval" in out
    assert main(["calibrate", "--cell", "All/Concise=terse"]) == 2
    assert "Did you mean 'Conciseness'?" in capsys.readouterr().err
    assert main(["calibrate", "--runs", "10", "--bon", "0.3", "--drop", "0.1"]) == 2
    assert "cannot be simulated" in capsys.readouterr().err
    assert main(["calibrate", "--runs", "10", "--n-boot", "150"]) == 2
    assert "n_boot = 150 is too few sign flips" in capsys.readouterr().err


def test_parse_cell():
    assert parse_cell("Chat/Formality=casual") == ("Chat", "Formality", "casual")
    with pytest.raises(CalibrationError, match="Did you mean 'terse'"):
        parse_cell("All/Conciseness=ters")
