"""Two replicas as real server processes; one is killed (SIGKILL) in the middle of a run.

Each replica is a process of its own (replica_proxy.py) in front of one engine
server backed by the tiny classifier: killing it drops its connections and
refuses new ones, exactly as a dead engine process would, while the model stays
the same on both replicas (as it does for data-parallel replicas).
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from engine_sim import EngineServer
from test_engines import N_BOOT, local_run  # noqa: F401 - the shared local-run fixture

from rmgap_pytest import evaluate

PROXY = Path(__file__).with_name("replica_proxy.py")


class Replica:
    """``replica_proxy.py`` in its own process; counts the requests it answered from its stdout."""

    def __init__(self, backend: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(PROXY), backend], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.served = 0
        self.kill_after: int | None = None
        threading.Thread(target=self._read, daemon=True).start()
        first = self.lines.get(timeout=60)
        assert first.startswith("READY "), first
        self.url = f"http://127.0.0.1:{first.split()[1]}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("SERVED /pooling") or line.startswith("SERVED /classify"):
                self.served += 1
                if self.kill_after is not None and self.served >= self.kill_after:
                    self.proc.kill()  # like a crashed GPU node: no goodbye, open connections drop
            self.lines.put(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


pytestmark = pytest.mark.usefixtures("fast_remote")


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_a_replica_killed_mid_run_does_not_change_the_metrics(engine, clf_dir, local_run):
    bench_file, local = local_run
    backend = EngineServer(engine, str(clf_dir), latency=0.02).start()
    replicas = [Replica(backend.url) for _ in range(2)]
    try:
        doomed, survivor = replicas
        doomed.kill_after = 5
        spec = f"{engine}:{doomed.url},{survivor.url}"
        remote = evaluate(bench_file, spec, cache=False, n_boot=N_BOOT, tokenizer=str(clf_dir), concurrency=4,
                          batch_size=8, progress=False)
        assert doomed.proc.wait(10) is not None  # it really died
        assert 5 <= doomed.served < 72 / 2 and survivor.served > 72 / 2  # 576 pairs in requests of 8
        assert remote.reference == local.reference and remote.table.equals(local.table)
        notes = " ".join(remote.meta["notes"])
        assert "2 of 2 replicas answered" in notes
        failovers = int(notes.split(" failovers")[0].rsplit(" ", 1)[1])
        assert failovers >= 1
    finally:
        for r in replicas:
            r.stop()
        backend.stop()
