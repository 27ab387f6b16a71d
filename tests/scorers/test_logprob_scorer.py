"""LogprobScorer / DpoScorer against log-probs computed by hand from the model's logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import build_softcapped_lm, build_tokenizer, make_pairs, options
from transformers import AutoModelForCausalLM, AutoTokenizer

from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers import build_scorer
from rmgap_pytest.scorers.logprob import DpoScorer, LogprobScorer

PROMPTS, RESPONSES = make_pairs(12, seed=3)


def hand_logprobs(path: Path, prompt: str, response: str) -> np.ndarray:
    """log p(response token | prefix) from one unpadded forward pass of the model's own logits."""
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    if tok.chat_template:
        user = [{"role": "user", "content": prompt}]
        head = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False, return_dict=False)
        full = tok.apply_chat_template(user + [{"role": "assistant", "content": response}], tokenize=False,
                                       return_dict=False)
        head_ids = tok(head, add_special_tokens=False).input_ids
        ids = tok(full, add_special_tokens=False).input_ids
    else:
        head_ids, ids = tok(prompt).input_ids, tok(prompt + response).input_ids
    assert ids[:len(head_ids)] == head_ids  # no merge across the boundary in these pairs
    with torch.inference_mode():
        logp = model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
    start = len(head_ids)
    return np.array([logp[t - 1, ids[t]].item() for t in range(start, len(ids))])


def logprob(path: Path, **kw: object) -> LogprobScorer:
    return LogprobScorer(str(path), f"logprob:{path}", options(**kw))


@pytest.mark.parametrize("how", ["mean", "sum", "discounted_sum"])
def test_aggregates_match_hand_computation(lm_dir: Path, how: str) -> None:
    scorer = logprob(lm_dir, aggregate=how, gamma=0.9, batch_size=4)
    scores = scorer.score(PROMPTS, RESPONSES)
    assert not scorer.lm.full_logits  # Llama: hidden states + head, in chunks
    expected = []
    for p, r in zip(PROMPTS, RESPONSES):
        lp = hand_logprobs(lm_dir, p, r)
        expected.append({"mean": lp.mean(), "sum": lp.sum(),
                         "discounted_sum": (0.9 ** np.arange(lp.size) * lp).sum()}[how])
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_plain_concatenation_and_padding_side(plain_lm_dir: Path) -> None:
    expected = [hand_logprobs(plain_lm_dir, p, " " + r).sum() for p, r in zip(PROMPTS, RESPONSES)]
    responses = [" " + r for r in RESPONSES]
    for side in ("right", "left"):
        scorer = logprob(plain_lm_dir, aggregate="sum", token_budget=300)
        scorer._ensure_loaded()
        scorer.tokenizer.padding_side = side
        np.testing.assert_allclose(scorer.score(PROMPTS, responses), expected, atol=1e-4, err_msg=side)


def test_token_merged_across_boundary_belongs_to_response(plain_lm_dir: Path) -> None:
    """'Say hel' + 'lo world': BPE writes ' hello' as one token; it is the response's first token."""
    scorer = logprob(plain_lm_dir, aggregate="sum")
    scorer._ensure_loaded()
    tok = scorer.tokenizer
    from rmgap_pytest.scorers._encode import encode_pairs

    enc = encode_pairs(tok, ["Say hel"], ["lo world"], style="concat")[0]
    assert tok.convert_ids_to_tokens(enc.ids[enc.scored_from]) == "Ġhello"
    assert tok.decode(enc.ids[enc.scored_from:]) == " hello world"
    model = scorer.lm.model
    with torch.inference_mode():
        logp = model(input_ids=torch.tensor([enc.ids])).logits[0].float().log_softmax(-1)
    hand = sum(logp[t - 1, enc.ids[t]].item() for t in range(enc.scored_from, len(enc.ids)))
    assert scorer.score(["Say hel"], ["lo world"])[0] == pytest.approx(hand, abs=1e-4)


def test_models_that_post_process_logits_use_the_full_logits(tmp_path: Path) -> None:
    """Gemma 2 soft-caps logits after the head: the load-time probe must notice and use model(...).logits."""
    path = build_softcapped_lm(tmp_path / "gemma", build_tokenizer())
    scorer = logprob(path, aggregate="sum", batch_size=3)
    scores = scorer.score(PROMPTS[:6], RESPONSES[:6])
    assert scorer.lm.full_logits
    expected = [hand_logprobs(path, p, r).sum() for p, r in zip(PROMPTS[:6], RESPONSES[:6])]
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_dpo_is_zero_when_policy_is_reference(lm_dir: Path) -> None:
    scorer = DpoScorer(str(lm_dir), f"dpo:{lm_dir}", options(ref_model=str(lm_dir)))
    assert np.array_equal(scorer.score(PROMPTS, RESPONSES), np.zeros(len(PROMPTS)))


def test_dpo_is_beta_times_policy_minus_reference(lm_dir: Path, ref_lm_dir: Path) -> None:
    """The DPO implicit reward: beta * (summed policy - summed reference log-probs); beta 0.1 by default."""
    summed = (logprob(lm_dir, aggregate="sum").score(PROMPTS, RESPONSES)
              - logprob(ref_lm_dir, aggregate="sum").score(PROMPTS, RESPONSES))
    dpo = DpoScorer(str(lm_dir), f"dpo:{lm_dir}", options(ref_model=str(ref_lm_dir)))
    np.testing.assert_allclose(dpo.score(PROMPTS, RESPONSES), 0.1 * summed, atol=1e-5)
    dpo = DpoScorer(str(lm_dir), f"dpo:{lm_dir}", options(ref_model=str(ref_lm_dir), beta=2.0))
    np.testing.assert_allclose(dpo.score(PROMPTS, RESPONSES), 2.0 * summed, atol=1e-4)
    assert dpo.fingerprint != DpoScorer(str(lm_dir), "dpo", options(ref_model=str(lm_dir))).fingerprint


def test_dpo_without_reference_is_an_error(lm_dir: Path) -> None:
    with pytest.raises(ScorerError, match="ref_model=PATH"):
        build_scorer(f"dpo:{lm_dir}", options())


def test_bad_aggregate_gets_did_you_mean(lm_dir: Path) -> None:
    with pytest.raises(ScorerError, match="Did you mean 'discounted_sum'"):
        logprob(lm_dir, aggregate="discounted")


def test_bare_causal_lm_detected_as_logprob_or_dpo(lm_dir: Path, ref_lm_dir: Path) -> None:
    assert isinstance(build_scorer(str(lm_dir), options()), LogprobScorer)
    assert isinstance(build_scorer(str(lm_dir), options(ref_model=str(ref_lm_dir))), DpoScorer)
