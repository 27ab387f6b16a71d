"""A rerun of the same model and data does no model work: every pair comes from the cache."""

import json
import subprocess
import sys

from rmgap_pytest import evaluate
from rmgap_pytest.cli import main


def test_second_evaluation_loads_no_weights(clf_dir, bench_file, tmp_path):
    cache = tmp_path / "scores.sqlite"
    first = evaluate(bench_file, f"classifier:{clf_dir}", cache=cache, n_boot=100, progress=False)
    assert first.counts["scored"] == first.counts["pairs"] == 576 and first.counts["cache_hits"] == 0
    second = evaluate(bench_file, f"classifier:{clf_dir}", cache=cache, n_boot=100, progress=False)
    assert second.counts["scored"] == 0 and second.counts["cache_hits"] == 576
    # The truncation count comes from the flags stored with the scores: the rerun reports the same.
    assert second.counts["truncated_pairs"] == first.counts["truncated_pairs"]
    assert second.reference == first.reference
    assert second.meta["fingerprint"] == first.meta["fingerprint"]


def test_bare_directory_through_the_cli(clf_dir, bench_file, tmp_path):
    out = tmp_path / "out"
    assert main(["eval", "--rm-model", str(clf_dir), "--data", str(bench_file), "--out", str(out),
                 "--bootstrap", "100", "--no-progress", "--dtype", "float32"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert any("detected kind 'classifier'" in note for note in report["meta"]["notes"])
    assert report["meta"]["options"]["dtype"] == "float32"


def test_missing_model_directory_is_a_clean_cli_error(clf_dir, tmp_path):
    res = subprocess.run([sys.executable, "-m", "rmgap_pytest.cli", "eval", "--rm-model", str(tmp_path / "nope"),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_gate_passes_model_options_through(pytester, lm_dir, bench_file):
    fingerprints = {}
    for aggregate in ("mean", "sum"):
        result = pytester.runpytest("-p", "no:cacheprovider", f"--rm-model=logprob:{lm_dir}",
                                    f"--rmgap-data={bench_file}", f"--rm-aggregate={aggregate}", "--rm-dtype=float32",
                                    f"--rmgap-report=out_{aggregate}", "-k", "avg")
        assert result.ret in (0, 1)
        report = json.loads((pytester.path / f"out_{aggregate}/report.json").read_text())
        assert report["meta"]["options"]["aggregate"] == aggregate
        fingerprints[aggregate] = report["meta"]["fingerprint"]
    assert fingerprints["mean"] != fingerprints["sum"]  # different scores, different cache keys


def test_truncation_counts_agree_serial_xdist_and_cached(pytester, clf_dir, bench_file, tmp_path):
    """The count comes from the flag stored with each score, not from the process that scored it."""
    cache = f"--rmgap-cache={tmp_path / 'c.sqlite'}"

    def run(out, *args):
        pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", f"--rm-model=classifier:{clf_dir}",
                           f"--rmgap-data={bench_file}", "--rm-max-length=100", "--rm-dtype=float32",
                           f"--rmgap-report={out}", "-k", "avg", *args)
        return json.loads((pytester.path / out / "report.json").read_text())["counts"]

    serial = run("serial", cache)
    cached_xdist = run("cached_xdist", cache, "-n", "2")
    uncached_xdist = run("uncached_xdist", "--rmgap-cache=off", "-n", "2")
    assert 0 < serial["truncated_pairs"] < 576
    assert serial["truncated_pairs"] == cached_xdist["truncated_pairs"] == uncached_xdist["truncated_pairs"]
    assert (serial["scored"], cached_xdist["scored"], uncached_xdist["scored"]) == (576, 0, 576)
    assert cached_xdist["cache_hits"] == 576 and "cache_hits" not in uncached_xdist
