"""The gate and ``rmgap eval`` against an engine server, end to end (pytester, with and without xdist)."""

from __future__ import annotations

import json

import pytest
from engine_sim import EngineServer
from test_engines import N_BOOT, local_run  # noqa: F401 - the shared local-run fixture

from rmgap_pytest.cli import main
from rmgap_pytest.scorers import _http


@pytest.fixture
def server(clf_dir, monkeypatch):
    for name in _http.KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    s = EngineServer("vllm", str(clf_dir)).start()
    yield s
    s.stop()


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_gate_against_vllm_matches_a_local_run(pytester, server, clf_dir, local_run, tmp_path, monkeypatch, xdist):
    data, local = local_run
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "cache.sqlite"))
    result = pytester.runpytest("-p", "no:cacheprovider", f"--rm-model=vllm:{server.url}",
                                f"--rm-tokenizer={clf_dir}", "--rm-concurrency=4", f"--rmgap-data={data}",
                                "--rmgap-report=out", *xdist)
    assert result.ret in (0, 1), result.stdout.str()
    assert "scoring failed" not in result.stdout.str()
    metrics = json.loads((pytester.path / "out/metrics.json").read_text())
    assert metrics == json.loads(json.dumps(local.reference))
    report = json.loads((pytester.path / "out/report.json").read_text())
    notes = " ".join(report["meta"]["notes"])
    assert "vllm: the server claims to serve 'tiny-rm'" in notes
    assert report["meta"]["fingerprint"].startswith("vllm:tiny-rm:")
    # every pair scored once in total, even with two workers sharing the work
    assert sum(len(p["body"]["input"]) for p in server.posts()) == 576


def test_gate_reports_an_unreachable_server_as_a_scoring_failure(pytester, clf_dir, local_run):
    data, _ = local_run
    result = pytester.runpytest("-p", "no:cacheprovider", "--rm-model=vllm:http://127.0.0.1:9", f"--rmgap-data={data}",
                                f"--rm-tokenizer={clf_dir}", "-k", "Avg")
    out = result.stdout.str()
    assert result.ret != 0 and "is the server running at http://127.0.0.1:9" in out and "Traceback" not in out


def test_rmgap_eval_against_sglang(server, clf_dir, local_run, tmp_path, capsys):
    data, local = local_run
    sglang = EngineServer("sglang", server.model, latency=0.3).start()  # requests overlap even under load
    try:
        code = main(["eval", "--rm-model", f"sglang:{sglang.url}", "--tokenizer", str(clf_dir), "--concurrency", "3",
                     "--data", str(data), "--out", str(tmp_path / "out"), "--bootstrap", str(N_BOOT), "--no-cache",
                     "--no-progress"])
    finally:
        sglang.stop()
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out/metrics.json").read_text()) == json.loads(json.dumps(local.reference))
    assert sglang.max_in_flight == 3


def test_options_are_validated(pytester, local_run):
    data, _ = local_run
    result = pytester.runpytest("--rm-model=vllm:http://127.0.0.1:9", f"--rmgap-data={data}", "--rm-concurrency=0")
    assert result.ret != 0 and "--rm-concurrency: '0' is not a positive integer" in result.stderr.str()
    result = pytester.runpytest("--rm-model=sglang:http://127.0.0.1:9", f"--rmgap-data={data}")
    assert result.ret != 0 and "--rm-tokenizer=DIR" in result.stderr.str()
