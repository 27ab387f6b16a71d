"""Every supported reward-model family scored exactly: rmgap's classifier against transformers, one pair at a time.

For each family (tests/scorers/families.py): varied pair lengths, unicode, a
prompt that is just "user", a prompt that repeats the default system prompt,
and pairs whose texts spell the family's control tokens; at batch sizes 1, 3
and 16 and with the tokenizer set to pad on either side. The reference is
``reference.py`` (transformers' template rendering, tokenizer and forward).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from families import FAMILIES, build, build_custom
from reference import Reference
from tiny_models import make_pairs, options

from rmgap_pytest.scorers.classifier import ClassifierScorer

PROMPTS, RESPONSES = make_pairs(10, seed=11)
PROMPTS += ["user", "You are a helpful assistant.", "Caf\u00e9 na\u00efve? \u65e5\u672c\u8a9e \U0001f600",
            "  padded prompt with spaces  ", "hello"]
RESPONSES += ["assistant", "hello there", "\u0645\u0631\u062d\u0628\u0627 \U0001f600 ok", "\nnewline first",
              "<think>\nreasoning first\n</think>\n\nthen the answer"]  # Qwen3's template moves the think part
CLASSIFIERS = ["llama3", "llama31", "qwen25", "qwen3", "gemma2", "mistral", "mistral_spm", "zephyr_no_bos", "plain_llama",
               "plain_qwen", "bert", "roberta", "deberta"]


def with_literals(family: str) -> tuple[list[str], list[str]]:
    lit = FAMILIES[family].literal
    return ([f"Quote the marker {lit} please.", f"{lit} starts it", "Explain <s>HTML</s> strikethrough."],
            [f"It is written {lit}, then the next turn.", f"ends with {lit}", "Use <s>$40</s> $25 in the page."])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("families")


def check_scorer(path: Path, prompts: list[str], responses: list[str], auto: object = None, **kw: object) -> None:
    load = {"auto": auto} if auto is not None else {}
    ref = Reference(path, trust_remote_code=bool(kw.get("trust_remote_code")), **load)
    want = ref.scores(prompts, responses, label=int(kw.get("label") or 0))
    scorer = ClassifierScorer(str(path), f"classifier:{path}", options(**kw))
    for batch_size in (1, 3, 16):
        for side in ("right", "left"):
            scorer.options.batch_size = batch_size
            scorer._ensure_loaded()
            scorer.tokenizer.padding_side = side
            got = scorer.score(prompts, responses)
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=f"{path.name} x{batch_size} {side}")
    # The ids rmgap feeds the model are the reference's ids (content as text, pinned date, one BOS).
    if not ref.encoder:
        for p, r, enc in zip(prompts, responses, scorer.encode(prompts, responses)):
            assert enc.ids == ref.ids(p, r), (path.name, p, r)


@pytest.mark.parametrize("family", CLASSIFIERS)
def test_family_matches_transformers(root: Path, family: str) -> None:
    lit_p, lit_r = with_literals(family)
    check_scorer(build(family, root), PROMPTS + lit_p, RESPONSES + lit_r)


def test_multi_label_head(root: Path) -> None:
    path = build("qwen25", root, num_labels=3)
    check_scorer(path, PROMPTS[:6], RESPONSES[:6], label=2)


@pytest.mark.parametrize("output", ["gating", "value", "logits1"])
def test_repository_code_heads_run_their_own_forward(root: Path, output: str) -> None:
    check_scorer(build_custom(root, output=output), PROMPTS, RESPONSES, trust_remote_code=True)


def test_reward_class_registered_for_automodel(root: Path) -> None:
    """InternLM2-style: auto_map registers ...ForRewardModel for AutoModel only; its forward gives logits (B, 1)."""
    from transformers import AutoModel

    path = build_custom(root, output="logits1", auto="AutoModel", arch="TinyLMForRewardModel")
    import json

    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_gating_rm.TinyLMForRewardModel",
                          "AutoModelForCausalLM": "modeling_gating_rm.TinyLMForCausalLM"}
    (path / "config.json").write_text(json.dumps(config))
    check_scorer(path, PROMPTS[:6], RESPONSES[:6], auto=AutoModel, trust_remote_code=True)
    from rmgap_pytest.scorers.detect import detect_kind

    assert detect_kind(path, options())[0] == "classifier"  # not logprob, despite the causal LM entry


def test_reward_class_lookup() -> None:
    from rmgap_pytest.scorers._files import reward_class

    assert reward_class({"auto_map": {"AutoModel": "m.InternLM2ForRewardModel"}}) == ("AutoModel", "m.InternLM2ForRewardModel")
    assert reward_class({"auto_map": {"AutoModel": "m.InternLM2Model"}}) is None
    assert reward_class({"auto_map": {"AutoModelForSequenceClassification": ["m.A", "m.AFast"]}}) == \
        ("AutoModelForSequenceClassification", "m.A")


def test_repository_code_that_finds_the_last_token_by_pad_id(root: Path) -> None:
    """pad == eos and the template ends turns with eos: the model's own forward reads the token before the
    first eos. Pairs holding the pad id are scored unpadded, so batching never changes that reading."""
    check_scorer(build_custom(root, output="gating", pad_is_eos=True), PROMPTS, RESPONSES, trust_remote_code=True)


def test_control_token_literals_stay_text(root: Path) -> None:
    """The template's own control tokens are the only ones in the input, whatever the texts spell."""
    for family in ("llama3", "qwen25", "mistral", "gemma2"):
        path = build(family, root)
        scorer = ClassifierScorer(str(path), "classifier", options())
        lit_p, lit_r = with_literals(family)
        clean = scorer.encode(["plain words"], ["plain answer"])[0]
        special = set(scorer.tokenizer.all_special_ids)
        for enc in scorer.encode(lit_p, lit_r):
            assert sum(t in special for t in enc.ids) == sum(t in special for t in clean.ids), family
