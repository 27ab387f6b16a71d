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


# -- published families, fp32 log-probs, the fast path (issue 8, items 4, 7, 9, 10) ----------------------------

from families import FAMILIES, build  # noqa: E402
from reference import reference_logprobs  # noqa: E402

FAMILY_PROMPTS = PROMPTS[:6] + ["user", "Caf\u00e9 \U0001f600?"]
FAMILY_RESPONSES = RESPONSES[:6] + ["assistant", "\u65e5\u672c\u8a9e ok"]


@pytest.fixture(scope="module")
def fam_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lm_families")


@pytest.mark.parametrize("family", ["llama31", "qwen3", "gemma2", "mistral", "plain_qwen"])
def test_logprob_families_match_hand_computation(fam_root: Path, family: str) -> None:
    path = build(family, fam_root, kind="causal")
    lit = FAMILIES[family].literal
    prompts = FAMILY_PROMPTS + [f"What does {lit} do?"]
    responses = FAMILY_RESPONSES + [f"It ends a turn: {lit} is a control token."]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    want = [reference_logprobs(model, tok, p, r).sum() for p, r in zip(prompts, responses)]
    scorer = logprob(path, aggregate="sum")
    for batch_size in (1, 3, 16):
        for side in ("right", "left"):
            scorer.options.batch_size = batch_size
            scorer._ensure_loaded()
            scorer.tokenizer.padding_side = side
            np.testing.assert_allclose(scorer.score(prompts, responses), want, atol=1e-4, rtol=0,
                                       err_msg=f"{family} x{batch_size} {side}")
    assert scorer.lm.full_logits == (family == "gemma2")  # Gemma 2 soft-caps its logits after the head


def test_softcapping_with_small_logits_takes_the_full_path(fam_root: Path) -> None:
    """Small logits make soft-capping nearly the identity; a loose probe took the fast path (off by 3.6e-3)."""
    path = build("gemma2", fam_root, kind="causal", seed=3, final_logit_softcapping=30.0, initializer_range=0.02)
    scorer = logprob(path, aggregate="sum", batch_size=4)
    scores = scorer.score(PROMPTS, RESPONSES)
    assert scorer.lm.why_full == "final_logit_softcapping"
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    want = [reference_logprobs(model, tok, p, r).sum() for p, r in zip(PROMPTS, RESPONSES)]
    np.testing.assert_allclose(scores, want, atol=2e-5, rtol=0)


def test_transforms_logits_reads_the_config() -> None:
    from rmgap_pytest.scorers.logprob import transforms_logits

    assert transforms_logits({"final_logit_softcapping": 30.0}) == "final_logit_softcapping"
    assert transforms_logits({"text_config": {"final_logit_softcapping": 30.0}}) == "final_logit_softcapping"
    assert transforms_logits({"logit_scale": 0.0625}) == "logit_scale"
    assert transforms_logits({"logits_scaling": 8.0}) == "logits_scaling"
    assert transforms_logits({"final_logit_softcapping": None, "logit_scale": 1.0}) is None


def test_dpo_per_token_mean_is_an_explicit_option(lm_dir: Path, ref_lm_dir: Path) -> None:
    mean = DpoScorer(str(lm_dir), "dpo", options(ref_model=str(ref_lm_dir), aggregate="mean", beta=1.0))
    summed = DpoScorer(str(lm_dir), "dpo", options(ref_model=str(ref_lm_dir), beta=1.0))
    expected = (logprob(lm_dir).score(PROMPTS, RESPONSES) - logprob(ref_lm_dir).score(PROMPTS, RESPONSES))
    np.testing.assert_allclose(mean.score(PROMPTS, RESPONSES), expected, atol=1e-5)
    assert mean.fingerprint != summed.fingerprint
    assert summed.fingerprint != DpoScorer(str(lm_dir), "dpo", options(ref_model=str(ref_lm_dir))).fingerprint
    with pytest.raises(ScorerError, match=r"beta=-1.0 must be a positive number.*--rm-beta"):
        DpoScorer(str(lm_dir), "dpo", options(ref_model=str(ref_lm_dir), beta=-1.0))


def test_bf16_log_probs_come_from_an_fp32_head(lm_dir: Path) -> None:
    """bf16 logits keep 8 significant bits (0.06 at a logit of 16): the head runs in fp32 on bf16 states."""
    scorer = logprob(lm_dir, aggregate="sum", dtype="bfloat16", batch_size=4)
    scores = scorer.score(PROMPTS, RESPONSES)
    head = scorer.lm.head
    enc = scorer.encode(PROMPTS[:1], RESPONSES[:1])[0]
    with torch.inference_mode():
        hidden = scorer.lm.model.base_model(input_ids=torch.tensor([enc.ids]))[0][0]
        logp = torch.nn.functional.linear(hidden.float(), head.weight.float()).log_softmax(-1)
    hand = sum(logp[t - 1, enc.ids[t]].item() for t in range(enc.scored_from, len(enc.ids)))
    assert scores[0] == pytest.approx(hand, abs=1e-4)


def test_repository_language_model_needs_trust_remote_code(lm_dir: Path, tmp_path: Path) -> None:
    import json
    import shutil

    copy = Path(shutil.copytree(lm_dir, tmp_path / "custom_lm"))
    config = json.loads((copy / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_x.MyLM"}
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ScorerError, match=r"modeling_x.MyLM.*pytest --rm-trust-remote-code; rmgap eval "
                                          r"--trust-remote-code"):
        logprob(copy)
