"""``rmgap`` as a newcomer meets it (issue 12): one vocabulary, verdict exit codes, formats, pipes, init."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rmgap_pytest.cli import build_parser, main
from test_cli import run_cli


def test_version_and_help_on_every_option():
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("rmgap-pytest ")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.dest != "help":
                assert action.help, f"rmgap {name} {action.option_strings or action.dest} has no help"


def test_eval_accepts_both_spellings_and_env(tmp_path, capsys, monkeypatch):
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert main(["eval", "--rm-model", "builtin:length", "--out", str(out_a), "--bootstrap", "20", "--limit", "6"]) == 0
    assert main(["eval", "--rm-model", "builtin:length", "--rmgap-report", str(out_b), "--bootstrap", "20",
                 "--rmgap-limit", "6"]) == 0
    a, b = (json.loads((d / "report.json").read_text()) for d in (out_a, out_b))
    assert a["counts"]["records"] == b["counts"]["records"] == 6 and a["meta"]["data"]["subset"]["of"] == 26
    assert a["reference"] == b["reference"]
    res = run_cli("eval", "--rm-model", "builtin:length", "--out", str(tmp_path / "c"), "--rm-dtype", "bf16")
    assert res.returncode == 2 and "'bf16' is not one of auto, float32, bfloat16, float16. Did you mean 'bfloat16'?" in res.stderr


def test_error_messages_name_the_running_tools_flag(tmp_path):
    model = tmp_path / "rm"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForSequenceClassification"]}))
    (model / "pytorch_model.bin").write_bytes(b"x")
    res = run_cli("eval", "--rm-model", f"classifier:{model}", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "(--allow-pickle)" in res.stderr and "--rm-allow-pickle" not in res.stderr


def _two_runs(tmp_path):
    from rmgap_pytest.synth import write_synthetic

    data = write_synthetic(tmp_path / "s.jsonl", 40)
    for spec, out in (("builtin:length", "a"), ("builtin:random", "b")):
        assert main(["eval", "--rm-model", spec, "--data", str(data), "--out", str(tmp_path / out),
                     "--bootstrap", "50", "--no-cache"]) == 0
    return data


def test_eval_with_thresholds_exits_with_the_verdict(tmp_path, capsys):
    data = _two_runs(tmp_path)
    (tmp_path / "easy.yaml").write_text("floors: {Pair: 0, BoN: 0, Consistency: 0}\ncell_floors: {Pair: 0, BoN: 0}\n"
                                        "gaps: {max: 1}\nblindness: {max: 1}\n")
    (tmp_path / "hard.yaml").write_text("floors: {BoN: 0.9}\n")
    base = ["eval", "--rm-model", "builtin:length", "--data", str(data), "--bootstrap", "50"]
    assert main([*base, "--out", str(tmp_path / "e"), "--thresholds", str(tmp_path / "easy.yaml")]) == 0
    assert main([*base, "--out", str(tmp_path / "h"), "--thresholds", str(tmp_path / "hard.yaml")]) == 1
    report = json.loads((tmp_path / "h" / "report.json").read_text())
    assert any(c["status"] == "fail" for c in report["checks"])
    assert "FAILED" in capsys.readouterr().out


def test_compare_formats_and_a_closed_pipe(tmp_path):
    _two_runs(tmp_path)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    res = run_cli("compare", a, b, "--format", "json")
    doc = json.loads(res.stdout)
    assert res.returncode == 1 and doc["regressed"] is True and {"metric", "lo", "hi", "regressed"} <= set(doc["units"][0])
    res = run_cli("compare", a, b, "--format", "md")
    assert res.stdout.startswith("## ❌") and "| metric | baseline |" in res.stdout
    pipe = subprocess.run(f"{sys.executable} -m rmgap_pytest.cli compare {a} {b} | head -1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert pipe.stdout.startswith("baseline:") and "Traceback" not in pipe.stderr and "BrokenPipe" not in pipe.stderr


def test_init_writes_starter_files_and_refuses_to_overwrite(tmp_path, capsys):
    from rmgap_pytest.thresholds import DEFAULTS, load_thresholds

    assert main(["init", "--dir", str(tmp_path)]) == 0
    assert load_thresholds(tmp_path / "thresholds.yaml").raw == DEFAULTS
    workflow = (tmp_path / ".github/workflows/rmgap-gate.yml").read_text()
    assert "pytest -m rmgap --rm-model=" in workflow
    (tmp_path / "thresholds.yaml").write_text("min_support: 5\n")
    res = run_cli("init", "--dir", str(tmp_path))
    assert res.returncode == 2 and "already exist" in res.stderr and "--force" in res.stderr
    assert (tmp_path / "thresholds.yaml").read_text() == "min_support: 5\n"
    assert main(["init", "--dir", str(tmp_path), "--force"]) == 0
    assert load_thresholds(tmp_path / "thresholds.yaml").raw == DEFAULTS


def test_synth_refuses_to_overwrite(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("mine\n")
    res = run_cli("synth", "--records", "4", "--out", str(path))
    assert res.returncode == 2 and "--force" in res.stderr and path.read_text() == "mine\n"
    assert run_cli("synth", "--records", "4", "--out", str(path), "--force").returncode == 0
    assert len(path.read_text().splitlines()) == 4


@pytest.mark.parametrize("args", [["eval", "--rm-model", "builtin:length"], ["history", "list"]])
def test_missing_required_settings_name_the_fix(args, tmp_path, monkeypatch):
    monkeypatch.delenv("RMGAP_HISTORY", raising=False)
    res = run_cli(*args)
    assert res.returncode == 2 and ("--out DIR is required" in res.stderr or "Fix: pass --dir DIR" in res.stderr)
