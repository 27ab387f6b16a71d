"""detect_kind: config.json architectures -> scorer kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import options

from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers.detect import detect_kind


def write_config(tmp_path: Path, architectures: list[str]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": architectures}))
    return tmp_path


@pytest.mark.parametrize(("arch", "kind"), [("Qwen2ForSequenceClassification", "classifier"),
                                            ("LlamaForCausalLM", "logprob"), ("GPT2LMHeadModel", "logprob")])
def test_kinds(tmp_path: Path, arch: str, kind: str) -> None:
    found, reason = detect_kind(write_config(tmp_path, [arch]), options())
    assert found == kind and arch in reason


def test_causal_lm_with_reference_is_dpo(tmp_path: Path) -> None:
    assert detect_kind(write_config(tmp_path, ["LlamaForCausalLM"]), options(ref_model="ref"))[0] == "dpo"


def test_unknown_architecture_says_what_it_found(tmp_path: Path) -> None:
    with pytest.raises(ScorerError, match=r"lists WhisperForConditionalGeneration.*classifier:PATH"):
        detect_kind(write_config(tmp_path / "w", ["WhisperForConditionalGeneration"]), options())
    with pytest.raises(ScorerError, match=r"encoder without a reward head \(BertModel\).*builtin:minilm"):
        detect_kind(write_config(tmp_path / "b", ["BertModel"]), options())
    with pytest.raises(ScorerError, match="no config.json"):
        detect_kind(tmp_path / "empty", options())
