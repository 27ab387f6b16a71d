"""Item-level (listwise) scorers end to end: evaluate, the CLI's cache, and the gate with and without xdist."""

from __future__ import annotations

import json

import pytest

from builders import small_benchmark
from reference_impl import reference_metrics as naive
from rmgap_pytest import evaluate, load_scorer


def test_length_rank_has_length_metrics_where_no_lengths_tie(bench_file, tmp_path):
    ranks = evaluate(bench_file, "builtin:length-rank", cache=tmp_path / "c.sqlite", n_boot=50)
    length = evaluate(bench_file, "builtin:length", cache=False, n_boot=50)
    assert ranks.reference == length.reference
    assert ranks.counts["unit"] == "item" and ranks.counts["scored"] == ranks.counts["items"] == 144
    assert ranks.outcomes[["s0", "s1", "s2", "s3"]].to_numpy().min() == 1.0  # ranks are the scores
    again = evaluate(bench_file, "builtin:length-rank", cache=tmp_path / "c.sqlite", n_boot=50)
    assert again.counts["scored"] == 0 and again.counts["cache_hits"] == 144 and again.reference == ranks.reference


def test_an_item_scorer_sees_each_prompt_with_its_four_responses_in_file_order(tmp_path, monkeypatch):
    (tmp_path / "listwise.py").write_text(
        "SEEN = []\n"
        "def rank(prompts, responses):\n"
        "    SEEN.extend(zip(prompts, responses))\n"
        "    return [[float(len(r)) for r in rs] for rs in responses]\n"
        "rank.unit = 'item'\n"
        "def ragged(prompts, responses):\n"
        "    return [[1.0, 2.0] for _ in prompts]\n"
        "ragged.unit = 'item'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bench = small_benchmark(tmp_path / "b.jsonl", per_domain=1)
    ev = evaluate(bench, "python:listwise:rank", cache=False, n_boot=10)
    import listwise

    assert len(listwise.SEEN) == 48 and all(len(rs) == 4 for _, rs in listwise.SEEN)
    records = [json.loads(line) for line in bench.read_text().splitlines()]
    want = {(p["text"], tuple(r["text"] for r in rec["responses"]))  # responses in file order
            for rec in records for g in rec["prompt_groups"] for p in g["prompts"]}
    assert {(p, tuple(rs)) for p, rs in listwise.SEEN} == want
    assert ev.reference == evaluate(bench, "builtin:length", cache=False, n_boot=10).reference
    from rmgap_pytest.errors import ScorerError

    with pytest.raises(ScorerError, match=r"returned 2 scores for 4 responses"):
        load_scorer("python:listwise:ragged", cache=False).score_items(["p"], [["a", "b", "c", "d"]])


LISTWISE = """
import zlib
def rank(prompts, responses):
    with open({log!r}, "a") as fh:
        fh.write("".join("%08x\\n" % zlib.crc32((p + "|" + "|".join(rs)).encode()) for p, rs in zip(prompts, responses)))
    out = []
    for p, rs in zip(prompts, responses):
        order = sorted(range(4), key=lambda j: (zlib.crc32((p + rs[j]).encode()), j))
        row = [0.0] * 4
        for rank, j in enumerate(order):
            row[j] = float(4 - rank)
        out.append(row)
    return out
rank.unit = "item"
"""


@pytest.fixture
def listwise_gate(pytester, tmp_path):
    data = small_benchmark(pytester.path / "heldback.jsonl", per_domain=6)
    pytester.makepyfile(listwise_rm=LISTWISE.format(log=str(tmp_path / "asked.log")))
    pytester.syspathinsert()
    return pytester, data, tmp_path


def gate(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_the_gate_judges_each_item_once_serial_or_xdist_with_identical_metrics(listwise_gate):
    pytester, data, tmp = listwise_gate
    common = ["--rm-model=python:listwise_rm:rank", f"--rmgap-data={data}", "--rmgap-cache=off"]
    gate(pytester, *common, "--rmgap-report=serial")
    asked_serial = (tmp / "asked.log").read_text().split()
    (tmp / "asked.log").unlink()
    result = gate(pytester, *common, "--rmgap-report=xdist", "-n", "2")
    asked_xdist = (tmp / "asked.log").read_text().split()
    assert len(asked_serial) == len(set(asked_serial)) == 288  # 24 records x 12 items, each once
    assert sorted(asked_xdist) == sorted(asked_serial)  # once in total over both workers
    serial, xdist = (pytester.path / "serial/metrics.json").read_bytes(), (pytester.path / "xdist/metrics.json").read_bytes()
    assert serial == xdist
    counts = json.loads((pytester.path / "xdist/report.json").read_text())["counts"]
    assert counts["unit"] == "item" and counts["scored"] == 288 and "cache_hits" not in counts
    result.stdout.fnmatch_lines(["Scoring: 288 items computed in *(of 288 items; score cache off)"])
    # The metrics keep their definitions: an item scorer's row is the item's 4 scores (here, ranks).
    records = [json.loads(line) for line in data.read_text().splitlines()]
    want, got = naive(records, _rank_lookup(records)), json.loads(serial)
    for metric in want:
        for domain in want[metric]:
            assert got[metric][domain] == pytest.approx(want[metric][domain], abs=1e-12)


def _rank_lookup(records):
    """(prompt, response) -> the rank LISTWISE gives that response for that prompt."""
    import zlib

    ranks = {}
    for rec in records:
        texts = [r["text"] for r in rec["responses"]]
        for g in rec["prompt_groups"]:
            for p in g["prompts"]:
                order = sorted(range(4), key=lambda j: (zlib.crc32((p["text"] + texts[j]).encode()), j))
                for rank, j in enumerate(order):
                    ranks[p["text"], texts[j]] = float(4 - rank)
    return lambda p, r: ranks[p, r]


def test_builtin_length_rank_under_xdist_matches_builtin_length(listwise_gate):
    pytester, data, _ = listwise_gate
    gate(pytester, "--rm-model=builtin:length", f"--rmgap-data={data}", "--rmgap-report=length", "-k", "avg")
    gate(pytester, "--rm-model=builtin:length-rank", f"--rmgap-data={data}", "--rmgap-report=ranks", "-k", "avg",
         "-n", "2")
    assert (pytester.path / "length/metrics.json").read_bytes() == (pytester.path / "ranks/metrics.json").read_bytes()
