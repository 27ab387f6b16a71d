"""Session-scoped tiny models: built once per test session (a few seconds), shared by all scorer tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny_models as tm  # this directory is on sys.path (pytest's rootdir-relative conftest import)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def chat_tokenizer() -> tm.PreTrainedTokenizerFast:
    return tm.build_tokenizer()


@pytest.fixture(scope="session")
def clf_dir(models_root: Path, chat_tokenizer: tm.PreTrainedTokenizerFast) -> Path:
    return tm.build_classifier(models_root / "clf", chat_tokenizer)


@pytest.fixture(scope="session")
def clf_pad_eos_dir(models_root: Path) -> Path:
    return tm.build_classifier(models_root / "clf_pad_eos", tm.build_tokenizer(pad_is_eos=True))


@pytest.fixture(scope="session")
def clf_pair_dir(models_root: Path) -> Path:
    """A classifier whose tokenizer has no chat template: pairs are encoded as text pairs."""
    return tm.build_classifier(models_root / "clf_pair", tm.build_tokenizer(chat=False))


@pytest.fixture(scope="session")
def multi_label_dir(models_root: Path, chat_tokenizer: tm.PreTrainedTokenizerFast) -> Path:
    return tm.build_classifier(models_root / "clf3", chat_tokenizer, num_labels=3)


@pytest.fixture(scope="session")
def lm_dir(models_root: Path, chat_tokenizer: tm.PreTrainedTokenizerFast) -> Path:
    return tm.build_causal_lm(models_root / "lm", chat_tokenizer)


@pytest.fixture(scope="session")
def ref_lm_dir(models_root: Path, chat_tokenizer: tm.PreTrainedTokenizerFast) -> Path:
    return tm.build_causal_lm(models_root / "lm_ref", chat_tokenizer, seed=1)


@pytest.fixture(scope="session")
def plain_lm_dir(models_root: Path) -> Path:
    """A causal LM whose tokenizer has no chat template: prompt + response as plain text."""
    return tm.build_causal_lm(models_root / "lm_plain", tm.build_tokenizer(chat=False))


# -- loopback inference engines (engine_sim.py): test_engines, test_vllm, test_sglang, test_engine_replicas --
@pytest.fixture(scope="module")
def served(clf_dir: Path):
    """The tiny classifier, as the simulated vLLM/SGLang servers run it."""
    from engine_sim import TinyEngineModel

    return TinyEngineModel(str(clf_dir))


@pytest.fixture
def start(served):
    """``start(engine, **kw)``: a simulated engine server on 127.0.0.1, stopped after the test."""
    from engine_sim import EngineServer

    started: list = []

    def _start(engine: str, **kw: object):
        server = EngineServer(engine, kw.pop("model", served), **kw).start()
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


@pytest.fixture
def fast_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    """No API key from the environment, and retries that back off in milliseconds."""
    from rmgap_pytest.scorers import _http

    for name in _http.KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_http, "BACKOFF_S", (0.01, 0.05))
