"""Progress: plain lines at a bounded rate in a log, a bar on a terminal, one display under xdist."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from builders import small_benchmark
from rmgap_pytest.cache import ScoreStore
from rmgap_pytest.progress import ProgressDisplay, RunWatcher


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain(total: int, clock: Clock) -> tuple[ProgressDisplay, io.StringIO]:
    out = io.StringIO()
    return ProgressDisplay(total, "rmgap x", stream=out, clock=clock, ticker=False), out


def test_a_log_gets_a_line_per_tenth_not_per_update():
    clock = Clock()
    display, out = plain(1001, clock)
    for _ in range(143):  # 143 updates of 7 pairs, one a second
        clock.now += 1.0
        display.update(7)
    display.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "rmgap x: 1001 pairs to score"
    # one line per 10% crossed (the 30 s rule never fires: a tenth takes ~15 s here), then the last line
    assert [line.split(": ", 1)[1].split(" (")[0] for line in lines[1:-1]] == \
        ["105/1001 pairs", "203/1001 pairs", "301/1001 pairs", "406/1001 pairs", "504/1001 pairs",
         "602/1001 pairs", "707/1001 pairs", "805/1001 pairs", "903/1001 pairs"]
    assert lines[5] == "rmgap x: 504/1001 pairs (50%), 01:12 elapsed, about 01:11 left (7.0 pairs/s)"
    assert lines[-1] == "rmgap x: 1001/1001 pairs (100%), finished in 02:23"


def test_a_log_hears_every_30_s_while_nothing_finishes():
    clock = Clock()
    display, out = plain(52656, clock)
    for second in range(1, 95):  # the model loads for 95 s: nothing finishes
        clock.now = float(second)
        display.tick()
    display.set(256)
    display.close()
    lines = out.getvalue().splitlines()
    assert lines[1:4] == ["rmgap x: 0/52656 pairs (0%), 00:30 elapsed", "rmgap x: 0/52656 pairs (0%), 01:00 elapsed",
                          "rmgap x: 0/52656 pairs (0%), 01:30 elapsed"]
    assert len(lines) == 5  # start, three heartbeats, the last line (256 pairs is under 10%)


def test_a_terminal_gets_a_bar_whose_clock_moves():
    out = io.StringIO()
    display = ProgressDisplay(100, "rmgap x", stream=out, tty=True, ticker=False)
    display.update(10)
    display.tick()
    display.close()
    text = out.getvalue()
    assert "\r" in text and "10/100" in text and "100 pairs to score" not in text


def _share(db, run: str, pid: int, todo: int, done: int, finished: int = 0) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT OR REPLACE INTO progress VALUES (?, 'host', ?, 'pair', ?, ?, ?, ?)",
                     (run, pid, todo, done, finished, time.time()))
    conn.close()


def test_the_controller_draws_the_sum_of_the_workers_shares(tmp_path):
    db = tmp_path / "s.sqlite"
    store = ScoreStore(db)
    out = io.StringIO()
    watcher = RunWatcher(store, "run-1", "rmgap x", poll_s=0.01, stream=out).start()
    time.sleep(0.05)
    assert out.getvalue() == ""  # no worker has reported: nothing to draw yet
    _share(db, "run-1", 11, todo=1000, done=0)
    _share(db, "run-1", 12, todo=990, done=0)  # started later: saw 10 pairs already done
    _share(db, "run-other", 13, todo=5, done=5)  # another run in the same cache: not ours
    time.sleep(0.1)
    _share(db, "run-1", 11, todo=1000, done=400)
    _share(db, "run-1", 12, todo=990, done=300)
    time.sleep(0.1)
    _share(db, "run-1", 11, todo=1000, done=500, finished=1)
    _share(db, "run-1", 12, todo=990, done=500, finished=1)
    deadline = time.monotonic() + 5
    while "finished in" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    watcher.stop()
    lines = out.getvalue().splitlines()
    assert lines[0] == "rmgap x: 1000 pairs to score"
    assert any(line.startswith("rmgap x: 700/1000 pairs (70%)") for line in lines)
    assert lines[-1].startswith("rmgap x: 1000/1000 pairs (100%), finished in")
    assert sum("finished in" in line for line in lines) == 1


# --- end to end ----------------------------------------------------------------------------------

SLOW = """
import time
def score(prompts, responses):
    time.sleep(0.02)
    return [float(len(r)) for r in responses]
"""


def test_rmgap_eval_in_a_log_prints_plain_bounded_lines(tmp_path):
    (tmp_path / "slow_rm.py").write_text(SLOW)
    data = small_benchmark(tmp_path / "b.jsonl", per_domain=6)
    res = subprocess.run([sys.executable, "-m", "rmgap_pytest.cli", "eval", "--rm-model", "python:slow_rm:score",
                          "--data", str(data), "--out", str(tmp_path / "o"), "--bootstrap", "10"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300, stdin=subprocess.DEVNULL,
                         env={**os.environ, "RMGAP_CACHE": "off"})
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("rmgap python:slow_rm:score")]
    assert "\r" not in res.stderr
    assert lines[0] == "rmgap python:slow_rm:score: 1152 pairs to score"
    assert lines[-1].startswith("rmgap python:slow_rm:score: 1152/1152 pairs (100%), finished in")
    assert 3 <= len(lines) <= 12 + 2  # start, at most one per tenth (+ a 30 s line on a slow machine), last


@pytest.fixture
def slow_gate(pytester):
    data = small_benchmark(pytester.path / "heldback.jsonl", per_domain=6)
    pytester.makepyfile(slow_rm=SLOW)
    return pytester, data


def test_under_xdist_only_the_controller_draws_the_whole_run(slow_gate):
    pytester, data = slow_gate
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "-n", "2",
                                           "--rm-model=python:slow_rm:score", f"--rmgap-data={data}",
                                           "--rmgap-cache=off", "-k", "avg")
    assert result.ret in (0, 1)  # the gate's verdict does not matter here
    err = result.stderr.str()
    lines = [line for line in err.splitlines() if line.startswith("rmgap python:slow_rm:score")]
    assert "\r" not in err
    assert lines[0] == "rmgap python:slow_rm:score: 1152 pairs to score"  # the run's total, not a share
    assert sum("finished in" in line for line in lines) == 1 and "1152/1152 pairs (100%), finished in" in lines[-1]
    assert all("/1152 pairs" in line for line in lines[1:])
    assert len(lines) <= 14
