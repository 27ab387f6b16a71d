"""StoredScorer: item-level scorers, per-row metadata, run provenance, linear claims, processes.

Multi-process tests run this file as a script (``_worker`` at the bottom), so the
fake scorers are the same classes in the test and in its workers.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rmgap_pytest.cache import ScoreStore, item_keys, pair_keys
from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers.base import ItemScorer, Scored, Scorer, ScoreStats, unit_of
from rmgap_pytest.stored import StoredScorer


def item_value(prompt: str, responses) -> list[float]:
    """A listwise ranker's answer: ranks by (length, text), k for the first choice."""
    order = sorted(range(len(responses)), key=lambda j: (-len(responses[j]), responses[j]))
    out = [0.0] * len(responses)
    for rank, j in enumerate(order):
        out[j] = float(len(responses) - rank) + len(prompt) / 1000
    return out


class FakeItemScorer:
    """Item-level, with per-item metadata; logs "pid<TAB>key" per item asked (shared by processes)."""

    unit = "item"

    def __init__(self, *, log: Path | None = None, delay: float = 0.0, hang_after: int | None = None,
                 marker: Path | None = None, detailed: bool = True, rows_short_by: int = 0) -> None:
        self.spec, self.fingerprint, self.stats = "fake:items", "fake-items-v1", ScoreStats()
        self.log, self.delay, self.hang_after, self.marker = log, delay, hang_after, marker
        self.rows_short_by = rows_short_by
        self.calls: list[list[str]] = []
        if not detailed:
            self.score_detailed = None

    def score_items(self, prompts, responses) -> np.ndarray:
        return self._run(prompts, responses).values

    def score_detailed(self, prompts, responses) -> Scored:
        return self._run(prompts, responses)

    def _run(self, prompts, responses) -> Scored:
        if self.hang_after is not None and len(self.calls) >= self.hang_after:
            self.marker.touch()
            time.sleep(60)
        self.calls.append(list(prompts))
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write("".join(f"{os.getpid()}\t{k.hex()}\n" for k in item_keys(prompts, responses)))
        time.sleep(self.delay)
        values = np.array([item_value(p, rs) for p, rs in zip(prompts, responses)])[self.rows_short_by:]
        meta = [{"first": "ABCD"[int(np.argmax(v))], "usage": {"prompt_tokens": len(p), "completion_tokens": 3}}
                for p, v in zip(prompts, values)]
        return Scored(values, meta)


class TruncatingScorer:
    """Pair-level with ``score_detailed``: a pair is "truncated" when its prompt is over 20 characters."""

    def __init__(self) -> None:
        self.spec, self.fingerprint, self.stats = "fake:trunc", "fake-trunc-v1", ScoreStats()
        self.asked = 0

    def score(self, prompts, responses) -> np.ndarray:
        return self.score_detailed(prompts, responses).values

    def score_detailed(self, prompts, responses) -> Scored:
        self.asked += len(prompts)
        return Scored(np.array([float(len(r)) for r in responses]), [{"truncated": len(p) > 20} for p in prompts])


def make_items(n: int, k: int = 4) -> tuple[list[str], list[tuple[str, ...]]]:
    prompts = [f"item prompt {i} " + "p" * (i % 11) for i in range(n)]
    responses = [tuple(f"resp {i}.{j} " + "r" * ((i * 7 + j * 5) % 23) for j in range(k)) for i in range(n)]
    return prompts, responses


def expected_items(prompts, responses) -> np.ndarray:
    return np.array([item_value(p, rs) for p, rs in zip(prompts, responses)])


def stored(db: Path, inner, **kw) -> StoredScorer:
    return StoredScorer(inner, ScoreStore(db), poll_s=0.02, **kw)


# --- the protocol -------------------------------------------------------------------------------

def test_unit_and_protocols():
    items = FakeItemScorer()
    assert unit_of(items) == "item" and isinstance(items, ItemScorer) and not isinstance(items, Scorer)
    assert unit_of(TruncatingScorer()) == "pair" and isinstance(TruncatingScorer(), Scorer)


# --- item-level scorers through the store -------------------------------------------------------

