"""What the model reads: truncation keeps the template whole, render_pairs gives the classifier's exact ids,
the template's date is pinned, and the layout rules and their notes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from families import FAMILIES, build
from reference import Reference
from tiny_models import make_pairs, options

from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers import build_scorer
from rmgap_pytest.scorers._template import ChatTemplate
from rmgap_pytest.scorers.classifier import ClassifierScorer
from rmgap_pytest.scorers.render import render_pairs

LONG = " ".join(["Explain how photosynthesis turns sunlight into chemical energy."] * 12)
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("render")


def classifier(path: Path, **kw: object) -> ClassifierScorer:
    return ClassifierScorer(str(path), f"classifier:{path}", options(**kw))


@pytest.mark.parametrize("family", ["qwen3", "qwen25", "llama31", "gemma2", "mistral", "mistral_spm"])
def test_truncation_cuts_only_the_texts(root: Path, family: str) -> None:
    path = build(family, root)
    full = classifier(path)
    prompts = [LONG, "user", DEFAULT_SYSTEM + " " + LONG, LONG]
    responses = ["Plants use chlorophyll to capture light.", LONG, "hello there", "A terse reply: yes. " * 30]
    untruncated = full.encode(prompts, responses)
    limit = 60
    scorer = classifier(path, max_length=limit, batch_size=3)
    encs = scorer.encode(prompts, responses)
    scores, flags = scorer.score_with_flags(prompts, responses)
    assert flags == [True] * 4 and scorer.stats.truncated == 4
    ref = Reference(path)
    for enc, whole, score in zip(encs, untruncated, scores):
        assert len(enc.ids) == limit
        # Everything outside the two texts is the template's, token for token.
        outside = whole.ids[:whole.prompt[0]] + whole.ids[whole.prompt[1]:whole.response[0]] + whole.ids[whole.response[1]:]
        kept = enc.ids[:enc.prompt[0]] + enc.ids[enc.prompt[1]:enc.response[0]] + enc.ids[enc.response[1]:]
        assert kept == outside
        # The prompt lost its start first, then the response its start; the ends stay.
        assert enc.ids[enc.prompt[0]:enc.prompt[1]] == whole.ids[whole.prompt[1] - (enc.prompt[1] - enc.prompt[0]):whole.prompt[1]]
        assert enc.ids[enc.response[0]:enc.response[1]] == whole.ids[whole.response[1] - (enc.response[1] - enc.response[0]):whole.response[1]]
        assert score == pytest.approx(ref.score_ids(enc.ids), abs=1e-4)
    text = scorer.tokenizer.decode(encs[1].ids)
    if family == "qwen3":
        assert "<|im_start|>assistant\n<think>\n\n</think>\n\n" in text  # the empty think block is the template's
    if family in ("qwen25",):
        assert DEFAULT_SYSTEM in scorer.tokenizer.decode(encs[2].ids)  # the template's copy is never the one cut


def test_template_alone_longer_than_max_length_is_refused(root: Path) -> None:
    scorer = classifier(build("llama31", root), max_length=12)
    with pytest.raises(ScorerError, match=r"template's own tokens alone take \d+.*never cut.*max_length="):
        scorer.score(["hello"], ["there"])


@pytest.mark.parametrize("family", ["llama3", "llama31", "qwen25", "qwen3", "gemma2", "mistral", "mistral_spm",
                                    "zephyr_no_bos",
                                    "plain_llama", "plain_qwen", "bert", "roberta", "deberta"])
def test_render_pairs_gives_the_classifier_ids(root: Path, family: str) -> None:
    path = build(family, root)
    prompts, responses = make_pairs(6, seed=4)
    lit = FAMILIES[family].literal
    prompts += [LONG, f"say {lit} now", "caf\u00e9 \U0001f600", "hi"]
    responses += ["short", f"done {lit}", LONG, "there"]
    scorer = classifier(path, max_length=96)
    fed = scorer.encode(prompts, responses)
    rendered = render_pairs(path, prompts, responses, max_length=96)
    for a, b in zip(fed, rendered):
        assert (a.ids, a.type_ids, a.truncated) == (b.ids, b.type_ids, b.truncated)
        if b.text is not None:  # the text form, where there is one, tokenizes to exactly the ids
            assert scorer.tokenizer(b.text, add_special_tokens=False)["input_ids"] == b.ids
    assert rendered[7].text is None  # a text spelling a control token has no text form: send the ids
    if not FAMILIES[family].encoder:
        assert rendered[9].text is not None and not rendered[9].truncated


def test_render_pairs_imports_neither_torch_nor_transformers(root: Path) -> None:
    path = build("llama3", root)
    code = ("import sys; from rmgap_pytest.scorers.render import render_pairs; "
            f"r = render_pairs({str(path)!r}, ['hi'], ['there']); "
            "print(len(r[0].ids), 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[1:] == ["False", "False"]


def test_template_date_is_pinned(root: Path) -> None:
    """Llama 3.1 writes today's date from strftime_now; a pinned date keeps scores the same on any day."""
    path = build("llama31", root)
    ref = Reference(path)
    today = ref.tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, return_dict=False)
    template = ChatTemplate(ref.tok.chat_template, dict(ref.tok.special_tokens_map))
    ours = template.render("hi")
    assert "Today Date: 26 Jul 2024" in ours
    assert ours == ref.tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                               return_dict=False, add_generation_prompt=True,
                                               date_string="26 Jul 2024")
    assert today.count("Today Date:") == 1  # transformers' default: the clock (differs unless run on that day)


