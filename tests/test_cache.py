"""The SQLite score cache: storage, resume after failures, sharing work across processes.

Multi-process tests run this file as a script (see ``_worker`` at the bottom),
so the fake scorer is the same class in the test and in its workers.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import rmgap_pytest.scorers as scorers
from rmgap_pytest.cache import (CacheError, ScoreStore, _pid_alive, default_cache_path, env_disables_cache,
                                item_keys, pair_key, pair_keys, resolve_cache_path)
from rmgap_pytest.stored import StoredScorer
from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers.base import Scorer, ScoreStats


def fake_value(prompt: str, response: str) -> float:
    return len(response) + int(pair_key(prompt, response)[4:7].hex(), 16) / 2**24


class FakeScorer:
    """Implements the Scorer protocol and records every pair it is asked about.

    ``log``: also append "pid<TAB>pair hash" lines to a file (shared by processes).
    ``fail_after``/``hang_after``: raise / hang forever in the call after that many calls.
    """

    def __init__(self, fingerprint: str | None = "fake-v1", *, log: Path | None = None, values=None,
                 fail_after: int | None = None, hang_after: int | None = None, marker: Path | None = None,
                 delay: float = 0.0, short_by: int = 0) -> None:
        self.spec, self.fingerprint, self.stats = "fake:test", fingerprint, ScoreStats()
        self.log, self.values, self.delay, self.short_by = log, values or fake_value, delay, short_by
        self.fail_after, self.hang_after, self.marker = fail_after, hang_after, marker
        self.calls: list[list[tuple[str, str]]] = []

    @property
    def asked(self) -> list[tuple[str, str]]:
        return [pair for call in self.calls for pair in call]

    def score(self, prompts, responses) -> np.ndarray:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("model crashed")
        if self.hang_after is not None and len(self.calls) >= self.hang_after:
            self.marker.touch()
            time.sleep(60)
        self.calls.append(list(zip(prompts, responses)))
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write("".join(f"{os.getpid()}\t{pair_key(p, r).hex()}\n" for p, r in zip(prompts, responses)))
        self.stats.pairs_scored += len(prompts)
        time.sleep(self.delay)
        return np.array([self.values(p, r) for p, r in zip(prompts, responses)][self.short_by:])


def make_pairs(n: int) -> tuple[list[str], list[str]]:
    prompts = [f"prompt {i % 7} " + "p" * (i % 13) for i in range(n)]
    responses = [f"response {i} " + "r" * (i * 7 % 31) for i in range(n)]
    return prompts, responses


def stored(path: Path, inner: FakeScorer, **kw) -> StoredScorer:
    return StoredScorer(inner, ScoreStore(path), poll_s=0.02, **kw)


def claims(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT chunk, host, pid FROM claims").fetchall()


def expected(prompts, responses) -> np.ndarray:
    return np.array([fake_value(p, r) for p, r in zip(prompts, responses)])


# --- keys and locations ----------------------------------------------------------------------

def test_keys_are_unambiguous_and_stable():
    assert pair_key("ab", "c") != pair_key("a", "bc")
    assert pair_key("", "x") != pair_key("x", "")
    assert pair_key("p", "r") == pair_key("p", "r") == pair_keys(["q", "p"], ["s", "r"])[1]
    assert len(pair_key("\ud800 lone surrogate", "é")) == 20
    # Keys start with the content size, so sorting keys sorts pairs by length (chunk order).
    assert pair_key("a" * 300, "b") > pair_key("a", "b" * 299) > pair_key("zz", "zz")
    # An item key covers the prompt and the ordered responses, and is never a pair key.
    (a, b, c) = item_keys(["p", "p", "p"], [("x", "y"), ("y", "x"), ("x", "y")])
    assert a == c != b and a != pair_key("p", "xy")


def test_default_cache_path_honours_env(monkeypatch, tmp_path):
    monkeypatch.delenv("RMGAP_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home/.cache/rmgap-pytest/scores.sqlite"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg/rmgap-pytest/scores.sqlite"
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "mine.sqlite"))
    assert default_cache_path() == tmp_path / "mine.sqlite"
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path))  # an existing directory holds scores.sqlite
    assert default_cache_path() == tmp_path / "scores.sqlite"
    assert not env_disables_cache()
    for off in ("0", "off", "OFF", "false", "no", "none"):
        monkeypatch.setenv("RMGAP_CACHE", off)
        assert env_disables_cache()
        assert default_cache_path() == tmp_path / "xdg/rmgap-pytest/scores.sqlite"
        assert resolve_cache_path(True) is None and resolve_cache_path(None) is None
    assert resolve_cache_path(tmp_path / "x.sqlite") == tmp_path / "x.sqlite"  # an explicit path beats the switch
    assert resolve_cache_path(False) is None and resolve_cache_path("Off") is None
    monkeypatch.delenv("RMGAP_CACHE")
    assert resolve_cache_path(True) == resolve_cache_path("") == tmp_path / "xdg/rmgap-pytest/scores.sqlite"


def test_load_scorer_wraps_unless_turned_off(monkeypatch, tmp_path):
    monkeypatch.setattr(scorers, "build_scorer", lambda spec, options: FakeScorer())
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "env.sqlite"))
    wrapped = scorers.load_scorer("fake:test")
    assert isinstance(wrapped, StoredScorer) and isinstance(wrapped, Scorer)
    assert wrapped.store.path == tmp_path / "env.sqlite" and wrapped.fingerprint == "fake-v1"
    assert scorers.load_scorer("fake:test", cache=tmp_path / "arg.sqlite").store.path == tmp_path / "arg.sqlite"
    assert isinstance(scorers.load_scorer("fake:test", cache=False), FakeScorer)
    assert isinstance(scorers.load_scorer("fake:test", cache="off"), FakeScorer)
    monkeypatch.setenv("RMGAP_CACHE", "off")
    assert isinstance(scorers.load_scorer("fake:test"), FakeScorer)


# --- storage -----------------------------------------------------------------------------------

def test_second_evaluation_does_no_model_work(tmp_path):
    db = tmp_path / "c" / "scores.sqlite"  # parent directories are created
    prompts, responses = make_pairs(50)
    first = stored(db, FakeScorer(), chunk_size=8)
    np.testing.assert_array_equal(first.score(prompts, responses), expected(prompts, responses))
    assert len(first.inner.asked) == 50 and first.stats.cache_hits == 0

    again = stored(db, FakeScorer(), chunk_size=8)
    np.testing.assert_array_equal(again.score(prompts, responses), expected(prompts, responses))
    assert again.inner.calls == [] and again.stats.cache_hits == 50 and again.stats.pairs_scored == 0


def test_fingerprints_do_not_mix(tmp_path):
    db = tmp_path / "scores.sqlite"
    prompts, responses = make_pairs(10)
    stored(db, FakeScorer("model-a")).score(prompts, responses)
    b = stored(db, FakeScorer("model-b", values=lambda p, r: -1.0))
    assert (b.score(prompts, responses) == -1.0).all() and len(b.inner.asked) == 10
    override = stored(db, FakeScorer("model-a", values=lambda p, r: -2.0), fingerprint="model-a+opts")
    assert override.fingerprint == "model-a+opts" and (override.score(prompts, responses) == -2.0).all()
    assert ScoreStore(db).info() == {"model-a": 10, "model-a+opts": 10, "model-b": 10}


def test_nan_and_inf_round_trip_exactly(tmp_path):
    special = [float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1.0000000000000002, -3.5]
    prompts, responses = [f"p{i}" for i in range(len(special))], [f"r{i}" for i in range(len(special))]
    table = dict(zip(zip(prompts, responses), special))
    first = stored(tmp_path / "s.sqlite", FakeScorer(values=lambda p, r: table[p, r])).score(prompts, responses)
    again = stored(tmp_path / "s.sqlite", FakeScorer())
    second = again.score(prompts, responses)
    assert again.inner.calls == []
    bits = np.array(special).view(np.uint64)
    np.testing.assert_array_equal(first.view(np.uint64), bits)
    np.testing.assert_array_equal(second.view(np.uint64), bits)


def test_order_and_duplicates_are_restored(tmp_path):
    prompts, responses = make_pairs(12)
    prompts, responses = prompts + prompts[:5] + prompts[3:4], responses + responses[:5] + responses[3:4]
    scorer = stored(tmp_path / "s.sqlite", FakeScorer(), chunk_size=4)
    np.testing.assert_array_equal(scorer.score(prompts, responses), expected(prompts, responses))
    assert sorted(scorer.inner.asked) == sorted(set(zip(prompts, responses)))  # each unique pair once
    assert scorer.stats.pairs_scored + scorer.stats.cache_hits == 12
    order = np.random.default_rng(0).permutation(len(prompts))
    shuffled = [prompts[i] for i in order], [responses[i] for i in order]
    np.testing.assert_array_equal(scorer.score(*shuffled), expected(*shuffled))
    assert scorer.score([], []).shape == (0,) and len(scorer.inner.calls) == 3


def test_chunks_hold_similar_lengths(tmp_path):
    prompts, responses = make_pairs(40)
    scorer = stored(tmp_path / "s.sqlite", FakeScorer(), chunk_size=10)
    scorer.score(prompts, responses)
    spans = [[len(p) + len(r) for p, r in call] for call in scorer.inner.calls]
    assert all(max(a) <= min(b) for a, b in zip(spans, spans[1:]))


def test_uncached_fingerprint_passes_through(tmp_path):
    scorer = stored(tmp_path / "s.sqlite", FakeScorer(fingerprint=None))
    scorer.score(*make_pairs(3))
    scorer.score(*make_pairs(3))
    assert len(scorer.inner.calls) == 2 and ScoreStore(tmp_path / "s.sqlite").info() == {}


def test_info_and_clear(tmp_path):
    db = tmp_path / "s.sqlite"
    stored(db, FakeScorer("a")).score(*make_pairs(4))
    stored(db, FakeScorer("b")).score(*make_pairs(6))
    store = ScoreStore(db)
    assert store.clear("a") == 4 and store.info() == {"b": 6}
    assert store.clear() == 6 and store.info() == {}


def test_unusable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheError, match="bad.sqlite.*Fix: delete the file"):
        ScoreStore(bad)


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_database_of_something_else_is_refused_untouched(tmp_path):
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
    conn.close()
    before = _sha(other)
    with pytest.raises(CacheError, match=r"app.db: it is not an rmgap-pytest score cache \(SQLite tables: users\)\. "
                                         r"Fix: .*another path"):
        ScoreStore(other)
    assert _sha(other) == before and not (tmp_path / "app.db-wal").exists()
    with sqlite3.connect(other) as conn:  # a program that marked its file as its own
        conn.execute("PRAGMA application_id = 42")
    with pytest.raises(CacheError, match="an SQLite database of another program"):
        ScoreStore(other)
    empty = tmp_path / "touched.sqlite"
    empty.touch()  # a zero-byte file holds nothing to protect: it becomes a cache
    ScoreStore(empty).put("fp", {b"k": 1.0})


def test_a_newer_schema_is_refused(tmp_path):
    db = tmp_path / "s.sqlite"
    ScoreStore(db).put("fp", {b"k": 1.0})
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(CacheError, match="written by a newer rmgap-pytest .schema 99"):
        ScoreStore(db)


def test_a_schema_1_cache_is_rebuilt_with_a_note(tmp_path):
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as conn:  # what rmgap-pytest wrote before schema 2
        conn.executescript("""
            CREATE TABLE scores (fingerprint TEXT NOT NULL, pair TEXT NOT NULL, score BLOB NOT NULL,
                PRIMARY KEY (fingerprint, pair)) WITHOUT ROWID;
            CREATE TABLE claims (fingerprint TEXT NOT NULL, chunk TEXT NOT NULL, host TEXT NOT NULL,
                pid INTEGER NOT NULL, claimed_at REAL NOT NULL, PRIMARY KEY (fingerprint, chunk)) WITHOUT ROWID;
            INSERT INTO scores VALUES ('builtin:length:v1', 'aa', x'0000000000000000'),
                                      ('builtin:length:v1', 'bb', x'0000000000000000');
            PRAGMA user_version = 1;""")
    conn.close()
    store = ScoreStore(db)
    assert store.info() == {} and "rebuilt empty (2 old scores dropped" in store.notes[0]
    prompts, responses = make_pairs(10)
    scorer = stored(db, FakeScorer())
    np.testing.assert_array_equal(scorer.score(prompts, responses), expected(prompts, responses))
    assert ScoreStore(db).notes == []  # rebuilt once


def test_each_fingerprint_is_described_when_first_scored(tmp_path):
    db = tmp_path / "s.sqlite"

    class Described(FakeScorer):
        kind, dtype = "classifier", "torch.bfloat16"

    before = time.time()
    stored(db, Described("fp-a")).score(*make_pairs(5))
    stored(db, FakeScorer("fp-b")).score(*make_pairs(3))
    rows = {e["fingerprint"]: e for e in ScoreStore(db).describe_all()}
    assert rows["fp-a"]["spec"] == "fake:test" and rows["fp-a"]["kind"] == "classifier"
    assert rows["fp-a"]["dtype"] == "bfloat16" and rows["fp-a"]["unit"] == "pair" and rows["fp-a"]["scores"] == 5
    assert rows["fp-b"]["kind"] == "fake" and rows["fp-b"]["dtype"] is None
    assert before <= rows["fp-a"]["created_at"] <= time.time()


def test_large_reads_scan_or_look_up_with_the_same_result(tmp_path, monkeypatch):
    import rmgap_pytest._store as store_module

    store = ScoreStore(tmp_path / "s.sqlite")
    keys = [i.to_bytes(20, "big") for i in range(30000)]
    store.put("fp", {k: float(i) for i, k in enumerate(keys)})
    queries: list[str] = []
    store._conn().set_trace_callback(queries.append)
    wanted = keys[::2] + [b"absent" * 4]  # a rerun: most of the scorer's rows -> one scan
    assert store.lookup("fp", wanted) == {k: float(i) for i, k in enumerate(keys) if i % 2 == 0}
    assert sum(" IN (" in q for q in queries) == 0 and sum("SELECT s.key" in q for q in queries) == 1
    queries.clear()
    few = keys[::10]  # a tenth of the rows: key lookups, in key order
    assert store.lookup("fp", few[::-1]) == {k: float(10 * i) for i, k in enumerate(few)}
    assert sum(" IN (" in q for q in queries) == 6  # 3000 keys, 500 per query
    monkeypatch.setattr(store_module, "_SCAN_MIN", 10**9)  # the lookup path gives the same answer
    assert store.lookup("fp", wanted) == {k: float(i) for i, k in enumerate(keys) if i % 2 == 0}


def test_fork_reopens_the_connection(tmp_path):
    store = ScoreStore(tmp_path / "s.sqlite")
    store.put("fp", {"parent": 1.0})
    pid = os.fork()
    if pid == 0:  # child: must use its own connection, not the parent's
        try:
            store.put("fp", {"child": 2.0})
            ok = store.lookup("fp", ["parent"]) == {"parent": 1.0}
        finally:
            os._exit(0 if ok else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert store.lookup("fp", ["parent", "child", "absent"]) == {"parent": 1.0, "child": 2.0}


# --- failures and resume -------------------------------------------------------------------------

def test_inner_failure_releases_claim_and_rerun_asks_only_the_rest(tmp_path):
    db = tmp_path / "s.sqlite"
    prompts, responses = make_pairs(23)
    broken = stored(db, FakeScorer(fail_after=2), chunk_size=5)
    with pytest.raises(RuntimeError, match="model crashed"):
        broken.score(prompts, responses)
    assert claims(db) == [] and sum(ScoreStore(db).info().values()) == 10

    rerun = stored(db, FakeScorer(), chunk_size=5)
    np.testing.assert_array_equal(rerun.score(prompts, responses), expected(prompts, responses))
    assert len(rerun.inner.asked) == 13 and not set(rerun.inner.asked) & set(broken.inner.asked)
    assert rerun.stats.cache_hits == 10


def test_wrong_count_is_a_scorer_error(tmp_path):
    scorer = stored(tmp_path / "s.sqlite", FakeScorer(short_by=1))
    with pytest.raises(ScorerError, match=r"'fake:test' returned 4 scores .* for 5 pairs"):
        scorer.score(*make_pairs(5))
    assert claims(tmp_path / "s.sqlite") == [] and ScoreStore(tmp_path / "s.sqlite").info() == {}
    with pytest.raises(ScorerError, match="parallel"):
        scorer.score(["a"], [])


def _claim_all(db: Path, scorer: StoredScorer, prompts, responses, *, host=None, pid=None, age=0.0):
    """Claim every chunk of the request, then rewrite the claims' owner as another process's."""
    unique = dict(zip(pair_keys(prompts, responses), zip(prompts, responses)))
    chunks = scorer._chunks(unique)
    for cid in chunks:
        assert scorer.store.claim_chunk("fake-v1", cid, chunks[cid]).state == "owned"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE claims SET host = coalesce(?, host), pid = coalesce(?, pid), claimed_at = claimed_at - ?",
                     (host, pid, age))
    return chunks


def test_claims_of_dead_or_expired_owners_are_taken_over(tmp_path):
    db = tmp_path / "s.sqlite"
    prompts, responses = make_pairs(20)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    scorer = stored(db, FakeScorer(), chunk_size=5)
    _claim_all(db, scorer, prompts, responses, pid=dead.pid)
    np.testing.assert_array_equal(scorer.score(prompts, responses), expected(prompts, responses))
    assert len(scorer.inner.asked) == 20 and claims(db) == []

    other = stored(db, FakeScorer(), chunk_size=5)
    more = make_pairs(30)
    chunks = _claim_all(db, other, *more, host="elsewhere", pid=1)
    # a live, fresh claim is respected
    assert {other.store.claim_chunk("fake-v1", c, k).state for c, k in chunks.items()} == {"busy"}
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE claims SET claimed_at = claimed_at - 3600")
    first = next(iter(chunks))
    assert other.store.claim_chunk("fake-v1", first, chunks[first], lease_s=1800).state == "owned"  # an expired one is not


def test_waiting_process_takes_scores_stored_by_the_owner(tmp_path):
    db = tmp_path / "s.sqlite"
    prompts, responses = make_pairs(20)
    scorer = stored(db, FakeScorer(), chunk_size=5)
    _claim_all(db, scorer, prompts, responses, host="elsewhere", pid=1)

    def owner_finishes() -> None:  # plays the other host's process
        time.sleep(0.3)
        scorer.store.put("fake-v1", {pair_key(p, r): fake_value(p, r) for p, r in zip(prompts, responses)})
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM claims")

    thread = threading.Thread(target=owner_finishes)
    thread.start()
    np.testing.assert_array_equal(scorer.score(prompts, responses), expected(prompts, responses))
    thread.join()
    assert scorer.inner.calls == [] and scorer.stats.cache_hits == 20


def test_pid_alive_sees_unreaped_killed_child():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    assert _pid_alive(child.pid)
    child.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _pid_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _pid_alive(child.pid)  # a zombie until wait(): it must count as dead
    child.wait()


# --- several processes ---------------------------------------------------------------------------

def _spawn(db: Path, tmp_path: Path, name: str, **job) -> subprocess.Popen:
    job = {"db": str(db), "log": str(tmp_path / "asked.log"), "out": str(tmp_path / f"{name}.npy"), **job}
    return subprocess.Popen([sys.executable, __file__, json.dumps(job)])


def test_sigkilled_run_resumes_where_it_stopped(tmp_path):
    db, marker = tmp_path / "s.sqlite", tmp_path / "hanging"
    proc = _spawn(db, tmp_path, "killed", n=40, chunk_size=5, hang_after=3, marker=str(marker))
    deadline = time.monotonic() + 15
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "worker never reached its 4th chunk"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [row[2] for row in claims(db)] == [proc.pid]  # the dead worker's claim is left behind
    assert sum(ScoreStore(db).info().values()) == 15

    prompts, responses = make_pairs(40)
    rerun = stored(db, FakeScorer(), chunk_size=5)
    np.testing.assert_array_equal(rerun.score(prompts, responses), expected(prompts, responses))
    assert len(rerun.inner.asked) == 25 and claims(db) == []
    done_before = {line.split("\t")[1] for line in (tmp_path / "asked.log").read_text().splitlines()}
    assert not done_before & {pair_key(p, r).hex() for p, r in rerun.inner.asked}


@pytest.mark.parametrize("workers", [2, 3])
def test_processes_score_each_pair_once_in_total(tmp_path, workers):
    db, ready = tmp_path / "s.sqlite", tmp_path / "ready"
    ready.mkdir()
    procs = [_spawn(db, tmp_path, f"w{i}", n=120, chunk_size=6, delay=0.03, ready=str(ready), workers=workers)
             for i in range(workers)]
    assert [p.wait(timeout=60) for p in procs] == [0] * workers

    prompts, responses = make_pairs(120)
    want = expected(prompts + prompts[:10], responses + responses[:10])
    for i in range(workers):
        np.testing.assert_array_equal(np.load(tmp_path / f"w{i}.npy"), want)
    log = [line.split("\t") for line in (tmp_path / "asked.log").read_text().splitlines()]
    per_pair = Counter(h for _, h in log)
    assert set(per_pair.values()) == {1} and len(per_pair) == 120
    assert len({pid for pid, _ in log}) >= 2  # the work was shared, not done by one worker


def _worker(job: dict) -> None:
    """Score make_pairs(n) plus some duplicates through a StoredScorer, as one process of several."""
    if "ready" in job:  # a barrier, so the workers really overlap
        Path(job["ready"], str(os.getpid())).touch()
        deadline = time.monotonic() + 20
        while len(os.listdir(job["ready"])) < job["workers"] and time.monotonic() < deadline:
            time.sleep(0.005)
    marker = Path(job["marker"]) if "marker" in job else None
    inner = FakeScorer(log=Path(job["log"]), delay=job.get("delay", 0.0), hang_after=job.get("hang_after"),
                       marker=marker)
    prompts, responses = make_pairs(job["n"])
    prompts, responses = prompts + prompts[:10], responses + responses[:10]
    scorer = StoredScorer(inner, ScoreStore(job["db"]), chunk_size=job["chunk_size"], poll_s=0.02)
    np.save(job["out"], scorer.score(prompts, responses))


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
