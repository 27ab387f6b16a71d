"""Run history (issue 12, item 8): kept runs, acceptance, --rmgap-baseline=last, trend, export, plot."""

from __future__ import annotations

import csv
import io
import json

from rmgap_pytest import history as H
from rmgap_pytest.cli import main
from test_plugin import gate_dir, run_gate  # noqa: F401  (gate_dir is a fixture)


def test_gate_runs_are_kept_and_last_compares_with_the_last_accepted(gate_dir, monkeypatch):
    pytester, data, _ = gate_dir
    common = [f"--rmgap-data={data}", "--rmgap-history=hist", "--rmgap-baseline=last", "-k", "avg or regression"]
    first = run_gate(pytester, "--rm-model=python:oracle_rm:score", *common)
    assert first.ret == 0 and "no accepted run on this data in hist yet" in first.stdout.str()
    assert "accepted" in first.stdout.str()
    bad = run_gate(pytester, "--rm-model=python:reversed_rm:score", *common)
    assert bad.ret == 1
    bad.stdout.fnmatch_lines(["*regression[[]Avg/BoN[]]*"])  # compared with the oracle's accepted run
    runs = H.read_runs(pytester.path / "hist")
    assert [r["gate"] for r in runs] == ["passed", "failed"] and [r["accepted"] for r in runs] == [True, False]
    assert runs[0]["spec"] == "python:oracle_rm:score" and runs[0]["metrics"]["BoN"]["Avg"] == 1.0
    assert (pytester.path / "hist" / runs[1]["file"]).exists()
    # Accept the failed run by hand: `last` now picks it, so the same model no longer regresses against itself.
    assert main(["history", "accept", runs[1]["id"][:18] if len({r["id"][:18] for r in runs}) == 2
                 else runs[1]["id"], "--dir", str(pytester.path / "hist")]) == 0
    again = run_gate(pytester, "--rm-model=python:reversed_rm:score", *common, "-v")
    again.stdout.fnmatch_lines(["*rmgap::regression[[]Avg/BoN[]] PASSED*"])
    assert "FAILED rmgap::regression" not in again.stdout.str()


def _fake_history(tmp_path, values):
    """Index lines as the gate writes them, for the read side."""
    d = tmp_path / "hist"
    d.mkdir()
    lines = []
    for i, (bon, passed) in enumerate(values):
        lines.append({"event": "run", "id": f"2026010{i}T000000Z-abcdef{i:02d}", "file": f"r{i}.json",
                      "time": f"2026-01-0{i}T00:00:00Z", "spec": "classifier:./rm", "fingerprint": "f" * 64,
                      "data_sha256": "d" * 64, "commit": f"{i:040x}", "dirty": False, "subset": None,
                      "gate": "passed" if passed else "failed", "accepted": passed, "why": "",
                      "metrics": {"BoN": {"Chat": bon, "Avg": bon}, "Pair": {"Avg": bon + 0.2}}})
    (d / H.INDEX).write_text("".join(json.dumps(x) + "\n" for x in lines))
    return d


def test_trend_export_and_plot(tmp_path, capsys):
    d = _fake_history(tmp_path, [(0.40, True), (0.42, True), (0.30, False)])
    points = H.trend(d, "Avg/BoN")
    assert [v for _, v in points] == [0.40, 0.42, 0.30]
    assert main(["history", "trend", "--dir", str(d), "--metric", "Chat/BoN"]) == 0
    out = capsys.readouterr().out
    assert "Chat/BoN over 3 runs" in out and "(-0.120)" in out
    assert main(["history", "export", "--dir", str(d)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["BoN/Avg"] for r in rows] == ["0.4", "0.42", "0.3"] and rows[2]["accepted"] == "False"
    assert main(["history", "export", "--dir", str(d), "--format", "json", "--out", str(tmp_path / "h.json")]) == 0
    assert json.loads((tmp_path / "h.json").read_text())[1]["Pair/Avg"] == 0.62
    png = tmp_path / "trend.png"
    assert main(["history", "plot", "--dir", str(d), "--metric", "Avg/BoN", "--metric", "Avg/Pair",
                 "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_list_and_errors(tmp_path, capsys):
    d = _fake_history(tmp_path, [(0.40, True), (0.30, False)])
    assert main(["history", "--dir", str(d)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and " passed  yes" in out[1] and " failed  no" in out[2]
    assert main(["history", "accept", "nope", "--dir", str(d)]) == 2
    assert "no run with id 'nope'" in capsys.readouterr().err
    assert main(["history", "trend", "--dir", str(d), "--metric", "Avg/Bon"]) == 2
    assert "Did you mean 'BoN'?" in capsys.readouterr().err
    assert main(["history", "--dir", str(tmp_path / "empty")]) == 2
    assert "no run history here" in capsys.readouterr().err


def test_run_ids_are_file_names_that_tell_models_apart(tmp_path):
    """Ids once took a fingerprint's first eight characters: "builtin:" for every builtin, with a colon in the
    file name. A model's sha256 fingerprint still shows as its first eight hex digits."""
    import re

    import pandas as pd

    from rmgap_pytest.evaluation import evaluate

    ids = []
    for spec in ("builtin:length", "builtin:random"):
        ev = evaluate(None, spec, cache=False, n_boot=20)
        ids.append(H.record_run(tmp_path / "hist", ev, pd.DataFrame(), None, passed=True)["id"])
    assert all(re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}(-\d+)?", i) for i in ids), ids
    assert ids[0].split("-")[1] != ids[1].split("-")[1]
    assert H._model_tag("ab12cd34" + "0" * 56) == "ab12cd34" and H._model_tag(None) == "uncached"