def test_items_are_stored_with_k_values_and_served_in_order(tmp_path):
    db = tmp_path / "s.sqlite"
    prompts, responses = make_items(30)
    first = stored(db, FakeItemScorer(), chunk_size=7)
    got = first.fetch(prompts + prompts[:3], responses + responses[:3])  # duplicates served too
    np.testing.assert_array_equal(got.values, expected_items(prompts + prompts[:3], responses + responses[:3]))
    assert got.values.shape == (33, 4) and got.unique == 30 and got.unique_computed == 30 and got.computed.all()
    assert sum(len(c) for c in first.inner.calls) == 30  # each item asked once
    assert got.meta[0]["first"] in "ABCD" and got.meta[0]["usage"]["completion_tokens"] == 3

    again = stored(db, FakeItemScorer())
    served = again.fetch(prompts, responses)
    np.testing.assert_array_equal(served.values, expected_items(prompts, responses))
    assert again.inner.calls == [] and served.unique_computed == 0 and not served.computed.any()
    with pytest.raises(ScorerError, match="is item-level. Fix: call score_items"):
        again.score(prompts, ["a response"] * 30)
    assert served.meta == got.meta[:30]  # the metadata the computing run saw
    # Reordered responses are another item (a listwise judge may answer differently).
    swapped = [rs[::-1] for rs in responses[:2]]
    np.testing.assert_array_equal(again.score_items(prompts[:2], swapped), expected_items(prompts[:2], swapped))
    assert len(again.inner.calls) == 1


def test_item_scorer_without_metadata_and_wrong_shapes(tmp_path):
    prompts, responses = make_items(5)
    plain = stored(tmp_path / "a.sqlite", FakeItemScorer(detailed=False))
    assert plain.score_detailed(prompts, responses).meta == [None] * 5
    short = stored(tmp_path / "b.sqlite", FakeItemScorer(rows_short_by=1))
    with pytest.raises(ScorerError, match=r"'fake:items' returned shape \(4, 4\) for 5 items of 4 responses"):
        short.fetch(prompts, responses)
    assert ScoreStore(tmp_path / "b.sqlite").info() == {}


def test_metadata_must_be_json(tmp_path):
    class BadMeta(TruncatingScorer):
        def score_detailed(self, prompts, responses):
            return Scored(np.zeros(len(prompts)), [{"when": object()} for _ in prompts])

    with pytest.raises(ScorerError, match="metadata that is not plain JSON"):
        stored(tmp_path / "s.sqlite", BadMeta()).score(["p"], ["r"])


# --- provenance: which run computed what --------------------------------------------------------

def test_rows_remember_the_run_that_computed_them(tmp_path):
    db = tmp_path / "s.sqlite"
    prompts = [f"a prompt long enough to be cut {i}" if i % 3 == 0 else f"short {i}" for i in range(40)]
    responses = [f"response {i}" for i in range(40)]
    a = stored(db, TruncatingScorer(), run_id="run-a", chunk_size=8)
    got = a.fetch(prompts[:25], responses[:25])
    assert got.unique_computed == 25 and sum(m["truncated"] for m in got.meta) == 9
    # A second run over a superset: computes only the new pairs; sees run-a's truncation flags.
    b = stored(db, TruncatingScorer(), run_id="run-b", chunk_size=8)
    both = b.fetch(prompts, responses)
    assert both.unique_computed == 15 == b.inner.asked and both.computed.tolist() == [False] * 25 + [True] * 15
    assert sum(m["truncated"] for m in both.meta) == 14
    # Processes of one run share its id: a second process of run-b reports run-b's work as its run's.
    again = stored(db, TruncatingScorer(), run_id="run-b").fetch(prompts, responses)
    assert again.unique_computed == 15 and again.computed.tolist() == both.computed.tolist()
    assert stored(db, TruncatingScorer()).fetch(prompts, responses).unique_computed == 0  # a fresh id per request


# --- linear cost ---------------------------------------------------------------------------------

class CountingStore(ScoreStore):
    def __init__(self, path):
        super().__init__(path)
        self.calls = Counter()

    def claim_chunk(self, *args, **kwargs):
        self.calls["claim"] += 1
        return super().claim_chunk(*args, **kwargs)

    def store(self, *args, **kwargs):
        self.calls["store"] += 1
        return super().store(*args, **kwargs)

    def fetch(self, fingerprint, keys):
        keys = list(keys)
        self.calls["fetch"] += 1
        self.calls["keys read"] += len(keys)
        return super().fetch(fingerprint, keys)


