import json
import zlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from builders import make_record, write_jsonl
from reference_impl import reference_metrics as naive
from rmgap_pytest.data import item_table, load_benchmark, response_keys
from rmgap_pytest.metrics import (compare, group_consistency, metric_table, outcome_table, prompt_blindness,
                                  reference_metrics)

KEYS = ("response1", "response2", "response3", "response4")


def one_record(tmp_path, winners=(3, 1, 4, 2), domain="Chat"):
    bench = load_benchmark(write_jsonl(tmp_path / "one.jsonl", [make_record("r", domain, winners)]))
    return item_table(bench), response_keys(bench), bench


def test_ties_are_losses_and_nan_counts_as_wrong(tmp_path):
    items, keys, _ = one_record(tmp_path)  # group 0's winner is response3 (index 2)
    scores = np.zeros((12, 4))
    scores[0] = [1, 2, 3, 0]  # winner best: 3 wins, BoN
    scores[1] = [3, 2, 3, 0]  # tie with response1: 2 wins, not BoN
    scores[2] = [1, np.nan, 5, 0]  # invalid: 0 wins, not BoN, though the winner is on top
    out = outcome_table(items, scores, keys)
    assert out["wins"].tolist()[:3] == [3, 2, 0]
    assert out["bon"].tolist()[:3] == [True, False, False]
    assert out["invalid"].tolist()[:3] == [False, False, True]
    assert not group_consistency(out)[0]  # invalid item -> inconsistent group


def test_consistency_ranks_by_score_then_key(tmp_path):
    items, keys, _ = one_record(tmp_path)
    scores = np.zeros((12, 4))
    scores[0:3] = [[1, 1, 1, 1], [5, 5, 5, 5], [2, 1, 1, 1]]  # all rank r1>r2>r3>r4: consistent
    scores[3:6] = [[1, 2, 2, 0], [1, 2, 2, 0], [1, 2, 2.5, 0]]  # r2>r3 vs r3>r2: inconsistent
    out = outcome_table(items, scores, keys)
    assert out["ranking"].iloc[0] == "response1>response2>response3>response4"
    assert out["ranking"].iloc[3] == "response2>response3>response1>response4"
    assert group_consistency(out)[:2].tolist() == [True, False]


def test_reference_metrics_by_hand(tmp_path):
    items, keys, _ = one_record(tmp_path, winners=(1, 2, 3, 4))
    scores = np.tile([4.0, 3.0, 2.0, 1.0], (12, 1))  # response1 always on top
    m = reference_metrics(outcome_table(items, scores, keys))
    # groups won by r1..r4 get 3, 2, 1, 0 wins on each of 3 prompts: 18 of 36
    assert m["Pair"] == {"Chat": 0.5, "Avg": 0.5}
    assert m["BoN"] == {"Chat": 0.25, "Avg": 0.25}
    assert m["Consistency"] == {"Chat": 1.0, "Avg": 1.0}  # prompt-blind models are perfectly consistent
    assert prompt_blindness(outcome_table(items, scores, keys)).tolist() == [True]


def _scores_for(bench, fn):
    from rmgap_pytest.data import pair_texts

    prompts, responses = pair_texts(bench)
    return np.array([fn(p, r) for p, r in zip(prompts, responses)]).reshape(-1, 4)


def tie_heavy(prompt, response):
    return float((len(response) + len(prompt)) // 40)


def nan_some(prompt, response):
    h = zlib.crc32(f"{prompt}|{response}".encode()) % 7
    return float("nan") if h == 0 else float(len(response) % 13 + len(prompt) % 5)


@pytest.mark.parametrize("fn", [tie_heavy, nan_some])
def test_matches_the_plain_definition(bench_file, fn):
    bench = load_benchmark(bench_file)
    raw = [json.loads(line) for line in bench_file.read_text().splitlines()]
    got = reference_metrics(outcome_table(item_table(bench), _scores_for(bench, fn), response_keys(bench)))
    want = naive(raw, fn)
    for metric in want:
        assert got[metric].keys() == want[metric].keys()
        for dom in want[metric]:
            assert got[metric][dom] == pytest.approx(want[metric][dom], abs=1e-12)


@pytest.fixture(scope="module")
def sample():
    bench = load_benchmark()
    return bench, item_table(bench), response_keys(bench)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.integers(-1000, 1000))
def test_response_order_and_shift_do_not_matter(sample, seed, shift):
    bench, items, keys = sample
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(len(items), 4)).astype(float)  # small range: many ties
    base = reference_metrics(outcome_table(items, scores, keys))
    perm = rng.permutation(4)  # the file lists the responses in another order
    items2 = items.copy()
    items2["winner_idx"] = np.argsort(perm)[items["winner_idx"].to_numpy()]
    keys2 = [tuple(np.asarray(k)[perm]) for k in keys]
    out2 = outcome_table(items2, scores[:, perm] + shift, keys2)
    assert reference_metrics(out2) == base


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_pair_at_least_bon_and_reversed_perfect_is_zero(sample, seed):
    bench, items, keys = sample
    scores = np.random.default_rng(seed).normal(size=(len(items), 4))
    out = outcome_table(items, scores, keys)
    assert (out["wins"] / 3 >= out["bon"]).all()
    perfect = np.zeros((len(items), 4))
    perfect[np.arange(len(items)), items["winner_idx"]] = 1.0
    assert reference_metrics(outcome_table(items, perfect, keys))["BoN"]["Avg"] == 1.0
    rev = reference_metrics(outcome_table(items, -perfect, keys))
    assert rev["BoN"]["Avg"] == 0.0 and rev["Pair"]["Avg"] == 0.0


