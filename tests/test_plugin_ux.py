"""Issue 12 end to end: the habits and mistakes of a reward-model engineer, through pytester."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from builders import small_benchmark
from test_plugin import gate_dir, run_gate  # noqa: F401  (gate_dir is a fixture)

XDIST = pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])


@pytest.mark.parametrize("args,env,needle", [
    (["--rmgap-report=out"], {}, "--rmgap-report is set but no reward model is given"),
    (["--rm-dtype=bfloat16"], {}, "--rm-dtype is set but no reward model is given"),
    ([], {"RMGAP_DATA": "x.jsonl"}, "RMGAP_DATA is set but no reward model is given"),
    ([], {"RMGAP_MODLE": "./rm"}, "RMGAP_MODLE: Did you mean 'RMGAP_MODEL'?"),
])
def test_gate_options_without_a_model_are_a_usage_error(pytester, monkeypatch, args, env, needle):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = run_gate(pytester, *args)
    assert result.ret == 4 and needle in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_variables_the_cli_reads_too_are_fine_without_a_model(pytester, monkeypatch):
    monkeypatch.setenv("RMGAP_CACHE", "off")
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    run_gate(pytester).assert_outcomes(passed=1)


class _DeadThenAliveHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the stdlib's name
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


@XDIST
def test_a_dead_server_is_one_error_not_n_failures(pytester, tmp_path, monkeypatch, xdist):
    """A server that answers 503 (and one that is not there at all): error outcomes, exit 6, the cause once."""
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "c.sqlite"))
    server = HTTPServer(("127.0.0.1", 0), _DeadThenAliveHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for url in (f"http://127.0.0.1:{server.server_port}/score", "http://127.0.0.1:9/score"):
            result = run_gate(pytester, f"--rm-model={url}", "-k", "avg or domain", *xdist)
            out = result.stdout.str()
            assert result.ret == 6, out
            outcomes = result.parseoutcomes()
            assert outcomes.get("errors", 0) >= 3 and not outcomes.get("failed") and not outcomes.get("passed")
            assert out.count("the gate could not score the model, so no check was decided") == 1
            assert "Traceback" not in out
    finally:
        server.shutdown()


def test_x_stopping_before_the_gate_claims_no_checks(gate_dir):
    pytester, data, _ = gate_dir
    pytester.makepyfile(test_mine="def test_fails():\n    assert False\n")
    result = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}", "-x",
                      "--rmgap-report=out")
    assert result.ret == 1
    out = result.stdout.str()
    assert "Gate: no checks ran" in out and "checks)" not in out
    assert json.loads((pytester.path / "out/report.json").read_text())["checks"] == []


def test_update_baseline_over_other_data_replaces_it(gate_dir):
    pytester, data, _ = gate_dir
    run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}", "--rmgap-baseline=b.json",
             "--rmgap-update-baseline")
    other = small_benchmark(pytester.path / "other.jsonl", per_domain=2)
    result = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={other}",
                      "--rmgap-baseline=b.json", "--rmgap-update-baseline", "-k", "avg")
    assert result.ret == 0
    out = result.stdout.str()
    assert "was scored on other data" in out and "not compared, and replaced by this run" in out
    assert "regression[" not in out
    stored = json.loads((pytester.path / "b.json").read_text())
    from rmgap_pytest.data import load_benchmark

    assert stored["meta"]["data"]["sha256"] == load_benchmark(other).sha256


def test_a_failed_node_id_reruns_that_item(gate_dir):
    pytester, data, tmp = gate_dir
    common = ["--rm-model=python:reversed_rm:score", f"--rmgap-data={data}"]
    first = run_gate(pytester, *common, "-rf")
    failed = [ln.split()[1] for ln in first.stdout.lines if ln.startswith("FAILED rmgap::")]
    assert failed
    again = run_gate(pytester, *common, failed[0], failed[-1])
    again.assert_outcomes(failed=2, deselected=again.parseoutcomes()["deselected"])
    heads = [ln for ln in again.stdout.lines if ln.startswith("_") and "rmgap::" in ln]
    assert len(heads) == 2 and f" {failed[0]}" in heads[0] and f" {failed[-1]}" in heads[1]


def test_lf_reruns_only_the_failed_gate_items_without_rescoring(gate_dir):
    pytester, data, tmp = gate_dir
    common = ["--rm-model=python:reversed_rm:score", f"--rmgap-data={data}", "--rm-scorer-version=1"]
    first = pytester.runpytest("-p", "no:randomly", *common)  # the cache provider on: it records failures
    n_failed = first.parseoutcomes()["failed"]
    calls = len((tmp / "reversed_rm.log").read_text().split())
    rerun = pytester.runpytest("-p", "no:randomly", *common, "--lf")
    assert rerun.parseoutcomes()["failed"] == n_failed and "passed" not in rerun.parseoutcomes()
    assert len((tmp / "reversed_rm.log").read_text().split()) == calls  # served from the score cache


def test_thresholds_yaml_in_the_rootdir_and_ini_paths(gate_dir):
    """reversed_rm fails avg[BoN] under the defaults; a file with a floor of 0 makes it pass."""
    pytester, data, _ = gate_dir
    args = ["--rm-model=python:reversed_rm:score", f"--rmgap-data={data}", "-k", "avg[BoN]"]
    assert run_gate(pytester, *args).ret == 1
    (pytester.path / "thresholds.yaml").write_text("floors: {BoN: 0.0}\n")
    found = run_gate(pytester, *args)
    assert found.ret == 0 and "thresholds.yaml (found in the rootdir)" in found.stdout.str()
    (pytester.path / "thresholds.yaml").unlink()
    sub = pytester.mkdir("ci")
    (sub / "t.yaml").write_text("floors: {BoN: 0.0}\n")
    data.rename(sub / "held.jsonl")
    (sub / "tox.ini").write_text("[pytest]\nrm_model = python:reversed_rm:score\nrmgap_data = held.jsonl\n"
                                 "rmgap_thresholds = t.yaml\nrmgap_report = out\n")
    result = run_gate(pytester, "-c", str(sub / "tox.ini"), "--rootdir", str(pytester.path), "-k", "avg[BoN]")
    result.assert_outcomes(passed=1, deselected=result.parseoutcomes()["deselected"])  # t.yaml's floor applies
    assert (sub / "out/metrics.json").exists() and not (pytester.path / "out").exists()


def test_limit_scores_a_stratified_subset_and_refuses_the_whole_baseline(gate_dir):
    pytester, data, tmp = gate_dir
    base = ["--rm-model=python:oracle_rm:score", f"--rmgap-data={data}"]
    run_gate(pytester, *base, "--rmgap-baseline=b.json", "--rmgap-update-baseline", "-k", "avg")
    (tmp / "oracle_rm.log").unlink()
    result = run_gate(pytester, *base, "--rmgap-limit=5", "--rmgap-report=out", "-k", "avg")
    assert "SUBSET: only 5 of 24 records were scored" in result.stdout.str()
    report = json.loads((pytester.path / "out/report.json").read_text())
    assert report["counts"]["records"] == 5 and len(report["meta"]["data"]["domains"]) == 4
    assert len((tmp / "oracle_rm.log").read_text().split()) == 5 * 48
    refused = run_gate(pytester, *base, "--rmgap-limit=5", "--rmgap-baseline=b.json")
    assert refused.ret == 4 and "a subset is never compared with the whole file" in refused.stderr.str()


def test_help_shows_metavars_and_that_options_need_a_model(pytester):
    out = pytester.runpytest("--help").stdout.str()
    assert "--rm-model=SPEC" in out and "--rmgap-data=PATH" in out and "--rm-batch-size=N" in out
    assert "every option below needs --rm-model" in out
