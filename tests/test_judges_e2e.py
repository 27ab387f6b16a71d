"""The three judge kinds end to end against a held-back file and a judge server on 127.0.0.1.

Each kind must give exactly the metrics DESIGN.md's definitions give for the
server's (deterministic) judgements, count unreadable answers as invalid,
make no request on a cached rerun, and never write the API key anywhere.
"""

from __future__ import annotations

import json
import math
import sys
import zlib
from pathlib import Path

import pytest

from builders import make_record, write_jsonl
from reference_impl import reference_metrics as naive
from rmgap_pytest.cli import EXIT_SCORING_FAILED, main
from rmgap_pytest.evaluation import evaluate
from rmgap_pytest.scorers import _http

sys.path.insert(0, str(Path(__file__).parent / "scorers"))
from fake_judge import FakeJudge  # noqa: E402

KEY = "sk-test-4f9c2a7e1b"


def heldback(path: Path) -> tuple[Path, dict[str, str]]:
    """12 records over 4 domains; one record's response 2 makes the judge ramble forever."""
    orders = [(3, 1, 4, 2), (1, 2, 3, 4), (4, 3, 2, 1), (2, 4, 1, 3)]
    records = []
    for d, domain in enumerate(["Chat", "Writing", "Reasoning", "Safety"]):
        for i in range(3):
            records.append(make_record(f"{domain.lower()}-{i}", domain, orders[(d + i) % 4]))
    records[5]["responses"][1]["text"] += " <junk-always>"
    records[7]["responses"][0]["text"] += " <junk-once>"
    win = {}
    for rec in records:
        texts = {r["key"]: r["text"] for r in rec["responses"]}
        for g in rec["prompt_groups"]:
            for p in g["prompts"]:
                win[p["text"]] = texts[g["winner"]]
    return write_jsonl(path, records), win


def quality_for(win: dict[str, str]):
    def quality(query: str, response: str) -> float:
        if win.get(query) == response:  # the judge usually sees the winner, not always
            return 0.93 if zlib.crc32(query.encode()) % 4 else 0.4
        return (zlib.crc32((query + "|" + response).encode()) % 900) / 1000
    return quality


def expected_score(kind: str, quality, records: list[dict]):
    """What each kind's score is for (prompt, response), from the server's rules (fake_judge.py)."""
    responses_of = {p["text"]: [r["text"] for r in rec["responses"]]
                    for rec in records for g in rec["prompt_groups"] for p in g["prompts"]}

    def score(p: str, r: str) -> float:
        if kind == "verifier":
            return math.log(min(max(quality(p, r), 1e-6), 1 - 1e-6))
        if kind == "judge":
            return math.nan if "<junk-always>" in r else min(10, max(1, round(1 + 9 * quality(p, r))))
        rs = responses_of[p]
        if any("<junk-always>" in x for x in rs):
            return math.nan
        order = sorted(range(4), key=lambda j: -quality(p, rs[j]))  # ties: the shown order, never hit here
        return float(4 - order.index(rs.index(r)))
    return score


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setattr(_http, "BACKOFF_S", (0.01, 0.05))
    monkeypatch.setenv("RMGAP_API_KEY", KEY)
    data, win = heldback(tmp_path / "heldback.jsonl")
    server = FakeJudge(quality_for(win), key=KEY, delay=0.01)
    yield data, server, [json.loads(x) for x in data.read_text().splitlines()]
    server.stop()