@pytest.mark.parametrize("n", [60, 120, 300])
def test_one_claim_and_one_store_per_chunk(tmp_path, n):
    """The old loop re-claimed from the first chunk on every pass: claims grew with chunks squared."""
    prompts = [f"p{i} " + "x" * (i % 17) for i in range(n)]
    responses = [f"r{i}" for i in range(n)]
    store = CountingStore(tmp_path / "s.sqlite")
    scorer = StoredScorer(TruncatingScorer(), store, chunk_size=10)
    scorer.score(prompts, responses)
    assert store.calls == {"claim": n // 10, "store": n // 10, "fetch": 1, "keys read": n}
    store.calls.clear()
    scorer.score(prompts, responses)  # fully cached: one read, no claims
    assert store.calls == {"fetch": 1, "keys read": n}


def test_a_chunk_someone_else_holds_is_waited_for_once_per_poll(tmp_path):
    db = tmp_path / "s.sqlite"
    prompts, responses = [f"p{i}" for i in range(50)], [f"r{i}" for i in range(50)]
    other = stored(db, TruncatingScorer(), chunk_size=10)
    chunks = other._chunks(dict(zip(pair_keys(prompts, responses), zip(prompts, responses))))
    held = list(chunks)[1]
    assert other.store.claim_chunk("fake-trunc-v1", held, chunks[held]).state == "owned"
    with sqlite3.connect(db) as conn:  # now held by a live process on another host
        conn.execute("UPDATE claims SET host = 'elsewhere', pid = 1")
    store = CountingStore(db)
    scorer = StoredScorer(TruncatingScorer(), store, chunk_size=10, poll_s=0.05)
    import threading

    def finish() -> None:
        time.sleep(0.3)
        rows = stored(db, TruncatingScorer(), chunk_size=10)
        rows.store.store("fake-trunc-v1", {k: rows._compute([(prompts[0], responses[0])], "x")[0] for k in chunks[held]})
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM claims")

    t = threading.Thread(target=finish)
    t.start()
    scorer.score(prompts, responses)
    t.join()
    assert scorer.inner.asked == 40  # the held chunk was never computed here
    assert store.calls["claim"] <= 4 + 1 + store.calls["fetch"]  # 4 free chunks, then one per poll


# --- several processes ---------------------------------------------------------------------------

def _spawn(db: Path, tmp_path: Path, name: str, **job) -> subprocess.Popen:
    job = {"db": str(db), "log": str(tmp_path / "asked.log"), "out": str(tmp_path / f"{name}.npy"), **job}
    return subprocess.Popen([sys.executable, __file__, json.dumps(job)])


def _log(tmp_path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in (tmp_path / "asked.log").read_text().splitlines()]


def test_processes_judge_each_item_once_in_total(tmp_path):
    db, ready = tmp_path / "s.sqlite", tmp_path / "ready"
    ready.mkdir()
    procs = [_spawn(db, tmp_path, f"w{i}", n=90, chunk_size=5, delay=0.02, ready=str(ready), workers=3,
                    run="shared-run") for i in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 3
    want = expected_items(*make_items(90))
    for i in range(3):
        np.testing.assert_array_equal(np.load(tmp_path / f"w{i}.npy"), want)
    per_item = Counter(key for _, key in _log(tmp_path))
    assert set(per_item.values()) == {1} and len(per_item) == 90
    assert len({pid for pid, _ in _log(tmp_path)}) >= 2
    # Counts come from the store: the run computed all 90, whichever process did which.
    got = stored(db, FakeItemScorer(), run_id="shared-run").fetch(*make_items(90))
    assert got.unique_computed == 90


def test_a_worker_killed_mid_chunk_is_taken_over_by_the_others(tmp_path):
    db, marker, ready = tmp_path / "s.sqlite", tmp_path / "hanging", tmp_path / "ready"
    ready.mkdir()
    victim = _spawn(db, tmp_path, "victim", n=60, chunk_size=5, hang_after=2, marker=str(marker),
                    ready=str(ready), workers=3)
    survivors = [_spawn(db, tmp_path, f"w{i}", n=60, chunk_size=5, delay=0.05, ready=str(ready), workers=3)
                 for i in range(2)]
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert victim.poll() is None and time.monotonic() < deadline, "the victim never reached its 3rd chunk"
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)  # mid-chunk: it holds a claim and stored nothing of that chunk
    victim.wait()
    assert [p.wait(timeout=60) for p in survivors] == [0, 0]
    want = expected_items(*make_items(60))
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"w{i}.npy"), want)
    log = _log(tmp_path)
    by_victim = {key for pid, key in log if int(pid) == victim.pid}
    survivors_asked = Counter(key for pid, key in log if int(pid) != victim.pid)
    assert set(survivors_asked.values()) == {1}  # the survivors never asked one item twice
    assert set(survivors_asked) | by_victim == {k.hex() for k in item_keys(*make_items(60))}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


def _worker(job: dict) -> None:
    """Score make_items(n) (plus duplicates) through a StoredScorer, as one process of several."""
    if "ready" in job:  # a barrier, so the workers really overlap
        Path(job["ready"], str(os.getpid())).touch()
        deadline = time.monotonic() + 20
        while len(os.listdir(job["ready"])) < job["workers"] and time.monotonic() < deadline:
            time.sleep(0.005)
    marker = Path(job["marker"]) if "marker" in job else None
    inner = FakeItemScorer(log=Path(job["log"]), delay=job.get("delay", 0.0), hang_after=job.get("hang_after"),
                           marker=marker)
    scorer = StoredScorer(inner, ScoreStore(job["db"]), chunk_size=job["chunk_size"], poll_s=0.02,
                          run_id=job.get("run"))
    np.save(job["out"], scorer.score_items(*make_items(job["n"])))


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
