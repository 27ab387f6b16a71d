"""``rmgap eval / compare / synth`` end to end, in process and as a real subprocess."""

import json
import subprocess
import sys

import pytest

from builders import make_record, write_jsonl
from reference_impl import reference_metrics as naive
from rmgap_pytest.cli import main
from rmgap_pytest.data import load_benchmark

SCORERS = """
import math, zlib
def ties(prompts, responses):
    return [float((len(p) + len(r)) // 40) for p, r in zip(prompts, responses)]
def nans(prompts, responses):
    out = []
    for p, r in zip(prompts, responses):
        h = zlib.crc32((p + "|" + r).encode())
        out.append(float("nan") if h % 5 == 0 else float(h % 11))
    return out
def too_few(prompts, responses):
    return [0.0] * (len(prompts) - 1)
"""


@pytest.fixture
def scorers(tmp_path, monkeypatch):
    (tmp_path / "heldback_scorers.py").write_text(SCORERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    return importlib.import_module("heldback_scorers")


@pytest.mark.parametrize("name", ["ties", "nans"])
def test_eval_metrics_equal_the_definitions(bench_file, tmp_path, scorers, capsys, name):
    out = tmp_path / "out"
    assert main(["eval", "--rm-model", f"python:heldback_scorers:{name}", "--data", str(bench_file),
                 "--out", str(out), "--bootstrap", "200"]) == 0
    got = json.loads((out / "metrics.json").read_text())
    fn = getattr(scorers, name)
    want = naive([json.loads(x) for x in bench_file.read_text().splitlines()], lambda p, r: fn([p], [r])[0])
    assert list(got) == ["Pair", "BoN", "Consistency"]
    for metric in want:
        assert list(got[metric]) == list(want[metric])  # Chat, Writing, Reasoning, Safety, Avg
        for dom, value in want[metric].items():
            assert got[metric][dom] == pytest.approx(value, abs=1e-9)
    report = json.loads((out / "report.json").read_text())
    invalid = report["counts"]["invalid_items"]
    assert (invalid > 0) == (name == "nans")
    assert report["meta"]["data"]["sha256"] == load_benchmark(bench_file).sha256
    assert len(report["outcomes"]["rows"]) == report["counts"]["items"] == 144
    assert {"numpy", "pandas"} <= set(report["meta"]["versions"])
    assert "Domains" in capsys.readouterr().out


def test_eval_default_data_is_the_sample(tmp_path):
    assert main(["eval", "--rm-model", "builtin:length", "--out", str(tmp_path), "--bootstrap", "100"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["meta"]["data"]["path"].endswith("rmgap_sample.jsonl") and report["counts"]["records"] >= 24


def _bad_file(tmp_path, name):
    rec = make_record("rec-7")
    raw = None
    if name == "truncated":
        raw = {1: json.dumps(rec)[:120]}
    elif name == "unknown domain":
        rec["domain"] = "Reasonning"
    elif name == "3 responses":
        rec["responses"].pop()
    elif name == "unknown winner":
        rec["prompt_groups"][0]["winner"] = "response7"
    elif name == "duplicate key":
        rec["responses"][3]["key"] = "response1"
    elif name == "empty prompt":
        rec["prompt_groups"][1]["prompts"][0]["text"] = ""
    elif name == "2 prompts":
        rec["prompt_groups"][2]["prompts"].pop()
    elif name == "empty response":
        rec["responses"][0]["text"] = " "
    elif name == "missing prompt_groups":
        del rec["prompt_groups"]
    path = tmp_path / "bad.jsonl"
    if name == "empty file":
        path.write_text("")
        return path
    return write_jsonl(path, [rec], raw)


MALFORMED = {
    "truncated": "line 1: is not valid JSON",
    "unknown domain": "'Reasonning'. Did you mean 'Reasoning'?",
    "3 responses": "exactly 4 responses, found 3",
    "unknown winner": "winner 'response7'",
    "duplicate key": "duplicate response key 'response1'",
    "empty prompt": "prompt group 2, prompt 1 is empty",
    "2 prompts": "prompt group 3 must hold exactly 3 prompts",
    "empty response": "response 'response1' has empty text",
    "missing prompt_groups": "'prompt_groups' is missing",
    "empty file": "holds no records (the file is empty)",
}


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rmgap_pytest.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, stdin=subprocess.DEVNULL)  # never a terminal that could be asked


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_inputs_exit_nonzero_without_traceback(tmp_path, case):
    path = _bad_file(tmp_path, case)
    res = run_cli("eval", "--rm-model", "builtin:length", "--data", str(path), "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and MALFORMED[case] in res.stderr
    assert str(path) in res.stderr
    if case not in ("truncated", "empty file"):
        assert "line 1 (record 'rec-7')" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1  # one paragraph
    assert not (tmp_path / "o").exists()


def test_missing_file_and_short_scorer(tmp_path, scorers):
    res = run_cli("eval", "--rm-model", "builtin:length", "--data", str(tmp_path / "nope.jsonl"),
                  "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "nope.jsonl: the benchmark file does not exist" in res.stderr
    (tmp_path / "short_rm.py").write_text(SCORERS)
    res = run_cli("eval", "--rm-model", "python:short_rm:too_few", "--out", "o", "--no-cache", cwd=tmp_path)
    assert res.returncode == 6 and "Traceback" not in res.stderr  # issue 12: a scorer that breaks is exit 6
    assert "python:short_rm:too_few (batch 1 of 4, 64 pairs) returned 63 scores for 64 pairs" in res.stderr


def test_synth_then_eval_and_compare(tmp_path):
    path = tmp_path / "synth.jsonl"
    assert main(["synth", "--records", "40", "--out", str(path)]) == 0
    bench = load_benchmark(path)
    assert len(bench.records) == 40 and bench.synthetic
    assert [sum(r.domain == d for r in bench.records) for d in ("Chat", "Writing", "Reasoning", "Safety")] == \
        [15, 9, 8, 8]  # 40 x (397, 253, 225, 222) / 1097, largest remainder
    for spec, out in (("builtin:length", "a"), ("builtin:random", "b")):
        assert main(["eval", "--rm-model", spec, "--data", str(path), "--out", str(tmp_path / out),
                     "--bootstrap", "100", "--no-cache"]) == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "a")]) == 0
    res = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert res.returncode == 1 and "REGRESSED" in res.stdout  # random loses length's consistency
    assert "family-wise 95% interval" in res.stdout and "mde" in res.stdout
    (tmp_path / "t.yaml").write_text("regression: {weights: {avg: 0, domain: 0, all_cells: 0, domain_cells: 1}}\n")
    res = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--thresholds", str(tmp_path / "t.yaml"))
    regressed = [ln for ln in res.stdout.splitlines() if ln.endswith("REGRESSED")]
    assert res.returncode == 1 and "not gated" in res.stdout  # only per-domain cells are in the family now
    assert regressed and all("=" in ln.split()[0] and not ln.startswith("All/") for ln in regressed)
    other = tmp_path / "other.jsonl"
    main(["synth", "--records", "8", "--out", str(other)])
    main(["eval", "--rm-model", "builtin:length", "--data", str(other), "--out", str(tmp_path / "c"),
          "--bootstrap", "100"])
    res = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "c"))
    assert res.returncode == 2 and "different benchmark files" in res.stderr


