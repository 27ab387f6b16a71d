"""The gate end to end through pytester, with and without pytest-xdist."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from builders import small_benchmark
from reference_impl import reference_metrics as naive

SCORER = """
import json, zlib
WIN = json.load(open({win!r}))
SIGN = {sign}
def score(prompts, responses):
    with open({log!r}, "a") as fh:
        for p, r in zip(prompts, responses):
            fh.write("%08x\\n" % zlib.crc32((p + "|" + r).encode()))
    return [SIGN * ((1.0 if WIN.get(p) == r else 0.0) + (zlib.crc32(r.encode()) % 97) / 1000)
            for p, r in zip(prompts, responses)]
"""


@pytest.fixture
def gate_dir(pytester, tmp_path, monkeypatch):
    """A bare directory with a held-back RMGAP-format file and two python: scorers (good, reversed)."""
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "cache.sqlite"))
    data = small_benchmark(pytester.path / "heldback.jsonl", per_domain=6)
    win = {}
    for line in data.read_text().splitlines():
        rec = json.loads(line)
        texts = {r["key"]: r["text"] for r in rec["responses"]}
        for g in rec["prompt_groups"]:
            for p in g["prompts"]:
                win[p["text"]] = texts[g["winner"]]
    (tmp_path / "win.json").write_text(json.dumps(win))
    for name, sign in (("oracle_rm", 1), ("reversed_rm", -1)):
        pytester.makepyfile(**{name: SCORER.format(win=str(tmp_path / "win.json"), sign=sign,
                                                   log=str(tmp_path / f"{name}.log"))})
    pytester.syspathinsert()
    return pytester, data, tmp_path


def run_gate(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_invisible_without_a_model(pytester):
    pytester.makepyfile(test_plain="def test_ok():\n    assert 1 + 1 == 2\n")
    result = run_gate(pytester, "-v")
    result.assert_outcomes(passed=1)
    assert "rmgap::" not in result.stdout.str() and "RMGAP" not in result.stdout.str()


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_gate_items_metrics_and_report_files(gate_dir, xdist):
    pytester, data, tmp = gate_dir
    result = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}",
                      "--rmgap-report=out", "-rs", *xdist)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) >= 40
    assert outcomes.get("skipped", 0) > 0  # per-domain cells hold < 10 prompt groups here
    result.stdout.re_match_lines([r"SKIPPED \[1\] rmgap:1: cell\[Chat/Formality=neutral\]: support \d+ prompt "
                                  r"groups < min_support 10"])
    metrics = json.loads((pytester.path / "out/metrics.json").read_text())
    import zlib

    def oracle(p, r, win=json.loads((tmp / "win.json").read_text())):
        return (1.0 if win.get(p) == r else 0.0) + (zlib.crc32(r.encode()) % 97) / 1000

    want = naive([json.loads(x) for x in data.read_text().splitlines()], oracle)
    for m in want:
        for d in want[m]:
            assert metrics[m][d] == pytest.approx(want[m][d], abs=1e-9)
    report = json.loads((pytester.path / "out/report.json").read_text())
    assert report["meta"]["spec"] == "python:oracle_rm:score" and report["counts"]["items"] == 288
    assert (pytester.path / "out/report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert "RMGAP generalization report" in result.stdout.str()
    hashes = (tmp / "oracle_rm.log").read_text().split()
    assert len(hashes) == len(set(hashes))  # every pair asked at most once in total, xdist or not


def _same_run_text(text: str) -> str:
    """A report's text without what differs between two runs of one model: the time, the seconds and the
    scoring counts (a second run with the cache on is served from it)."""
    text = "\n".join(line for line in text.splitlines() if not line.startswith("Scoring:"))
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)
    return re.sub(r"\d+(\.\d+)?\s?s\b", "<seconds>", text)


@pytest.mark.parametrize("model", ["python:reversed_rm:score", "builtin:length"])
@pytest.mark.parametrize("cache", ["on", "off"])
def test_xdist_and_serial_agree(gate_dir, monkeypatch, cache, model):
    """Metrics, checks, the report's words and the model's fingerprint are the same under -n 2 as serially.

    Under xdist the workers share one pickled evaluation (shared.py) and, with the cache off, a run-keyed
    store: neither may show in the report (a pickled NaN once made the Domains table read n/a)."""
    pytester, data, _ = gate_dir
    if cache == "off":
        monkeypatch.setenv("RMGAP_CACHE", "off")
    run_gate(pytester, f"--rm-model={model}", f"--rmgap-data={data}", "--rmgap-report=a")
    run_gate(pytester, f"--rm-model={model}", f"--rmgap-data={data}", "--rmgap-report=b", "-n", "2")
    a = json.loads((pytester.path / "a/report.json").read_text())
    b = json.loads((pytester.path / "b/report.json").read_text())
    assert (pytester.path / "a/metrics.json").read_text() == (pytester.path / "b/metrics.json").read_text()
    assert a["metrics"] == b["metrics"] and a["checks"] == b["checks"]
    assert a["meta"]["fingerprint"] == b["meta"]["fingerprint"]
    assert (a["meta"]["fingerprint"] is None) == model.startswith("python:")
    md_a, md_b = (_same_run_text((pytester.path / f"{d}/report.md").read_text()) for d in "ab")
    assert "n/a" not in md_a.split("### Domains")[1].split("###")[0]
    assert md_a == md_b


def test_ids_select_with_k_and_deselect(gate_dir):
    pytester, data, _ = gate_dir
    result = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}",
                      "--collect-only", "-q", "-k", "cell and Conciseness and All")
    lines = [ln for ln in result.stdout.lines if ln.startswith("rmgap::")]
    assert lines and all("cell[All/Conciseness=" in ln for ln in lines)
    result = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}", "-q",
                      "--deselect", "rmgap::avg[BoN]", "-k", "avg")
    result.assert_outcomes(passed=2, deselected=result.parseoutcomes()["deselected"])


def test_failing_cell_reports_value_interval_threshold_and_records(gate_dir):
    pytester, data, _ = gate_dir
    result = run_gate(pytester, "--rm-model=python:reversed_rm:score", f"--rmgap-data={data}", "-k",
                      "cell and All/Formality")
    assert result.ret == 1
    out = result.stdout.str()
    # Issue 14: the entry's header names the users beside the id; one line says value, interval and floor
    # (the cell's other failing metric named); examples quote the prompt, the preferred and the right response.
    result.stdout.re_match_lines([r"_+ rmgap::cell\[All/Formality=casual\]: users who want a casual tone _+",
                                  r"Pair 0\.000 \[0\.00, 0\.00\] vs floor 0\.500: below the floor; BoN too \(48 groups\)",
                                  r"most wrong: 3 of \d+ wrong items, one per record:",
                                  r'  \S+, user \d, prompt \d: "user \d of \S+, wording \d"',
                                  r'    preferred response\d \(\w+, by [\d.]+\): "answer \d of .*',
                                  r'    right response\d \(casual\): "answer \d of .*'])
    assert "Traceback" not in out


def test_thresholds_errors_are_usage_errors(gate_dir):
    pytester, data, _ = gate_dir
    (pytester.path / "t.yaml").write_text("cells:\n  Chat/Concisenes=terse: {BoN: 0.3}\n")
    result = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}",
                      "--rmgap-thresholds=t.yaml")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*t.yaml: cells: unknown key 'Chat/Concisenes=terse'. Did you mean "
                                 "'Chat/Conciseness=terse'?*"])


@pytest.mark.parametrize("args,needle", [
    (["--rmgap-data=missing.jsonl"], "missing.jsonl: the benchmark file does not exist"),
    (["--rm-model=builtin:lenght"], "Did you mean 'length'?"),
    (["--rm-batch-size=zero"], "--rm-batch-size: 'zero' is not a positive integer"),
    (["--rm-aggregate=avg"], "--rm-aggregate: 'avg' is not one of mean, sum, discounted_sum"),
    (["--rm-label=first"], "--rm-label: 'first' is not a logit index"),
])
def test_bad_options_are_usage_errors(gate_dir, args, needle):
    pytester, data, _ = gate_dir
    base = ["--rm-model=python:oracle_rm:score", f"--rmgap-data={data}"]
    result = run_gate(pytester, *base, *args)
    assert result.ret == 4 and needle in result.stderr.str()


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_baseline_pass_then_regression(gate_dir, xdist):
    pytester, data, _ = gate_dir
    common = [f"--rmgap-data={data}", "--rmgap-baseline=baseline.json", *xdist]
    plain = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}", *xdist)
    first = run_gate(pytester, "--rm-model=python:oracle_rm:score", *common, "--rmgap-update-baseline")
    assert (pytester.path / "baseline.json").exists() and "baseline updated" in first.stdout.str()
    again = run_gate(pytester, "--rm-model=python:oracle_rm:score", *common)
    assert again.parseoutcomes().get("failed", 0) <= plain.parseoutcomes().get("failed", 0)
    assert any("regression[" in ln and "PASSED" in ln for ln in
               run_gate(pytester, "--rm-model=python:oracle_rm:score", *common, "-v").stdout.lines)
    (pytester.path / "t.yaml").write_text("regression: {tolerance: 0.05, weights: {domain: 0}}\n")
    worse = run_gate(pytester, "--rm-model=python:reversed_rm:score", *common, "--rmgap-report=out", "-rf",
                     "--rmgap-thresholds=t.yaml")
    assert worse.ret == 1
    worse.stdout.fnmatch_lines(["*FAILED*regression[[]Avg/BoN[]]*"])
    out = worse.stdout.str()
    assert "Traceback" not in out
    assert "[family-wise -" in out and "can flag drops > " in out
    # `rmgap compare` with the same thresholds fails exactly the items the gate failed.
    import re

    from rmgap_pytest.compare import compare_runs
    from rmgap_pytest.regression import regression_item_id

    failed = set(re.findall(r"^FAILED rmgap::(regression\[[^\]]+\])", out, flags=re.M))
    table = compare_runs(pytester.path / "baseline.json", pytester.path / "out", thresholds=pytester.path / "t.yaml").table
    assert failed == {regression_item_id(*r) for r in
                      table.loc[table["regressed"], ["kind", "domain", "dimension", "level", "metric"]].itertuples(
                          index=False)}
    assert failed and not any(f.startswith(("regression[Chat/", "regression[Safety/")) and "=" not in f
                              for f in failed)  # the domain tier is weighted 0: not in the gate


def test_baseline_on_other_data_is_a_usage_error(gate_dir):
    pytester, data, _ = gate_dir
    run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}", "--rmgap-baseline=b.json",
             "--rmgap-update-baseline")
    other = small_benchmark(pytester.path / "other.jsonl", per_domain=2)
    result = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={other}",
                      "--rmgap-baseline=b.json")
    assert result.ret == 4 and "Comparing across different data is meaningless" in result.stderr.str()


def test_ini_options(gate_dir):
    pytester, data, _ = gate_dir
    pytester.makeini(f"[pytest]\nrm_model = python:oracle_rm:score\nrmgap_data = {data}\nrmgap_report = ini_out\n")
    result = run_gate(pytester, "-q", "-k", "avg")
    result.assert_outcomes(passed=3, deselected=result.parseoutcomes()["deselected"])
    assert (pytester.path / "ini_out/metrics.json").exists()


def test_scorer_error_fails_items_cleanly(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "c.sqlite"))
    pytester.makepyfile(broken_rm="def score(prompts, responses):\n    return [0.0]\n")
    pytester.syspathinsert()
    result = run_gate(pytester, "--rm-model=python:broken_rm:score", "-k", "avg")
    assert result.ret == 6  # issue 12: "broke" (error outcome, exit 6), not "regressed" (failed, exit 1)
    result.assert_outcomes(errors=3, deselected=result.parseoutcomes()["deselected"])
    out = result.stdout.str()
    assert out.count("returned 1 scores for 64 pairs") == 1 and "Traceback" not in out


def test_junit_properties_carry_value_interval_threshold(gate_dir):
    import xml.etree.ElementTree as ET

    pytester, data, _ = gate_dir
    run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}", "-k", "avg or Formality",
             "--junitxml=junit.xml")
    root = ET.parse(pytester.path / "junit.xml").getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == "avg[BoN]")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["BoN.value"] == "1" and props["BoN.threshold"] == "0.3" and "BoN.lo" in props
    assert props["BoN.support"] == "96"


def test_works_without_xdist(gate_dir):
    pytester, data, _ = gate_dir
    result = run_gate(pytester, "-p", "no:xdist", "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}",
                      "-k", "avg")
    result.assert_outcomes(passed=3, deselected=result.parseoutcomes()["deselected"])


def test_deselected_checks_do_not_turn_the_report_red(gate_dir):
    pytester, data, _ = gate_dir
    (pytester.path / "t.yaml").write_text("floors: {Pair: 0.4}\n")
    result = run_gate(pytester, "--rm-model=builtin:length", f"--rmgap-data={data}", "--rmgap-thresholds=t.yaml",
                      "--rmgap-report=out", "-k", "avg and Pair")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["Gate: 1 passed, 0 failed, 0 skipped (1 checks)"])
    assert (pytester.path / "out/report.md").read_text().startswith("## ✅")


def test_collect_only_scores_nothing(gate_dir):
    pytester, data, tmp = gate_dir
    result = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}", "--collect-only",
                      "-q", "--rmgap-report=out")
    assert result.ret == 0 and not (tmp / "oracle_rm.log").exists() and not (pytester.path / "out/report.json").exists()


@pytest.mark.parametrize("args,needle", [
    (["--rmgap-update-baseline"], "--rmgap-update-baseline needs --rmgap-baseline=PATH"),
    (["--rmgap-report=afile"], "afile: the report directory is an existing file"),
    (["--rmgap-baseline=old.json"], "old.json: its 'meta' lacks the model spec"),
    (["--rmgap-baseline=bad.json"], "bad.json: not a valid report.json"),
])
def test_bad_baseline_and_report_paths(gate_dir, args, needle):
    pytester, data, _ = gate_dir
    (pytester.path / "afile").write_text("x")
    (pytester.path / "old.json").write_text(json.dumps({"version": 1, "meta": {}, "outcomes": {}}))
    (pytester.path / "bad.json").write_text("{not json")
    result = run_gate(pytester, "--rm-model=python:oracle_rm:score", f"--rmgap-data={data}", *args)
    assert result.ret == 4 and needle in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_scorer_error_under_xdist_is_not_retried_by_the_controller(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "c.sqlite"))
    log = tmp_path / "calls.log"
    pytester.makepyfile(raising_rm=f"def score(prompts, responses):\n"
                                   f"    open({str(log)!r}, 'a').write('x\\n')\n"
                                   f"    raise RuntimeError('GPU fell over')\n")
    pytester.syspathinsert()
    result = run_gate(pytester, "--rm-model=python:raising_rm:score", "-n", "2", "-k", "avg")
    assert result.ret == 6 and result.stdout.str().count("raised RuntimeError: GPU fell over") == 1
    assert len(log.read_text().split()) <= 2  # once per worker at most, none from the controller
    assert "Traceback" not in result.stdout.str()


def _between(lines, start, end):
    """The lines after the first line containing ``start`` up to the first containing ``end``."""
    i = next(k for k, line in enumerate(lines) if start in line)
    j = next(k for k, line in enumerate(lines) if k > i and end in line)
    return lines[i + 1:j]


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_failures_fit_the_terminal_and_v_gives_more(gate_dir, xdist, monkeypatch):
    """Issue 14: FAILURES entries and the summary use the terminal's width; -v shows every metric and example."""
    monkeypatch.setenv("COLUMNS", "90")
    pytester, data, _ = gate_dir
    args = ["--rm-model=python:reversed_rm:score", f"--rmgap-data={data}", *xdist]
    short, verbose = run_gate(pytester, *args), run_gate(pytester, *args, "-v")
    assert short.ret == verbose.ret == 1
    n_fail = short.parseoutcomes()["failed"]
    assert n_fail == verbose.parseoutcomes()["failed"] > 10
    for result in (short, verbose):
        body = _between(result.stdout.lines, "= FAILURES =", "= short test summary info =")
        assert max(len(line) for line in body) <= 90
        assert all(len(line) <= 90 for line in body if line.startswith("_"))  # who-words clipped in headers
    s_body = _between(short.stdout.lines, "= FAILURES =", "= RMGAP generalization report =")
    v_body = _between(verbose.stdout.lines, "= FAILURES =", "= RMGAP generalization report =")
    s_examples, v_examples = (sum("most wrong:" in line for line in b) for b in (s_body, v_body))
    assert 0 < s_examples < n_fail == v_examples  # -v: every failure gets its examples
    messages = [line for line in s_body if not line.startswith(("_", "[gw"))]  # not pytest's or xdist's headers
    assert len(messages) <= 130  # the default line budget of messages (failures.LINE_BUDGET)
    assert len(v_body) > len(s_body)
    body = _between(verbose.stdout.lines, "= FAILURES =", "= RMGAP generalization report =")
    start = next(k for k, line in enumerate(body) if line.startswith("_") and "rmgap::cell[All/Conciseness=terse]" in line)
    cell = [line for line in body[start + 1:start + 4] if not line.startswith("[gw")][:2]
    assert sorted(line.split(" ")[0] for line in cell) == ["BoN", "Pair"], cell  # -v: a line per failing metric


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_tb_line_gives_each_failure_its_line(gate_dir, xdist):
    """``--tb=line`` prints a failure's crash location: for a gate item its id and verdict line."""
    pytester, data, _ = gate_dir
    result = run_gate(pytester, "--rm-model=python:reversed_rm:score", f"--rmgap-data={data}", "--tb=line",
                      "-k", "avg", *xdist)
    assert result.ret == 1
    result.stdout.re_match_lines([r"rmgap::avg\[BoN\]: BoN 0\.000 \[0\.00, 0\.00\] vs floor 0\.300: below the floor.*"])
    assert " object at 0x" not in result.stdout.str()