def test_bootstrap_reproducible_with_seed(sample):
    bench, items, keys = sample
    out = outcome_table(items, np.random.default_rng(1).normal(size=(len(items), 4)), keys)
    a, b = metric_table(out, n_boot=200, seed=7), metric_table(out, n_boot=200, seed=7)
    pd.testing.assert_frame_equal(a, b)
    c = metric_table(out, n_boot=200, seed=8)
    assert not np.allclose(a["lo"].fillna(0), c["lo"].fillna(0))
    dom = a[(a.kind == "domain")]
    assert ((dom["lo"] <= dom["value"] + 1e-12) & (dom["value"] <= dom["hi"] + 1e-12)).all()


def test_cells_support_and_gaps(sample):
    bench, items, keys = sample
    lengths = np.array([[len(t) for t in r.responses] for r in bench.records for _ in range(12)], float)
    table = metric_table(outcome_table(items, lengths, keys), n_boot=100, min_support=5)
    cells = table[(table.kind == "cell") & (table.metric == "BoN") & (table.dimension == "Conciseness")]
    allc = cells[cells.domain == "All"].set_index("level")
    assert allc.loc["terse", "value"] == 0.0  # a length scorer fails every terse-loving user
    assert allc["support"].sum() == 4 * len(bench.records)  # every prompt group in exactly one level
    gap = table[(table.kind == "gap") & (table.domain == "All") & (table.dimension == "Conciseness")]
    assert gap["value"].iloc[0] == pytest.approx(allc["value"].max() - allc["value"].min())


def test_compare_flags_a_real_drop_not_noise(sample):
    bench, items, keys = sample
    rng = np.random.default_rng(3)
    good = np.zeros((len(items), 4))
    good[np.arange(len(items)), items["winner_idx"]] = 1.0
    good += rng.normal(scale=0.3, size=good.shape)
    base = outcome_table(items, good, keys)
    same = compare(base, base, n_boot=200)
    assert not same["regressed"].any() and (same["diff"].fillna(0) == 0).all()
    worse = compare(base, outcome_table(items, -good, keys), n_boot=200)
    avg = worse[(worse.kind == "domain") & (worse.domain == "Avg") & (worse.metric == "BoN")].iloc[0]
    assert avg.regressed and avg.hi < 0 and avg["diff"] < -0.5
    noise = outcome_table(items, good + rng.normal(scale=0.01, size=good.shape), keys)
    assert not compare(base, noise, n_boot=200, tolerance=0.05)["regressed"].any()


def test_full_release_size_is_fast():
    """Not a timing assertion: runs the vectorized path at 13,164 items to prove it completes."""
    import tempfile
    from pathlib import Path

    from rmgap_pytest.synth import write_synthetic

    with tempfile.TemporaryDirectory() as d:
        bench = load_benchmark(write_synthetic(Path(d) / "s.jsonl", 1097))
    items = item_table(bench)
    assert len(items) == 13164
    out = outcome_table(items, np.random.default_rng(0).normal(size=(len(items), 4)), response_keys(bench))
    table = metric_table(out, n_boot=1000)
    assert table["lo"].notna().any()


def test_interval_is_numpys_nanpercentile_to_the_bit():
    """The vectorised interval (issue 11) gives nanpercentile's numbers, NaN columns or not."""
    from rmgap_pytest.metrics import _interval

    rng = np.random.default_rng(0)
    q = [100 * (1 - 0.95) / 2, 100 - 100 * (1 - 0.95) / 2]  # as the previous interval computed them
    for n_boot, cols in ((1000, 40), (7, 5), (2, 4)):
        draws = rng.random((n_boot, cols)) * rng.integers(1, 50, cols)
        draws[:, 1] = np.nan  # an empty cell in every resample
        draws[rng.random((n_boot, cols)) < 0.1] = np.nan  # and in some
        draws[:, 2] = 0.25  # a constant column
        draws[:, 3] = np.round(draws[:, 3], 1)  # ties
        lo, hi = _interval(draws)
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            want_lo, want_hi = np.nanpercentile(draws, q, axis=0)
        assert lo.tobytes() == want_lo.tobytes() and hi.tobytes() == want_hi.tobytes()
        clean = np.nan_to_num(draws)  # no NaN at all: the one vectorised call
        lo, hi = _interval(clean)
        want_lo, want_hi = np.nanpercentile(clean, q, axis=0)
        assert lo.tobytes() == want_lo.tobytes() and hi.tobytes() == want_hi.tobytes()


def test_shared_bootstrap_counts_give_the_same_table(sample):
    """evaluation draws the counts once for metric_table and bias_table: the table must not change."""
    from rmgap_pytest.metrics import bootstrap_counts, record_domains

    bench, items, keys = sample
    out = outcome_table(items, np.random.default_rng(3).normal(size=(len(items), 4)), keys)
    counts = bootstrap_counts(record_domains(out), 300, 5)
    pd.testing.assert_frame_equal(metric_table(out, n_boot=300, seed=5), metric_table(out, counts=counts))
