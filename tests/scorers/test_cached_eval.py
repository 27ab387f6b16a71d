"""A rerun of the same model and data does no model work: every pair comes from the cache."""

import json

import pytest
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


def _imported(importtime_stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` output."""
    return {line.rsplit("|", 1)[-1].strip() for line in importtime_stderr.splitlines() if line.startswith("import time:")}


def test_cached_rerun_imports_no_torch_and_matches_byte_for_byte(clf_dir, bench_file, tmp_path):
    """Issue 11.2: a fully cached rerun of a model spec builds its fingerprint from the files alone."""
    cache = tmp_path / "scores.sqlite"
    args = ["eval", "--rm-model", f"classifier:{clf_dir}", "--data", str(bench_file), "--cache", str(cache),
            "--bootstrap", "50", "--no-progress", "--dtype", "auto"]
    assert main([*args, "--out", str(tmp_path / "first")]) == 0
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "rmgap_pytest.cli", *args,
                          "--out", str(tmp_path / "second")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    modules = _imported(res.stderr)
    assert "rmgap_pytest.scorers._model" in modules  # the model scorer was built...
    assert not {m for m in modules if m.split(".")[0] in ("torch", "transformers")}  # ...without torch
    for name in ("metrics.json",):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()
    second = json.loads((tmp_path / "second" / "report.json").read_text())
    assert second["counts"]["scored"] == 0


def test_custom_reward_class_needs_trust_remote_code(tmp_path):
    from families import build_custom

    from rmgap_pytest.errors import ScorerError
    from rmgap_pytest.scorers import build_scorer
    from rmgap_pytest.scorers.base import ScorerOptions

    path = build_custom(tmp_path)
    with pytest.raises(ScorerError, match=r"auto_map registers the repository's own class modeling_gating_rm\."
                                          r"GatingRewardModel.*pytest --rm-trust-remote-code; rmgap eval "
                                          r"--trust-remote-code"):
        build_scorer(str(path), ScorerOptions())
    scorer = build_scorer(str(path), ScorerOptions(trust_remote_code=True, dtype="float32"))
    assert "auto_map registers" in scorer.stats.notes[0]
    config = json.loads((path / "config.json").read_text())
    del config["auto_map"]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ScorerError, match=r"LlamaForRewardModelWithGating.*no auto_map entry.*python:MODULE:ATTR"):
        build_scorer(f"classifier:{path}", ScorerOptions(trust_remote_code=True))


def test_cli_layout_options_reach_the_scorer(clf_pair_dir, bench_file, tmp_path):
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>{% endfor %}")
    runs = {}
    for name, extra in (("plain", []), ("chat", ["--chat-template", str(template), "--pool", "last_non_pad"])):
        out = tmp_path / name
        assert main(["eval", "--rm-model", f"classifier:{clf_pair_dir}", "--data", str(bench_file), "--out", str(out),
                     "--bootstrap", "20", "--no-progress", "--dtype", "float32", "--no-cache", *extra]) == 0
        runs[name] = json.loads((out / "report.json").read_text())["meta"]
    assert runs["chat"]["options"]["chat_template"] == str(template) and runs["chat"]["options"]["pool"] == "last_non_pad"
    assert any(str(template) in n for n in runs["chat"]["notes"])
    assert any("BOS (when its tokenizer adds one) + prompt + response + EOS" in n for n in runs["plain"]["notes"])


def test_gate_refuses_max_length_beyond_positions_at_start_up(pytester, clf_dir, bench_file):
    result = pytester.runpytest("-p", "no:cacheprovider", f"--rm-model=classifier:{clf_dir}",
                                f"--rmgap-data={bench_file}", "--rm-max-length=100000")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*max_length=100000 is more than the 512 positions*"])
