from pathlib import Path

import pytest

from rmgap_pytest.errors import ThresholdsError
from rmgap_pytest.thresholds import DEFAULTS, load_thresholds

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    p = tmp_path / "thresholds.yaml"
    p.write_text(text)
    return p


def test_shipped_example_is_valid_and_documents_the_defaults():
    t = load_thresholds(REPO / "thresholds.yaml")
    assert t.min_support == DEFAULTS["min_support"]
    for metric, floor in DEFAULTS["floors"].items():
        assert t.domain_floor("Chat", metric) == floor
    assert t.raw["regression"] == DEFAULTS["regression"]  # the regression section shows the defaults as they are


def test_lookup_precedence(tmp_path):
    t = load_thresholds(write(tmp_path, """
floors: {BoN: 0.4}
domains: {Safety: {BoN: 0.5}}
cell_floors: {Pair: 0.6, Consistency: null}
cells: {"Chat/Conciseness=terse": {BoN: 0.1}}
gaps: {max: 0.3, "Writing/Formality": 0.2}
blindness: {All: 0.1}
regression: {tolerance: 0.05}
"""))
    assert t.domain_floor("Chat", "BoN") == 0.4 and t.domain_floor("Safety", "BoN") == 0.5
    assert t.domain_floor("Chat", "Pair") == DEFAULTS["floors"]["Pair"]
    assert t.cell_floor("Chat", "Conciseness", "terse", "BoN") == 0.1
    assert t.cell_floor("Chat", "Conciseness", "verbose", "BoN") == DEFAULTS["cell_floors"]["BoN"]
    assert t.cell_floor("Chat", "Conciseness", "terse", "Pair") == 0.6
    assert t.cell_floor("Chat", "Conciseness", "terse", "Consistency") is None
    assert t.gap_ceiling("Writing", "Formality") == 0.2 and t.gap_ceiling("Chat", "Formality") == 0.3
    assert t.blindness_ceiling("All") == 0.1 and t.blindness_ceiling("Chat") == DEFAULTS["blindness"]["max"]
    assert t.tolerance == 0.05 and t.confidence == 0.95


def test_empty_file_means_defaults(tmp_path):
    assert load_thresholds(write(tmp_path, "")).raw == DEFAULTS


@pytest.mark.parametrize("text,needle", [
    ("flors: {BoN: 0.3}", "unknown key 'flors'. Did you mean 'floors'?"),
    ("floors: {Bon: 0.3}", "floors: unknown key 'Bon'. Did you mean 'BoN'?"),
    ("cells: {'Chat/Concisenes=terse': {BoN: 0.2}}", "Did you mean 'Chat/Conciseness=terse'?"),
    ("cells: {'Chat/Conciseness=short': {BoN: 0.2}}", "cells: unknown key 'Chat/Conciseness=short'"),
    ("domains: {Reasonning: {BoN: 0.2}}", "Did you mean 'Reasoning'?"),
    ("gaps: {'All/Formalty': 0.2}", "Did you mean 'All/Formality'?"),
    ("floors: {BoN: 1.5}", "floors.BoN = 1.5 must be a number between 0 and 1"),
    ("floors: {BoN: high}", "floors.BoN = 'high' must be a number"),
    ("min_support: 0", "min_support = 0 must be a whole number of prompt groups, at least 1"),
    ("regression: {tolerence: 0.1}", "Did you mean 'tolerance'?"),
    ("regression: {weights: {all_cell: 0.3}}", "regression.weights: unknown key 'all_cell'. Did you mean 'all_cells'?"),
    ("regression: {weights: {avg: -1}}", "regression.weights.avg = -1 must be a number >= 0"),
    ("regression: {weights: {avg: 0, domain: 0, all_cells: 0, domain_cells: 0, bias_sensitivity: 0}}",
     "weights are all 0"),
    ("regression: {confidence: 1}", "regression.confidence = 1.0 must lie strictly between 0 and 1"),
    ("regression: {n_boot: 100}", "n_boot = 100 is too few sign flips for the tier 'domain'"),
    ("bias: {Concisenes: 0.3}", "bias: unknown key 'Concisenes'. Did you mean 'Conciseness'?"),
    ("bias: {max: -0.1}", "bias.max = -0.1 must be a number >= 0 in SD of reward per level"),
    ("bias: {Formality: lots}", "bias.Formality = 'lots' must be a number >= 0"),
    ("sensitivity: {Reasonning: 0.2}", "sensitivity: unknown key 'Reasonning'. Did you mean 'Reasoning'?"),
    ("sensitivity: {mni: 0.2}", "Did you mean 'min'?"),
    ("sensitivity: {All: .nan}", "sensitivity.All = nan must be a number >= 0 in SD of reward"),
    ("regression: {sd_tolerance: null}", "regression.sd_tolerance cannot be null"),
    ("regression: {sd_tolerence: 0.1}", "Did you mean 'sd_tolerance'?"),
    ("regression: {weights: {bias_sens: 0.1}}", "Did you mean 'bias_sensitivity'?"),
    ("floors: [1, 2]", "floors must be a mapping"),
    ("- a\n- b", "the top level must be a mapping"),
    ("floors: {BoN: 0.3\n", "not valid YAML"),
])
def test_errors_name_the_file_key_and_fix(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ThresholdsError) as err:
        load_thresholds(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ThresholdsError, match="does not exist"):
        load_thresholds(tmp_path / "nope.yaml")


def test_regression_settings_merge_partial_weights(tmp_path):
    t = load_thresholds(write(tmp_path, "regression: {weights: {domain_cells: 0}, n_boot: 2000, tolerance: 0.02}"))
    s = t.regression_settings()
    assert s.weights == {**DEFAULTS["regression"]["weights"], "domain_cells": 0.0}
    assert (s.n_boot, s.tolerance, s.confidence, s.min_support) == (2000, 0.02, 0.95, DEFAULTS["min_support"])


def test_bias_and_sensitivity_are_off_by_default_and_looked_up_with_overrides(tmp_path):
    off = load_thresholds(None)
    assert all(off.bias_ceiling(d) is None for d in ("Formality", "Conciseness"))
    assert off.sensitivity_floor("All") is None and off.sensitivity_floor("Chat") is None
    t = load_thresholds(write(tmp_path, """
bias: {max: 0.5, Conciseness: 0.3}
sensitivity: {min: 0.1, Safety: 0.4, Chat: null}
regression: {sd_tolerance: 0.05}
"""))
    assert t.bias_ceiling("Conciseness") == 0.3 and t.bias_ceiling("Formality") == 0.5
    assert t.sensitivity_floor("All") == 0.1 and t.sensitivity_floor("Writing") == 0.1
    assert t.sensitivity_floor("Safety") == 0.4 and t.sensitivity_floor("Chat") is None
    s = t.regression_settings()
    assert s.sd_tolerance == 0.05 and s.weights["bias_sensitivity"] == DEFAULTS["regression"]["weights"]["bias_sensitivity"]
