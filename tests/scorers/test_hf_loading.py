"""Loading rules shared by model-backed scorers: safe weights, clear errors, fingerprints, device/dtype."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import make_pairs, options

from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers import build_scorer, load_scorer
from rmgap_pytest.scorers import _files
from rmgap_pytest.scorers._files import resolve_device_name, resolve_dtype_name
from rmgap_pytest.scorers._hf import torch_device
from rmgap_pytest.scorers.classifier import ClassifierScorer

PROMPTS, RESPONSES = make_pairs(4, seed=5)


def fp(path: Path, **kw: object) -> str | None:
    return ClassifierScorer(str(path), "classifier", options(**kw)).fingerprint


def test_fingerprint_follows_weights_not_unrelated_options(clf_dir: Path, tmp_path: Path) -> None:
    base = fp(clf_dir)
    for kw in ({"batch_size": 3}, {"token_budget": 999}, {"progress": True}, {"device": "cpu"},
               {"aggregate": "sum"}, {"seed": 7}):
        assert fp(clf_dir, **kw) == base, kw
    assert fp(clf_dir, dtype="bfloat16") != base
    assert fp(clf_dir, max_length=64) != base
    copy = Path(shutil.copytree(clf_dir, tmp_path / "copy"))
    assert fp(copy) == base  # identity is content, not location
    weights = load_file(copy / "model.safetensors")
    weights["score.weight"] = weights["score.weight"] * 1.01  # a retrained head: same shapes, new values
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    assert fp(copy) != base


def test_pickle_weights_refused_unless_allowed(clf_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(clf_dir, tmp_path / "pickled"))
    torch.save(load_file(copy / "model.safetensors"), copy / "pytorch_model.bin")
    (copy / "model.safetensors").unlink()
    with pytest.raises(ScorerError, match=r"only pickle weights \(pytorch_model.bin\).*allow_pickle=True"):
        ClassifierScorer(str(copy), "classifier", options())
    allowed = ClassifierScorer(str(copy), "classifier", options(allow_pickle=True)).score(PROMPTS, RESPONSES)
    expected = ClassifierScorer(str(clf_dir), "classifier", options()).score(PROMPTS, RESPONSES)
    np.testing.assert_allclose(allowed, expected, atol=1e-6)


def test_missing_directory_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    with pytest.raises(ScorerError, match=r"no_such_model.*does not exist.*save_pretrained"):
        build_scorer(f"classifier:{missing}", options())


def test_broken_config_and_missing_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ScorerError, match=r"config.json is not valid JSON"):
        build_scorer(f"logprob:{tmp_path}", options())
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    with pytest.raises(ScorerError, match=r"holds no weights"):
        build_scorer(f"logprob:{tmp_path}", options())


def test_unknown_kind_gets_did_you_mean(clf_dir: Path) -> None:
    with pytest.raises(ScorerError, match="Did you mean 'classifier'"):
        load_scorer(f"clasifier:{clf_dir}", cache=False)


def test_wrong_architecture_for_kind_is_a_clear_error(lm_dir: Path, tmp_path: Path) -> None:
    # A causal LM loaded as a classifier would get a random head: refuse, do not warn.
    with pytest.raises(ScorerError, match=r"LlamaForCausalLM, not a \*ForSequenceClassification.*logprob:PATH"):
        ClassifierScorer(str(lm_dir), "classifier", options())
    copy = Path(shutil.copytree(lm_dir, tmp_path / "no_arch"))  # no architectures: caught at load
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "architectures": []}))
    with pytest.raises(ScorerError, match=r"missing from the files and would be random"):
        ClassifierScorer(str(copy), "classifier", options(label=0)).score(PROMPTS, RESPONSES)


def test_device_and_dtype_resolution_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_files, "visible_nvidia_gpus", lambda: 0)
    assert resolve_device_name("auto") == resolve_device_name(None) == "cpu"
    assert resolve_device_name("cpu") == "cpu"
    with pytest.raises(ScorerError, match="Unknown device 'tpu9'"):
        resolve_device_name("tpu9")
    with pytest.raises(ScorerError, match="0 visible CUDA device.*device='cpu'"):
        resolve_device_name("cuda:0")
    monkeypatch.setattr(_files, "visible_nvidia_gpus", lambda: 2)
    assert resolve_device_name("auto") == "cuda" and resolve_device_name("cuda:1") == "cuda:1"
    with pytest.raises(ScorerError, match="2 visible CUDA device"):
        resolve_device_name("cuda:2")
    assert resolve_dtype_name("float32", "cpu") == "float32"
    with pytest.raises(ScorerError, match="Did you mean 'bfloat16'"):
        resolve_dtype_name("bfloat", "cpu")
    for fast in (True, False):
        monkeypatch.setattr(_files, "cpu_has_fast_bf16", lambda fast=fast: fast)
        monkeypatch.setattr(_files, "_gpus_support_bf16", lambda fast=fast: fast)
        want = "bfloat16" if fast else "float32"
        assert resolve_dtype_name("auto", "cpu") == resolve_dtype_name("auto", "cuda:0") == want


def test_auto_rules_agree_with_torch_on_this_machine() -> None:
    native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert resolve_dtype_name("auto", "cpu") == ("bfloat16" if native else "float32")
    assert (resolve_device_name("auto") == "cuda") == torch.cuda.is_available()


def test_hidden_gpus_and_a_cpu_only_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _files.visible_nvidia_gpus() == 0
    if not torch.cuda.is_available():  # device=auto saw a GPU that this torch cannot use: refuse, do not fall back
        with pytest.raises(ScorerError, match=r"device=auto found an NVIDIA GPU.*CUDA build of torch.*device='cpu'"):
            torch_device("cuda", "auto")
    assert torch_device("cpu", "auto").type == "cpu"
