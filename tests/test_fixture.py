"""The rmgap_result fixture in a model repository's own tests: passes and fails as it should, with and
without xdist, and never scores a pair twice."""

from __future__ import annotations

import pytest

from test_plugin import gate_dir, run_gate  # noqa: F401  (gate_dir is a fixture)

XDIST = pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])

OWN_TESTS = """
def test_avg_bon(rmgap_result):
    assert rmgap_result.avg.bon {op} 0.5

def test_cell_and_gap(rmgap_result):
    cell = rmgap_result.cell("All/Conciseness=terse")
    assert 0 <= cell.bon.lo <= cell.bon <= cell.bon.hi <= 1 and cell.support > 0
    assert rmgap_result.gap("All/Conciseness") >= 0

def test_items_carry_texts(rmgap_result):
    items = rmgap_result.items()
    assert len(items) == 288 and items["prompt_text"].str.startswith("user ").all()
    assert (items["top_text"].str.startswith("answer ")).all()

def test_metrics_match_the_report(rmgap_result):
    assert rmgap_result.metrics["BoN"]["Avg"] == float(rmgap_result.avg.bon)
"""


@XDIST
@pytest.mark.parametrize("model,op,ok", [("oracle_rm", ">=", True), ("reversed_rm", ">=", False)])
def test_own_tests_pass_and_fail_without_rescoring(gate_dir, xdist, model, op, ok):
    pytester, data, tmp = gate_dir
    pytester.makepyfile(test_own=OWN_TESTS.format(op=op))
    result = run_gate(pytester, f"--rm-model=python:{model}:score", f"--rmgap-data={data}", "-m", "not rmgap",
                      "--rmgap-report=out", *xdist)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == (4 if ok else 3) and outcomes.get("failed", 0) == (0 if ok else 1)
    asked = (tmp / f"{model}.log").read_text().split()
    assert len(asked) == len(set(asked)) == 288 * 4  # every pair once in total, by all processes together
    assert (pytester.path / "out/report.json").exists()  # the controller wrote the report from the store


@XDIST
def test_fixture_and_gate_share_one_scoring(gate_dir, xdist):
    pytester, data, tmp = gate_dir
    pytester.makepyfile(test_own=OWN_TESTS.format(op=">="))
    result = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}", *xdist)
    assert result.parseoutcomes()["passed"] > 40
    asked = (tmp / "oracle_rm.log").read_text().split()
    assert len(asked) == len(set(asked)) == 288 * 4


def test_skipped_without_a_model_and_an_error_when_scoring_broke(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "c.sqlite"))
    pytester.makepyfile(test_own=OWN_TESTS.format(op=">="),
                        broken_rm="def score(p, r):\n    raise RuntimeError('CUDA error: out of memory')\n")
    pytester.syspathinsert()
    skipped = run_gate(pytester, "-rs")
    skipped.assert_outcomes(skipped=4)
    assert "no reward model given" in skipped.stdout.str()
    broke = run_gate(pytester, "--rm-model=python:broken_rm:score", "-m", "not rmgap")
    broke.assert_outcomes(errors=4)
    assert broke.ret == 6 and "CUDA error: out of memory" in broke.stdout.str()


def test_the_example_file_runs(pytester, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("RMGAP_CACHE", "off")
    example = Path(__file__).resolve().parents[1] / "examples" / "test_rm_fixture.py"
    pytester.makepyfile(test_rm_fixture=example.read_text())
    result = run_gate(pytester, "--rm-model=builtin:length", "-m", "not rmgap")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 4 and "error" not in outcomes
