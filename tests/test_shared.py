"""One evaluation per xdist run (shared.py): computed once, read by the other processes, same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rmgap_pytest import session as S
from rmgap_pytest.shared import once_per_run, published, run_dir

RACER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from rmgap_pytest.shared import once_per_run

    directory, log, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def compute():
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\\n")
        time.sleep(0.3)  # long enough that the others arrive while it computes
        if mode == "die":
            os._exit(9)  # killed while holding the lock: no result, no clean-up
        return {"answer": 42, "by": os.getpid()}

    print(once_per_run(directory, compute)["by"])
""")


def _race(tmp_path: Path, n: int, mode: str = "ok") -> tuple[list[subprocess.CompletedProcess], list[str]]:
    script, log = tmp_path / "racer.py", tmp_path / "computed.log"
    script.write_text(RACER)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(log), mode], stdout=subprocess.PIPE,
                              text=True) for _ in range(n)]
    done = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out))
    return done, log.read_text().split() if log.exists() else []


def test_without_a_run_directory_it_just_computes() -> None:
    calls = []
    assert once_per_run(None, lambda: calls.append(1) or "x") == "x"
    assert once_per_run(None, lambda: calls.append(1) or "x") == "x"
    assert calls == [1, 1] and published(None) is None and run_dir(None) is None


def test_the_first_caller_computes_and_later_ones_read(tmp_path) -> None:
    assert published(tmp_path) is None
    assert once_per_run(tmp_path, lambda: {"v": [1.5, float("inf")]}) == {"v": [1.5, float("inf")]}

    def never() -> None:
        raise AssertionError("a published result must not be computed again")

    assert once_per_run(tmp_path, never) == {"v": [1.5, float("inf")]}
    assert published(tmp_path) == {"v": [1.5, float("inf")]}
    assert run_dir(tmp_path / "scores.sqlite") == tmp_path


def test_an_error_publishes_nothing_so_the_next_process_tries(tmp_path) -> None:
    def broken() -> None:
        raise RuntimeError("model fell over")

    with pytest.raises(RuntimeError):
        once_per_run(tmp_path, broken)
    assert published(tmp_path) is None
    assert once_per_run(tmp_path, lambda: 7) == 7


def test_racing_processes_compute_once(tmp_path) -> None:
    done, computed = _race(tmp_path, 3)
    assert [p.returncode for p in done] == [0, 0, 0]
    assert len(computed) == 1  # one computation in total
    assert {p.stdout.strip() for p in done} == {computed[0]}  # and every process got that one's result


def test_a_process_killed_while_computing_leaves_the_work_to_the_next(tmp_path) -> None:
    done, computed = _race(tmp_path, 2, mode="die")
    assert sorted(p.returncode for p in done) == [9, 9]  # each died in turn: the lock passed on both times
    assert len(computed) == 2 and published(tmp_path) is None
    assert once_per_run(tmp_path, lambda: "after") == "after"


# ---- the gate: workers share one result --------------------------------------------------------------------

COUNTING = """
def score(prompts, responses):
    with open({log!r}, "a") as fh:
        fh.write("%d\\n" % len(prompts))
    return [float(len(r)) for r in responses]
"""


@pytest.fixture
def counted(tmp_path, monkeypatch):
    log = tmp_path / "asked.log"
    (tmp_path / "counted_rm.py").write_text(COUNTING.format(log=str(log)))
    monkeypatch.syspath_prepend(str(tmp_path))
    return log


def _asked(log: Path) -> int:
    return sum(int(n) for n in log.read_text().split()) if log.exists() else 0


def test_workers_of_one_run_decide_once_and_score_each_pair_once(bench_file, tmp_path, counted, monkeypatch):
    store = str(tmp_path / "run" / "scores.sqlite")
    Path(store).parent.mkdir()
    settings = S.GateSettings(model="python:counted_rm:score", data=str(bench_file), bootstrap=200, cache="off")
    decided = []
    real = S.GateSession._decide
    monkeypatch.setattr(S.GateSession, "_decide", lambda self, *a: decided.append(1) or real(self, *a))
    first, second = S.GateSession.from_settings(settings), S.GateSession.from_settings(settings)
    first.prepare(store, "run-1", worker=True)
    second.prepare(store, "run-1", worker=True)  # a second worker, or the controller
    assert first.error is None and second.error is None
    assert len(decided) == 1 and _asked(counted) == first.bench.n_items * 4
    assert first.result.checks.equals(second.result.checks)
    assert first.result.evaluation.reference == second.result.evaluation.reference
    serial = S.GateSession.from_settings(settings)
    serial.prepare()  # no run directory: its own result
    assert len(decided) == 2 and serial.result.evaluation.reference == first.result.evaluation.reference


