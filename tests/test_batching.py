"""batching: every index once, the budget held, order restored, out-of-memory halving."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmgap_pytest.batching import padding_efficiency, plan_batches, run_batches
from rmgap_pytest.errors import ScorerError


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 600), max_size=80), st.integers(1, 3000))
def test_plan_covers_every_index_within_budget(lengths: list[int], budget: int) -> None:
    batches = plan_batches(lengths, token_budget=budget)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= budget
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)  # longest first


@given(st.lists(st.integers(1, 100), min_size=1, max_size=50), st.integers(1, 9))
def test_fixed_batch_size(lengths: list[int], size: int) -> None:
    batches = plan_batches(lengths, batch_size=size)
    assert all(len(b) == size for b in batches[:-1]) and 1 <= len(batches[-1]) <= size


def test_sorting_reduces_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 500, size=400).tolist()
    naive = [list(range(i, min(i + 8, 400))) for i in range(0, 400, 8)]
    assert padding_efficiency(lengths, plan_batches(lengths)) > 0.85 > 0.7 > padding_efficiency(lengths, naive)
    assert padding_efficiency(lengths, plan_batches(lengths, batch_size=8)) > 0.97


def test_bad_sizes_are_errors() -> None:
    with pytest.raises(ScorerError, match="batch_size"):
        plan_batches([1, 2], batch_size=0)
    with pytest.raises(ScorerError, match="token_budget"):
        plan_batches([1, 2], token_budget=0)


def test_run_restores_order_and_shapes() -> None:
    lengths = [5, 1, 9, 3]
    scores = run_batches(plan_batches(lengths, token_budget=10), lambda idx: [lengths[i] * 10.0 for i in idx], 4)
    assert scores.tolist() == [50.0, 10.0, 90.0, 30.0]
    vectors = run_batches([[1, 0]], lambda idx: np.array([[i, -i] for i in idx]), 2)
    assert vectors.tolist() == [[0, 0], [1, -1]]
    assert run_batches([], lambda idx: [], 0).shape == (0,)


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which the runner recognizes by name."""


def test_out_of_memory_halves_and_caps_later_batches() -> None:
    seen: list[int] = []

    def fn(idx: list[int]) -> list[float]:
        seen.append(len(idx))
        if len(idx) > 2:
            raise OutOfMemoryError("CUDA out of memory")
        return [float(i) for i in idx]

    out = run_batches([[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10]], fn, 11, progress=True)
    assert out.tolist() == [float(i) for i in range(11)]
    assert seen == [8, 4, 2, 2, 2, 2, 2, 1]  # after the first failure, batch 2 is pre-split


def test_single_pair_out_of_memory_is_a_clear_error() -> None:
    def fn(idx: list[int]) -> list[float]:
        raise OutOfMemoryError("out of memory")

    with pytest.raises(ScorerError, match="max_length"):
        run_batches([[0]], fn, 1)


def test_other_errors_propagate() -> None:
    def fn(idx: list[int]) -> list[float]:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_batches([[0, 1]], fn, 2)
