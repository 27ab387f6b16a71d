"""Low precision must not create ties: the reward head runs in fp32 on a bf16 trunk (issue 8, item 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from families import build, build_custom
from safetensors.torch import load_file, save_file
from tiny_models import make_pairs, options

from rmgap_pytest.evaluation import tied_items
from rmgap_pytest.scorers.classifier import ClassifierScorer

PROMPTS, RESPONSES = make_pairs(96, seed=21)


def real_magnitude_classifier(root: Path) -> Path:
    """A tiny Llama classifier whose rewards have a real RM's magnitude (spread about 6)."""
    path = build("llama3", root, seed=5)
    weights = load_file(path / "model.safetensors")
    weights["score.weight"] = weights["score.weight"] * 40.0
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    scores = ClassifierScorer(str(path), "c", options(batch_size=16)).score(PROMPTS[:16], RESPONSES[:16])
    weights["score.weight"] = weights["score.weight"] * (6.0 / scores.std())
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    return path


def test_bf16_trunk_fp32_head_makes_no_ties(tmp_path: Path) -> None:
    path = real_magnitude_classifier(tmp_path)
    fp32 = ClassifierScorer(str(path), "c", options(batch_size=16)).score(PROMPTS, RESPONSES)
    bf16 = ClassifierScorer(str(path), "c", options(batch_size=16, dtype="bfloat16")).score(PROMPTS, RESPONSES)
    assert len(set(fp32)) == len(set(bf16)) == len(PROMPTS)
    rounded = torch.tensor(bf16).bfloat16().float().numpy()  # what a bf16 head would have returned:
    assert len(set(rounded)) < len(PROMPTS)  # bf16's grid (0.03 at 4, 0.06 at 8) would have tied some
    assert np.corrcoef(fp32, bf16)[0, 1] > 0.99


def test_repository_head_runs_in_fp32_on_a_bf16_trunk(tmp_path: Path) -> None:
    path = build_custom(tmp_path, output="gating")
    scorer = ClassifierScorer(str(path), "c", options(batch_size=16, dtype="bfloat16", trust_remote_code=True))
    scores = scorer.score(PROMPTS, RESPONSES)
    assert scorer.model.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert scorer.model.regression_layer.weight.dtype == torch.float32
    assert len(set(scores)) == len(PROMPTS)


def test_tied_items_counts_rows_with_an_exact_tie() -> None:
    scores = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 3.0, 4.0], [np.nan, np.nan, 1.0, 2.0], [5.0, 2.0, 5.0, 5.0]])
    assert tied_items(scores) == 2  # NaN is invalid, not a tie


def test_evaluation_reports_tied_items(bench_file: Path) -> None:
    from rmgap_pytest.data import load_benchmark
    from rmgap_pytest.evaluation import evaluation_from_scores
    from rmgap_pytest.scorers.builtin import LengthScorer

    bench = load_benchmark(bench_file)
    scores = np.tile(np.arange(4.0), (bench.n_items, 1))
    scores[[0, 5, 7], 2] = scores[[0, 5, 7], 3]  # three items with a tie
    ev = evaluation_from_scores(bench, scores, LengthScorer("builtin:length"), n_boot=20)
    assert ev.counts["tied_items"] == 3