def test_fingerprint_follows_the_template_and_layout_options(root: Path, tmp_path: Path) -> None:
    path = build("plain_llama", root)
    base = classifier(path)
    assert base.format.layout == "plain"
    template = tmp_path / "t.jinja"
    template.write_text(FAMILIES["zephyr_no_bos"].template)
    chat = classifier(path, chat_template=str(template))
    assert chat.format.layout == "chat" and chat.fingerprint != base.fingerprint
    template.write_text(FAMILIES["zephyr_no_bos"].template.replace("\n{{ m['content'] }}", " {{ m['content'] }}"))
    assert classifier(path, chat_template=str(template)).fingerprint != chat.fingerprint
    assert classifier(path, pool="last_non_pad").fingerprint != base.fingerprint
    assert any(str(template) in n for n in chat.stats.notes)
    enc = chat.encode(["hi"], ["there"])[0]
    assert chat.tokenizer.decode(enc.ids) == "<|user|>\nhi</s>\n<|assistant|>\nthere</s>\n"


def test_template_that_omits_the_bos_the_tokenizer_adds(root: Path) -> None:
    path = build("zephyr_no_bos", root)
    scorer = classifier(path)
    assert any("does not write it" in n and "add_bos=True" in n for n in scorer.stats.notes)
    plain, with_bos = scorer.encode(["hi"], ["there"])[0], classifier(path, add_bos=True).encode(["hi"], ["there"])[0]
    assert with_bos.ids == [scorer.tokenizer.bos_token_id] + plain.ids
    ref = Reference(path)  # the default is what apply_chat_template(tokenize=True) gives
    assert plain.ids == ref.tok.apply_chat_template([{"role": "user", "content": "hi"},
                                                     {"role": "assistant", "content": "there"}], return_dict=False)


def test_pad_equal_to_eos_warns_and_offers_transformers_rule(root: Path) -> None:
    path = build("zephyr_no_bos", root)  # pad == eos == </s>, and every turn ends with </s>\n
    scorer = classifier(path)
    assert not any("pad token is the EOS" in n for n in scorer.stats.notes)  # the input ends with "\n", not EOS
    plain = build("plain_qwen", root)  # pad == eos, and the plain layout ends with that EOS
    scorer = classifier(plain)
    assert any("pad token is the EOS" in n and "last_non_pad" in n for n in scorer.stats.notes)
    prompts, responses = make_pairs(5, seed=2)
    ref = Reference(plain)
    with_rule = classifier(plain, pool="last_non_pad", batch_size=3).score(prompts, responses)
    # transformers' own pooling: model(**inputs).logits reads the last token that is not the pad id
    import torch

    want = []
    for p, r in zip(prompts, responses):
        with torch.inference_mode():
            want.append(float(ref.model(input_ids=torch.tensor([ref.ids(p, r)])).logits[0, 0]))
    np.testing.assert_allclose(with_rule, want, atol=1e-4)
    assert not np.allclose(scorer.score(prompts, responses), want, atol=1e-3)


def test_options_that_do_not_apply_get_a_note(root: Path) -> None:
    scorer = build_scorer(f"classifier:{build('llama3', root)}", options(aggregate="sum", ref_model="x", beta=0.5))
    notes = " ".join(scorer.stats.notes)
    for name in ("aggregate='sum'", "ref_model='x'", "beta=0.5"):
        assert f"option {name} does not apply to classifier scorers and is ignored" in notes


def test_max_length_beyond_positions_is_refused_before_loading(root: Path) -> None:
    path = build("roberta", root)  # 514 positions, 2 of them before the first token: 512 usable
    with pytest.raises(ScorerError, match=r"max_length=513 is more than the 512 positions.*max_length=512 or less"):
        build_scorer(f"classifier:{path}", options(max_length=513))
    assert build_scorer(f"classifier:{path}", options(max_length=512)).max_length == 512
    with pytest.raises(ScorerError, match=r"pytest --rm-max-length N; rmgap eval --max-length N"):
        build_scorer(f"classifier:{build('llama3', root)}", options(max_length=4096))