@pytest.mark.parametrize("on_ci", [False, True], ids=["terminal", "CI"])
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_run_failing_many_checks_stays_short(pytester, tmp_path, monkeypatch, xdist, on_ci):
    """A weak model on a few hundred records fails ~100 items; the whole output stays a few hundred lines,
    also under xdist (no "[gw1] linux -- Python ..." line per failure) and on CI, where pytest prints a
    string failure whole on its short-summary line (so a cell's "most wrong" records would come twice)."""
    from rmgap_pytest.synth import write_synthetic

    monkeypatch.setenv("RMGAP_CACHE", "off")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("BUILD_NUMBER", raising=False)  # pytest's other sign of CI
    if on_ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    data = write_synthetic(pytester.path / "synth.jsonl", 300, seed=1)
    result = run_gate(pytester, "--rm-model=builtin:length", f"--rmgap-data={data}", "--rmgap-report=out",
                      "--junitxml=junit.xml", *xdist)
    n_fail = result.parseoutcomes()["failed"]
    assert n_fail >= 60
    assert len(result.stdout.lines) < 400
    summary = _between(result.stdout.lines, "= short test summary info =", f"{n_fail} failed")
    assert len(summary) == n_fail and all(line.startswith("FAILED rmgap::") for line in summary)
    if on_ci:  # unclipped there, as pytest does on CI
        assert any("(1200 groups)" in line for line in summary)
    failures = ET.parse(pytester.path / "junit.xml").getroot().iter("failure")
    # JUnit: the one-line verdict as the message, every line (the "most wrong" records too) in the body
    assert all("\n" not in f.get("message") and f.text.startswith(f.get("message")) for f in failures)
    assert any("most wrong:" in f.text for f in ET.parse(pytester.path / "junit.xml").getroot().iter("failure"))
    report = _between(result.stdout.lines, "= FAILURES =", "= short test")
    assert max(len(line) for line in report if "generated xml file:" not in line) <= 80  # that one is pytest's
    assert len((pytester.path / "out/report.md").read_text(encoding="utf-8")) < 65_000
