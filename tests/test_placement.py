"""placement: an xdist worker's GPU and CPU threads (torch faked: no GPU is needed)."""

import pytest

from rmgap_pytest import placement as S


class FakeCuda:
    def __init__(self, n):
        self.n = n

    def device_count(self):
        return self.n

    def is_available(self):
        return self.n > 0


@pytest.fixture
def fake_torch(monkeypatch):
    import torch

    def install(n_gpus):
        monkeypatch.setattr(torch, "cuda", FakeCuda(n_gpus))
        threads = []
        monkeypatch.setattr(torch, "set_num_threads", threads.append)
        return threads
    return install


def test_each_worker_takes_its_own_gpu(fake_torch):
    fake_torch(2)
    assert S.worker_device("gw0", None, "classifier:./rm") == "cuda:0"
    assert S.worker_device("gw3", "auto", "classifier:./rm") == "cuda:1"
    assert S.worker_device("gw1", "cpu", "classifier:./rm") is None  # the user chose
    assert S.worker_device(None, None, "classifier:./rm") is None  # not under xdist
    assert S.worker_device("gw1", None, "python:m:f") is None  # no model, no torch import
    fake_torch(1)
    assert S.worker_device("gw1", None, "classifier:./rm") is None


def test_cpu_workers_split_the_cores(fake_torch, monkeypatch):
    monkeypatch.setattr(S.os, "cpu_count", lambda: 8)
    threads = fake_torch(0)
    S.share_cpu_threads(4, None, "classifier:./rm")
    assert threads == [2]
    S.share_cpu_threads(1, None, "classifier:./rm")  # a single worker keeps every core
    S.share_cpu_threads(4, "cuda:0", "classifier:./rm")
    S.share_cpu_threads(4, None, "builtin:length")
    assert threads == [2]