def test_placement_waits_for_a_chunk_to_compute(bench_file, tmp_path, counted) -> None:
    """An xdist worker's GPU and thread setup (torch) runs only when there is model work."""
    cache = str(tmp_path / "c.sqlite")
    settings = S.GateSettings(model="python:counted_rm:score", data=str(bench_file), bootstrap=50, cache=cache,
                              scorer_options={"version": "1"})
    placed = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
    gate = S.GateSession.from_settings(settings)
    gate.prepare(str(tmp_path / "a" / "s.sqlite"), "run-a", worker=True, placement=lambda: placed.append(1))
    assert gate.error is None and placed == [1]  # once, before the first chunk
    rerun = S.GateSession.from_settings(settings)
    rerun.prepare(str(tmp_path / "b" / "s.sqlite"), "run-b", worker=True, placement=lambda: placed.append(1))
    assert rerun.error is None and placed == [1]  # everything cached: never placed
    assert rerun.result.evaluation.counts["scored"] == 0


def test_worker_placement_imports_nothing_for_a_builtin() -> None:
    code = ("import sys; from rmgap_pytest.placement import worker_placement; "
            "from rmgap_pytest.session import GateSettings; "
            "place = worker_placement('gw1', 2, GateSettings(model='builtin:length')); "
            "print(place(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["None", "False"], out.stderr


# ---- end to end: pytest -n 2 against serial -----------------------------------------------------------------

MODULES = """
import json, os, sys
def pytest_unconfigure(config):
    # Not $PYTEST_XDIST_WORKER: a controller started from inside an xdist worker inherits it.
    name = getattr(config, "workerinput", dict()).get("workerid", "main")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
    with open(os.path.join({out!r}, name + ".json"), "w") as fh:
        json.dump(loaded, fh)
"""


def test_xdist_metrics_match_serial_byte_for_byte(pytester, bench_file, tmp_path):
    from rmgap_pytest.data import load_benchmark

    log = tmp_path / "asked.log"
    pytester.makepyfile(counted_xdist_rm=COUNTING.format(log=str(log)))  # importable by the workers (cwd)
    pytester.syspathinsert()
    common = ["-p", "no:cacheprovider", "--rm-model=python:counted_xdist_rm:score", f"--rmgap-data={bench_file}",
              "--rmgap-cache=off"]
    pytester.runpytest(*common, "--rmgap-report=serial")
    asked_serial = _asked(log)
    log.unlink()
    pytester.runpytest(*common, "--rmgap-report=xdist", "-n", "2")
    pairs = load_benchmark(bench_file).n_items * 4
    assert _asked(log) == asked_serial == pairs  # each pair once in total, under -n 2 too
    serial, xdist = (pytester.path / "serial/metrics.json"), (pytester.path / "xdist/metrics.json")
    assert serial.read_bytes() == xdist.read_bytes()
    a, b = (json.loads((pytester.path / f"{d}/report.json").read_text()) for d in ("serial", "xdist"))
    assert a["checks"] == b["checks"] and a["counts"] == b["counts"]


@pytest.mark.slow
def test_cached_rerun_under_xdist_imports_no_torch(pytester, tmp_path):
    """Issue 11: the workers of a fully cached -n 2 rerun of a model spec never import torch."""
    sys.path.insert(0, str(Path(__file__).parent / "scorers"))
    import tiny_models as tm

    model = tm.build_classifier(tmp_path / "clf", tm.build_tokenizer())
    out = tmp_path / "modules"
    out.mkdir()
    pytester.makeconftest(MODULES.format(out=str(out)))
    args = ["-p", "no:cacheprovider", f"--rm-model=classifier:{model}", "--rm-dtype=float32",
            f"--rmgap-cache={tmp_path / 'c.sqlite'}", "-k", "avg", "-n", "2"]

    def loaded() -> dict[str, list[str]]:
        return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}

    first = pytester.runpytest_subprocess(*args, "--rmgap-report=first")
    assert first.ret in (0, 1)
    assert any(loaded()[w] for w in ("gw0", "gw1"))  # computing workers do load torch: the check can fail
    for p in out.glob("*.json"):
        p.unlink()
    second = pytester.runpytest_subprocess(*args, "--rmgap-report=second")
    assert second.ret == first.ret
    assert loaded() == {"main": [], "gw0": [], "gw1": []}
    report = json.loads((pytester.path / "second/report.json").read_text())
    assert report["counts"]["scored"] == 0
    assert (pytester.path / "first/metrics.json").read_bytes() == (pytester.path / "second/metrics.json").read_bytes()