def test_usage_errors_are_argparse_messages(tmp_path):
    res = run_cli("eval", "--rm-model", "builtin:length", "--out", str(tmp_path / "o"), "--batch-size", "0")
    assert res.returncode == 2 and "argument --batch-size/--rm-batch-size: '0' is not a positive integer" in res.stderr


def test_cache_info_and_clear(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "c.sqlite"
    monkeypatch.setenv("RMGAP_CACHE", str(cache))
    assert main(["eval", "--rm-model", "builtin:length", "--out", str(tmp_path / "o"), "--bootstrap", "100"]) == 0
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(cache) in out and "builtin:length:v1" in out
    assert main(["cache", "clear", "--fingerprint", "builtin:length:v1"]) == 0
    assert "deleted" in capsys.readouterr().out
    main(["cache", "info"])
    assert "(empty)" in capsys.readouterr().out


def test_cache_info_names_each_scorer(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "c.sqlite"
    assert main(["eval", "--rm-model", "builtin:random", "--out", str(tmp_path / "o"), "--bootstrap", "10",
                 "--cache", str(cache)]) == 0
    capsys.readouterr()
    assert main(["cache", "info", "--path", str(cache)]) == 0
    out = capsys.readouterr().out
    today = __import__("time").strftime("%Y-%m-%d")
    assert "1248 pair scores  builtin:random  kind builtin:random, dtype n/a, first scored " + today in out
    assert "fingerprint builtin:random:v1:seed=0" in out


def test_cache_clear_of_everything_asks_or_needs_all(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "c.sqlite"
    for spec in ("builtin:length", "builtin:random"):
        main(["eval", "--rm-model", spec, "--out", str(tmp_path / "o"), "--bootstrap", "10", "--cache", str(cache)])
    # No terminal (CI, a pipe): refused, nothing deleted.
    res = run_cli("cache", "clear", "--path", str(cache))
    assert res.returncode == 2 and "pass --all" in res.stderr and "Traceback" not in res.stderr
    from rmgap_pytest.cache import ScoreStore

    assert sum(ScoreStore(cache).info().values()) == 2496

    class Tty:
        def __init__(self, answer):
            self.answer = answer

        def isatty(self):
            return True

        def readline(self):
            return self.answer

    monkeypatch.setattr(sys, "stdin", Tty("n\n"))
    capsys.readouterr()
    assert main(["cache", "clear", "--path", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "Delete all 2496 scores of 2 scorers" in out and "nothing deleted" in out
    monkeypatch.setattr(sys, "stdin", Tty("y\n"))
    assert main(["cache", "clear", "--path", str(cache)]) == 0
    assert "deleted 2496 scores" in capsys.readouterr().out
    main(["eval", "--rm-model", "builtin:length", "--out", str(tmp_path / "o"), "--bootstrap", "10", "--cache",
          str(cache)])
    res = run_cli("cache", "clear", "--all", "--path", str(cache))
    assert res.returncode == 0 and "deleted 1248 scores" in res.stdout


def test_a_file_that_is_not_a_cache_is_refused(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for args in (["cache", "info", "--path", str(notes)],
                 ["eval", "--rm-model", "builtin:length", "--out", str(tmp_path / "o"), "--cache", str(notes)]):
        res = run_cli(*args)
        assert res.returncode == 2 and "is not an rmgap-pytest score cache" in res.stderr
        assert "Traceback" not in res.stderr
    assert notes.read_text() == "my notes\n"


def test_out_path_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    res = run_cli("eval", "--rm-model", "builtin:length", "--out", str(tmp_path / "afile"))
    assert res.returncode == 2 and "is an existing file" in res.stderr and "Traceback" not in res.stderr
