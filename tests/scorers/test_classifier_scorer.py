"""ClassifierScorer against a direct, one-pair-at-a-time transformers computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import make_pairs, options
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers import build_scorer
from rmgap_pytest.scorers.classifier import ClassifierScorer

PROMPTS, RESPONSES = make_pairs(24)


def direct_scores(path: Path, prompts: list[str], responses: list[str], *, last_hidden: bool = False) -> np.ndarray:
    """The textbook computation: render, tokenize without added specials, batch of one.

    ``last_hidden`` applies the head to the final position by hand instead of
    trusting the model's pad-id pooling (needed when pad == eos).
    """
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    out = []
    with torch.inference_mode():
        for p, r in zip(prompts, responses):
            if tok.chat_template:
                text = tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                               tokenize=False, return_dict=False)
                ids = tok(text, add_special_tokens=False, return_tensors="pt")
            else:  # a decoder without a template: BOS + prompt + response + EOS (TRL's plain-text format)
                ids = tok(p + r + tok.eos_token, return_tensors="pt")
            if last_hidden:
                hidden = model.model(input_ids=ids["input_ids"]).last_hidden_state
                out.append(model.score(hidden[0, -1])[0].item())
            else:
                out.append(model(**ids).logits[0, 0].item())
    return np.array(out)


def classifier(path: Path, **kw: object) -> ClassifierScorer:
    return ClassifierScorer(str(path), f"classifier:{path}", options(**kw))


@pytest.mark.parametrize("batch_size", [1, 16])
def test_matches_direct_computation(clf_dir: Path, batch_size: int) -> None:
    scores = classifier(clf_dir, batch_size=batch_size).score(PROMPTS, RESPONSES)
    assert scores.dtype == np.float64 and scores.shape == (len(PROMPTS),)
    np.testing.assert_allclose(scores, direct_scores(clf_dir, PROMPTS, RESPONSES), atol=1e-4)


def test_decoder_without_template_reads_bos_prompt_response_eos(clf_pair_dir: Path) -> None:
    """Not a text pair with a second BOS in the middle (../shared/cases/06): the layout TRL trains on."""
    scorer = classifier(clf_pair_dir, batch_size=8)
    scores = scorer.score(PROMPTS, RESPONSES)
    np.testing.assert_allclose(scores, direct_scores(clf_pair_dir, PROMPTS, RESPONSES), atol=1e-4)
    enc = scorer.encode(["hello world\n"], ["hello there"])[0]
    assert scorer.tokenizer.decode(enc.ids) == "<s>hello world\nhello there</s>"
    assert any("BOS (when its tokenizer adds one) + prompt + response + EOS" in n for n in scorer.stats.notes)


def test_invariant_to_batching_and_padding_side(clf_dir: Path) -> None:
    reference = classifier(clf_dir, batch_size=1).score(PROMPTS, RESPONSES)
    for kw in ({"batch_size": 5}, {"token_budget": 200}, {}):
        for side in ("right", "left"):
            scorer = classifier(clf_dir, **kw)
            scorer._ensure_loaded()
            scorer.tokenizer.padding_side = side
            np.testing.assert_allclose(scorer.score(PROMPTS, RESPONSES), reference, atol=1e-4,
                                       err_msg=f"{kw} padding {side}")


def test_pad_equal_to_eos_scores_the_final_eos(clf_pad_eos_dir: Path) -> None:
    """The template ends with EOS == pad: the model's own pooling would skip it; ours must not."""
    scores = classifier(clf_pad_eos_dir, batch_size=16).score(PROMPTS, RESPONSES)
    truth = direct_scores(clf_pad_eos_dir, PROMPTS, RESPONSES, last_hidden=True)
    np.testing.assert_allclose(scores, truth, atol=1e-4)
    naive = direct_scores(clf_pad_eos_dir, PROMPTS, RESPONSES)  # transformers' pad-id pooling
    assert not np.allclose(naive, truth, atol=1e-3), "the tiny model should expose the pad == eos pitfall"


def test_stats_and_lazy_loading(clf_dir: Path) -> None:
    scorer = classifier(clf_dir)
    assert scorer.model is None and not scorer.stats.model_loaded  # constructor loads no weights
    scorer.score(PROMPTS[:3], RESPONSES[:3])
    assert scorer.stats.model_loaded and scorer.stats.pairs_scored == 3
    assert scorer.score([], []).shape == (0,)
    with pytest.raises(ScorerError, match="parallel lists"):
        scorer.score(["a"], [])


def test_truncation_keeps_the_response(clf_dir: Path) -> None:
    long_prompt = " ".join(["Explain how photosynthesis turns sunlight into chemical energy."] * 20)
    prompts, responses = [long_prompt, "hello"], ["Plants use chlorophyll to capture light.", "hello there"]
    scorer = classifier(clf_dir, max_length=40)
    scores = scorer.score(prompts, responses)
    assert scorer.stats.truncated == 1 and np.isfinite(scores).all()
    # The truncated pair scores like the same pair with the prompt's start cut by hand.
    tok = scorer.tokenizer
    from rmgap_pytest.scorers._encode import encode_pairs, truncate

    enc = truncate(encode_pairs(tok, prompts[:1], responses[:1], style="chat")[0], 40)
    text = tok.decode(enc.ids)
    assert len(enc.ids) == 40 and text.startswith("<s><|user|>\n")
    assert text.endswith("<|assistant|>\n" + responses[0] + "</s>")
    assert classifier(clf_dir).score(prompts[1:], responses[1:])[0] == pytest.approx(scores[1], abs=1e-5)


def test_multi_label_head_needs_label(multi_label_dir: Path) -> None:
    with pytest.raises(ScorerError, match=r"3 labels.*label=K \(pytest --rm-label K; rmgap eval --label K\)"):
        classifier(multi_label_dir)
    with pytest.raises(ScorerError, match="between 0 and 2"):
        classifier(multi_label_dir, label=5)
    assert np.isfinite(classifier(multi_label_dir, label=2).score(PROMPTS[:4], RESPONSES[:4])).all()


def test_bare_directory_is_detected_as_classifier(clf_dir: Path) -> None:
    scorer = build_scorer(str(clf_dir), options())
    assert isinstance(scorer, ClassifierScorer)
    assert "detected kind 'classifier'" in scorer.stats.notes[0]
