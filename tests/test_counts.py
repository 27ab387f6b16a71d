"""The run's counts come from the store: the same on a cached rerun, under xdist, with the cache off."""

from __future__ import annotations

import json

import numpy as np
import pytest

from builders import small_benchmark
from rmgap_pytest import evaluate
from rmgap_pytest.counts import META_SUMMARIES, scoring_lines, summarize_meta
from rmgap_pytest.report import terminal_summary
from rmgap_pytest.scorers.base import Scored, ScoreStats


class Truncating:
    """A pair scorer whose score_detailed flags pairs with a prompt ending in "wording 2" as truncated."""

    def __init__(self) -> None:
        self.spec, self.fingerprint, self.stats = "fake:trunc", "fake-trunc-v1", ScoreStats()

    def score(self, prompts, responses):
        return self.score_detailed(prompts, responses).values

    def score_detailed(self, prompts, responses):
        self.stats.pairs_scored += len(prompts)
        return Scored(np.array([float(len(r)) for r in responses]),
                      [{"truncated": p.endswith("wording 2")} for p in prompts])


def test_summaries_of_the_standard_keys():
    meta = [{"truncated": True}, {"truncated": False}, None,
            {"invalid": "no permutation", "raw": "I think B", "usage": {"prompt_tokens": 10, "completion_tokens": 2},
             "first": "B"},
            {"usage": {"prompt_tokens": 7, "completion_tokens": 1}, "first": "A"},
            {"first": "B", "usage": {"prompt_tokens": 100, "completion_tokens": 100}}]
    counts, details = summarize_meta(meta, [True, True, True, True, True, False], "pair")
    assert counts == {"truncated_pairs": 1, "invalid_answers": 1, "prompt_tokens": 17, "completion_tokens": 3}
    assert details == {"invalid_examples": [{"invalid": "no permutation", "raw": "I think B"}],
                       "first_position": {"A": 1, "B": 2}}
    assert set(META_SUMMARIES) >= {"truncated", "invalid", "usage", "first"}  # where judges add theirs


def test_scoring_lines_never_say_cache_hits_when_the_cache_is_off():
    on = scoring_lines({"unit": "pair", "pairs": 1248, "scored": 48, "cache": "on", "cache_hits": 1200,
                        "truncated_pairs": 3, "invalid_items": 0}, 2.0)
    assert on[0] == "Scoring: 48 pairs computed in 2.0s, 1200 served from the score cache (of 1248 pairs)"
    assert on[1] == "Invalid items: 0 (counted wrong); truncated pairs: 3"
    off = scoring_lines({"unit": "item", "items": 312, "scored": 312, "cache": "off", "invalid_items": 1})
    assert off == ["Scoring: 312 items computed (of 312 items; score cache off)", "Invalid items: 1 (counted wrong)"]
    assert "cache hits" not in " ".join(on + off)


def test_a_cached_rerun_reports_what_the_computing_run_saw(bench_file, tmp_path):
    cache = tmp_path / "c.sqlite"
    first = evaluate(bench_file, Truncating(), cache=cache, n_boot=10)  # a Scorer object: evaluate wraps nothing
    assert first.counts["cache"] == "off"  # it was handed a bare scorer: scored through a throwaway store
    from rmgap_pytest.stored import with_cache

    computing = evaluate(bench_file, with_cache(Truncating(), cache), n_boot=10)
    rerun = evaluate(bench_file, with_cache(Truncating(), cache), n_boot=10)
    assert computing.counts["scored"] == 576 and computing.counts["cache_hits"] == 0
    assert rerun.counts["scored"] == 0 and rerun.counts["cache_hits"] == 576
    assert computing.counts["truncated_pairs"] == rerun.counts["truncated_pairs"] == first.counts["truncated_pairs"] \
        == 576 // 3
    text = terminal_summary(rerun)
    assert "0 pairs computed" in text and "576 served from the score cache" in text and "truncated pairs: 192" in text
    off = terminal_summary(first)
    assert "576 pairs computed" in off and "score cache off" in off and "cache" not in off.split("score cache off")[1]


# --- the gate, serial and under xdist ------------------------------------------------------------

SCORER = """
import zlib
def score(prompts, responses):
    with open({log!r}, "a") as fh:
        fh.write("".join("%08x\\n" % zlib.crc32((p + "|" + r).encode()) for p, r in zip(prompts, responses)))
    return [float(len(r) % 7) for r in responses]
"""


@pytest.fixture
def gate(pytester, tmp_path):
    data = small_benchmark(pytester.path / "heldback.jsonl", per_domain=6)
    pytester.makepyfile(counted_rm=SCORER.format(log=str(tmp_path / "asked.log")))
    pytester.syspathinsert()
    return pytester, data, tmp_path


def run(pytester, data, *args):
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", "--rm-model=python:counted_rm:score",
                                f"--rmgap-data={data}", "-k", "avg", *args)
    return result, json.loads((pytester.path / "out/report.json").read_text())["counts"]


def test_counts_add_up_across_workers_and_survive_a_cached_rerun(gate):
    pytester, data, tmp = gate
    cache = f"--rmgap-cache={tmp / 'c.sqlite'}"
    _, first = run(pytester, data, cache, "--rm-scorer-version=1", "--rmgap-report=out", "-n", "2")
    assert first["scored"] == 1152 and first["cache_hits"] == 0 and first["cache"] == "on"
    result, again = run(pytester, data, cache, "--rm-scorer-version=1", "--rmgap-report=out", "-n", "2")
    assert again["scored"] == 0 and again["cache_hits"] == 1152
    result.stdout.fnmatch_lines(["Scoring: 0 pairs computed in *, 1152 served from the score cache (of 1152*"])
    assert len((tmp / "asked.log").read_text().split()) == 1152  # each pair asked once in all four processes


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_cache_off_says_so_and_counts_every_pair(gate, xdist):
    pytester, data, tmp = gate
    result, counts = run(pytester, data, "--rmgap-cache=off", "--rm-scorer-version=1", "--rmgap-report=out", *xdist)
    assert counts["scored"] == 1152 and counts["cache"] == "off" and "cache_hits" not in counts
    out = result.stdout.str()
    assert "1152 pairs computed" in out and "score cache off" in out and "cache hits" not in out
    assert len((tmp / "asked.log").read_text().split()) == 1152
