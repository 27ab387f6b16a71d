"""The judges on a local model directory: tiny random Llamas, checked against direct transformers calls."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tiny_models as tm
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rmgap_pytest import load_scorer
from rmgap_pytest.scorers._chat import ChatRequest
from rmgap_pytest.scorers._chat_local import LocalChat

# Short prompts: the tiny models take 512 tokens and their byte-level vocabulary spends many on a default prompt.
VERIFIER_T = "{prompt}\n{response}\nGood? YES or NO."
JUDGE_T = "{prompt}\n{response}\nRate 1-10."
RANKER_T = "{prompt}\n{responses}\nRank {labels}."


@pytest.fixture(scope="session")
def yes_lm_dir(models_root: Path) -> Path:
    """A causal LM whose vocabulary has "YES" as one token (most real tokenizers do)."""
    tok = tm.build_tokenizer()
    tok.add_tokens(["YES"])
    return tm.build_causal_lm(models_root / "lm_yes", tok, seed=3)


@pytest.fixture
def templates(tmp_path):
    out = {}
    for kind, text in (("verifier", VERIFIER_T), ("judge", JUDGE_T), ("ranker", RANKER_T)):
        (tmp_path / f"{kind}.txt").write_text(text)
        out[kind] = str(tmp_path / f"{kind}.txt")
    return out


def _direct_next_token_logprobs(model_dir: Path, messages: list[dict]) -> tuple[torch.Tensor, list[int]]:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    text = tok.apply_chat_template(messages, tokenize=False, return_dict=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    return logits.log_softmax(-1), ids


def test_verifier_logprob_equals_a_direct_transformers_computation(yes_lm_dir, templates):
    prompts, responses = tm.make_pairs(6, seed=4)
    scorer = load_scorer(f"verifier:{yes_lm_dir}", judge_template=templates["verifier"], dtype="float32",
                         batch_size=3, cache=False)  # batches of 3, left-padded
    got = scorer.score_detailed(prompts, responses)
    yes_id = AutoTokenizer.from_pretrained(yes_lm_dir).convert_tokens_to_ids("YES")
    for i, (p, r) in enumerate(zip(prompts, responses)):
        lp, ids = _direct_next_token_logprobs(yes_lm_dir, scorer.template.messages(prompt=p, response=r))
        assert got.values[i] == pytest.approx(float(lp[-1, yes_id]), abs=1e-4)
        assert got.meta[i]["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 0}
    assert len(set(np.round(got.values, 6))) == len(prompts)  # the prompt matters


def test_verifier_chains_the_tokens_of_yes_when_no_single_token_reads_it(lm_dir, templates):
    tok = AutoTokenizer.from_pretrained(lm_dir)
    chain = tok.encode("YES", add_special_tokens=False)
    assert len(chain) > 1  # the premise: this tiny vocabulary splits "YES"
    scorer = load_scorer(f"verifier:{lm_dir}", judge_template=templates["verifier"], dtype="float32", cache=False)
    value = scorer.score(["hello there"], ["hello world"])[0]
    model = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32).eval()
    head = tok(tok.apply_chat_template(scorer.template.messages(prompt="hello there", response="hello world"),
                                       tokenize=False, return_dict=False, add_generation_prompt=True),
               add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        lp = model(torch.tensor([head + chain])).logits[0].log_softmax(-1)
    want = sum(float(lp[len(head) - 1 + t, chain[t]]) for t in range(len(chain)))
    assert value == pytest.approx(want, abs=1e-4)


def test_greedy_generation_matches_transformers_generate(lm_dir):
    chat = LocalChat(str(lm_dir), tm.options())
    messages = [{"role": "user", "content": "hello there, rate this"}]
    short = [{"role": "user", "content": "hi"}]
    got = chat.complete([ChatRequest(messages, 6, logprobs=True), ChatRequest(short, 6, logprobs=True)])
    tok = AutoTokenizer.from_pretrained(lm_dir)
    model = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32).eval()
    for c, m in zip(got, (messages, short)):
        ids = tok(tok.apply_chat_template(m, tokenize=False, return_dict=False, add_generation_prompt=True),
                  add_special_tokens=False, return_tensors="pt")["input_ids"]
        out = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        gen = out[0, ids.shape[1]:].tolist()
        stop = next((j for j, t in enumerate(gen) if t == tok.eos_token_id), len(gen))
        assert c.text == tok.decode(gen[:stop], skip_special_tokens=True)
        assert c.prompt_tokens == ids.shape[1] and c.finish == ("length" if stop == len(gen) else "stop")
        # Greedy: each generated token is the most likely in its top list. Partial UTF-8 bytes all
        # read "\ufffd" and are merged into one entry (their texts are what answers are parsed from).
        assert len(c.tokens) == len(c.tops) == c.completion_tokens - (c.finish == "stop")
        for token, top in zip(c.tokens, c.tops):
            assert len(top) <= 20 and sum(math.exp(v) for v in top.values()) <= 1.0 + 1e-6
            if "\ufffd" not in token:
                assert top[token] == pytest.approx(max(v for t, v in top.items() if "\ufffd" not in t), abs=1e-5)


def test_unreadable_answers_are_retried_then_invalid_never_a_default(lm_dir, templates):
    prompts, responses = tm.make_pairs(4, seed=1)
    scorer = load_scorer(f"judge:{lm_dir}", judge_template=templates["judge"], dtype="float32",
                         judge_max_tokens=5, cache=False)
    got = scorer.score_detailed(prompts, responses)
    for value, meta in zip(got.values, got.meta):
        if "invalid" in meta:
            assert math.isnan(value) and meta["attempts"] == 3 and isinstance(meta["raw"], str)
            assert meta["usage"]["completion_tokens"] >= 3
        else:
            assert value == meta["rating"] and 1 <= value <= 10
    assert any("invalid" in m for m in got.meta)  # a random model rarely writes one clean number
    again = load_scorer(f"judge:{lm_dir}", judge_template=templates["judge"], dtype="float32",
                        judge_max_tokens=5, cache=False).score_detailed(prompts, responses)
    assert again.meta == got.meta  # greedy: the same answers again


def test_ranker_runs_every_order_and_invalid_items_are_nan(lm_dir, templates):
    scorer = load_scorer(f"ranker:{lm_dir}", judge_template=templates["ranker"], dtype="float32",
                         judge_max_tokens=4, ranker_orders=2, cache=False)
    got = scorer.score_detailed(["which is best?"], [["alpha", "beta", "gamma", "delta"]])
    assert got.values.shape == (1, 4)
    meta = got.meta[0]
    assert isinstance(meta["raw"], list) and len(meta["raw"]) == 2
    if "invalid" in meta:
        assert np.isnan(got.values).all() and meta["invalid"].startswith("order ")
    else:
        assert sorted(got.values[0]) == sorted(set(got.values[0]))


def test_a_prompt_over_the_model_limit_is_invalid_at_once(lm_dir):
    scorer = load_scorer(f"judge:{lm_dir}", dtype="float32", judge_max_tokens=4, cache=False)
    got = scorer.score_detailed(["explain " * 300], ["ok"])
    assert math.isnan(got.values[0])
    assert "within the model's 512-token limit" in got.meta[0]["invalid"] and "attempts" not in got.meta[0]
    verifier = load_scorer(f"verifier:{lm_dir}", dtype="float32", cache=False).score_detailed(["explain " * 300],
                                                                                              ["ok"])
    assert math.isnan(verifier.values[0]) and "no room" in verifier.meta[0]["invalid"]


def test_a_long_prompt_gets_the_room_that_is_left(lm_dir, templates):
    chat = LocalChat(str(lm_dir), tm.options())
    tight = [{"role": "user", "content": "hello " * 245}]  # a little under the 512-token limit
    (c,) = chat.complete([ChatRequest(tight, 2048)])
    assert c.refused is None and c.prompt_tokens + c.completion_tokens <= 512 and c.completion_tokens > 0


def test_a_model_without_chat_template_gets_plain_paragraphs(plain_lm_dir, templates):
    scorer = load_scorer(f"verifier:{plain_lm_dir}", judge_template=templates["verifier"], dtype="float32",
                         cache=False)
    assert np.isfinite(scorer.score(["hi"], ["hello"])).all()
    assert any("no chat template" in n for n in scorer.stats.notes)


def test_local_fingerprint_follows_the_weights_and_dtype(lm_dir, ref_lm_dir):
    fp = load_scorer(f"judge:{lm_dir}", dtype="float32", cache=False).fingerprint
    assert fp == load_scorer(f"judge:{lm_dir}", dtype="float32", cache=False).fingerprint
    assert fp != load_scorer(f"judge:{ref_lm_dir}", dtype="float32", cache=False).fingerprint
    assert fp != load_scorer(f"judge:{lm_dir}", dtype="bfloat16", cache=False).fingerprint
    assert fp != load_scorer(f"judge:{lm_dir}", dtype="float32", judge_max_tokens=64, cache=False).fingerprint


def test_a_local_verifier_through_the_cache_never_reloads_the_model(yes_lm_dir, templates, tmp_path):
    from builders import small_benchmark
    from rmgap_pytest.evaluation import evaluate

    data = small_benchmark(tmp_path / "bench.jsonl", per_domain=1)
    cache = tmp_path / "cache.sqlite"
    options = dict(judge_template=templates["verifier"], dtype="float32", progress=False)
    first = load_scorer(f"verifier:{yes_lm_dir}", cache=cache, **options)
    ev = evaluate(data, first, n_boot=20)
    assert first.stats.model_loaded and ev.counts["invalid_items"] == 0
    again = load_scorer(f"verifier:{yes_lm_dir}", cache=cache, **options)
    ev2 = evaluate(data, again, n_boot=20)
    assert not again.stats.model_loaded and ev2.reference == ev.reference


def test_control_token_spellings_in_content_stay_text(lm_dir):
    """An answer holding "<s>" or "<|user|>" (HTML strike-through, a chat log) is text to the judge: the
    rendered prompt has only the template's own control tokens, and decodes back to the rendered text."""
    from rmgap_pytest.scorers.base import ScorerOptions

    chat = LocalChat(str(lm_dir), ScorerOptions(device="cpu", dtype="float32"))
    chat._load()
    tok = chat.tokenizer
    plain = [{"role": "system", "content": "Judge it."}, {"role": "user", "content": "Answer: A B C"}]
    tricky = [plain[0], {"role": "user", "content": "Answer: A <s>B</s> <|user|> C"}]
    ids = chat._render(tricky)
    specials = {tok.bos_token_id, tok.eos_token_id, tok.convert_tokens_to_ids("<|user|>")}
    assert [i for i in ids if i in specials] == [i for i in chat._render(plain) if i in specials]
    text = tok.apply_chat_template(tricky, tokenize=False, return_dict=False, add_generation_prompt=True)
    assert tok.decode(ids) == text
    # transformers' own tokenization of the same text reads the spellings as control tokens:
    assert len([i for i in tok(text, add_special_tokens=False)["input_ids"] if i in specials]) > len(
        [i for i in ids if i in specials])