@pytest.mark.parametrize("kind", ["verifier", "judge", "ranker"])
def test_each_kind_gives_the_defined_metrics_and_reruns_from_the_cache(setup, tmp_path, kind):
    data, server, records = setup
    cache = tmp_path / "cache.sqlite"
    ev = evaluate(data, f"{kind}:{server.base}", cache=cache, n_boot=50, concurrency=4)
    want = naive(records, expected_score(kind, server.quality, records))
    for metric, per in want.items():
        for dom, value in per.items():
            assert ev.reference[metric][dom] == pytest.approx(value, abs=1e-12), (metric, dom)
    invalid = int(ev.outcomes["invalid"].sum())
    assert invalid == (0 if kind == "verifier" else 12)  # the rambling record's 12 items, never a default score
    assert server.max_in_flight > 1
    sent = len(server.requests)
    again = evaluate(data, f"{kind}:{server.base}", cache=cache, n_boot=50, concurrency=4)
    assert len(server.requests) == sent  # no request at all, not even GET /models
    assert again.reference == ev.reference


def _all_output(tmp_path: Path, captured: str) -> bytes:
    blobs = [captured.encode()]
    for f in tmp_path.rglob("*"):
        if f.is_file():
            blobs.append(f.read_bytes())
    return b"\n".join(blobs)


@pytest.mark.parametrize("kind", ["judge", "ranker"])
def test_the_api_key_appears_in_no_output_file(setup, tmp_path, capsys, kind):
    data, server, _ = setup
    out, cache = tmp_path / "out", tmp_path / "cache.sqlite"
    assert main(["eval", "--rm-model", f"{kind}:{server.base}", "--data", str(data), "--out", str(out),
                 "--cache", str(cache), "--bootstrap", "20", "--no-progress"]) == 0
    assert all(r["headers"].get("Authorization") == f"Bearer {KEY}" for r in server.requests)  # it was used
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["invalid_items"] == 12
    # A refused key: the error is one paragraph, masked.
    server.key = "sk-the-other-key"
    assert main(["eval", "--rm-model", f"{kind}:{server.base}", "--data", str(data), "--out", str(tmp_path / "o2"),
                 "--no-cache", "--bootstrap", "20", "--no-progress"]) == EXIT_SCORING_FAILED
    captured = capsys.readouterr()
    assert "HTTP 401" in captured.err and "RMGAP_API_KEY" in captured.err
    files = sorted(p.name for p in out.iterdir())
    assert {"metrics.json", "report.json"} <= set(files) and cache.exists()
    blob = _all_output(tmp_path, captured.out + captured.err)
    assert KEY.encode() not in blob and KEY[3:].encode() not in blob



def test_the_report_counts_unreadable_answers_positions_tokens_and_ties(setup, tmp_path):
    from rmgap_pytest.report import terminal_summary

    data, server, _ = setup
    server.bias_first = "B"
    cache = tmp_path / "cache.sqlite"
    ranker = evaluate(data, f"ranker:{server.base}", cache=cache, n_boot=20, ranker_orders=2, progress=False)
    details = ranker.meta["scorer_meta"]
    assert ranker.counts["invalid_answers"] == 12 and ranker.counts["retried_answers"] == 24
    assert details["first_position"] == {"B": 2 * (144 - 12)}  # every readable order put B first
    assert ranker.counts["prompt_tokens"] > 0 and ranker.counts["completion_tokens"] > 0
    text = terminal_summary(ranker)
    assert "unparseable answers: 12" in text and "unreadable: 'I cannot decide between them." in text
    assert "Position ranked first: A 0%, B 100%, C 0%, D 0% of 264 rankings" in text
    judge = evaluate(data, f"judge:{server.base}", cache=cache, n_boot=20, judge_score="expected", progress=False)
    ties = judge.meta["scorer_meta"]["ties"]
    assert ties["items"] == 132 and ties["rating_ties"] > 0 and ties["expected_ties"] < ties["rating_ties"]
    assert "with the expected rating" in terminal_summary(judge)
    # A cached rerun reports the same numbers from the stored metadata, and spends no tokens.
    sent = len(server.requests)
    again = evaluate(data, f"ranker:{server.base}", cache=cache, n_boot=20, ranker_orders=2, progress=False)
    assert len(server.requests) == sent and again.meta["scorer_meta"]["first_position"] == details["first_position"]
    assert again.counts["invalid_answers"] == 12 and again.counts["prompt_tokens"] == 0
