"""``pytest --rm-model=KIND:URL``: the gate with each judge kind, serial and under xdist, through pytester."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "scorers"))
from fake_judge import FakeJudge  # noqa: E402
from test_judges_e2e import KEY, heldback, quality_for  # noqa: E402

KINDS = ["verifier", "judge", "ranker"]


@pytest.fixture
def judge_dir(pytester, monkeypatch):
    monkeypatch.setenv("RMGAP_API_KEY", KEY)
    data, win = heldback(pytester.path / "heldback.jsonl")
    server = FakeJudge(quality_for(win), key=KEY, delay=0.005)
    yield pytester, data, server
    server.stop()


def run_gate(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


@pytest.mark.parametrize("kind", KINDS)
def test_gate_with_each_kind_serial_and_xdist_agree(judge_dir, kind):
    pytester, data, server = judge_dir
    common = [f"--rm-model={kind}:{server.base}", f"--rmgap-data={data}", "--rmgap-cache=off", "--rm-concurrency=4"]
    serial = run_gate(pytester, *common, "--rmgap-report=serial")
    asked_serial = len(server.completions)
    parallel = run_gate(pytester, *common, "--rmgap-report=xdist", "-n", "2")
    asked_xdist = len(server.completions) - asked_serial
    for result in (serial, parallel):
        outcomes = result.parseoutcomes()
        assert outcomes.get("passed", 0) + outcomes.get("failed", 0) > 20
        assert "RMGAP generalization report" in result.stdout.str()
    assert asked_xdist == asked_serial  # under xdist each pair is still judged once in total
    a = json.loads((pytester.path / "serial/report.json").read_text())
    b = json.loads((pytester.path / "xdist/report.json").read_text())
    assert (pytester.path / "serial/metrics.json").read_text() == (pytester.path / "xdist/metrics.json").read_text()
    assert a["metrics"] == b["metrics"] and a["counts"]["invalid_items"] == b["counts"]["invalid_items"]
    assert a["counts"]["invalid_items"] == (0 if kind == "verifier" else 12)
    assert a["meta"]["spec"] == f"{kind}:{server.base}"
    blob = b"".join(p.read_bytes() for p in pytester.path.rglob("*") if p.is_file())
    assert KEY.encode() not in blob + (serial.stdout.str() + parallel.stdout.str()).encode()


def test_judge_options_reach_the_scorer_and_bad_values_are_usage_errors(judge_dir):
    pytester, data, server = judge_dir
    template = pytester.path / "t.txt"
    template.write_text("Rate it on a scale from 1 to 10.\n### Query\n{prompt}\n\n### Response\n{response}\n\nScale: rate it.")
    result = run_gate(pytester, f"--rm-model=judge:{server.base}", f"--rmgap-data={data}", "--rmgap-cache=off",
                      "--rm-judge-score=expected", f"--rm-judge-template={template}", "--rm-judge-max-tokens=64",
                      "--rm-api-model=judge-1", "-m", "rmgap", "--rmgap-report=out")
    assert result.ret in (0, 1)
    sent = server.completions[0]
    assert sent["logprobs"] is True and sent["max_tokens"] == 64 and sent["model"] == "judge-1"
    assert sent["messages"][1]["content"].startswith("Rate it on a scale from 1 to 10.")
    assert not any(r["path"].endswith("/models") for r in server.requests)
    for args, needle in ((["--rm-judge-score=mean"], "--rm-judge-score: 'mean' is not one of rating, expected"),
                         (["--rm-concurrency=0"], "--rm-concurrency: '0' is not a positive integer"),
                         (["--rm-judge-template=missing.txt"], "does not exist")):
        bad = run_gate(pytester, f"--rm-model=judge:{server.base}", f"--rmgap-data={data}", *args)
        assert bad.ret == 4 and needle in bad.stderr.str()
