"""``vllm:`` and ``sglang:`` against loopback servers in each engine's documented shape (engine_sim.py).

The servers are backed by the same tiny classifier a local ``classifier:`` run
loads, so remote and local scores and gate metrics can be compared exactly.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from engine_sim import TinyEngineModel
from builders import small_benchmark
from tiny_models import make_pairs, options

from rmgap_pytest import evaluate
from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers import build_scorer
from rmgap_pytest.scorers._http import RemoteError

PROMPTS, RESPONSES = make_pairs(40, seed=3)
ENGINES = ["vllm", "sglang"]
N_BOOT = 100


pytestmark = pytest.mark.usefixtures("fast_remote")


@pytest.fixture(scope="module")
def local_run(clf_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The held-back file and a local classifier: run on it, the reference for every remote run."""
    data = small_benchmark(tmp_path_factory.mktemp("engines") / "heldback.jsonl")
    return data, evaluate(data, f"classifier:{clf_dir}", cache=False, n_boot=N_BOOT, dtype="float32",
                          progress=False)


def engine_scorer(engine: str, url: str, clf_dir: Path | None, **kw: object):
    if clf_dir is not None:
        kw.setdefault("tokenizer", str(clf_dir))
    return build_scorer(f"{engine}:{url}", options(**kw))


def local_scores(clf_dir: Path, prompts=PROMPTS, responses=RESPONSES, **kw: object) -> np.ndarray:
    return build_scorer(f"classifier:{clf_dir}", options(**kw)).score(prompts, responses)


@pytest.mark.parametrize("engine", ENGINES)
def test_client_rendering_equals_local_classifier(engine, start, clf_dir):
    server = start(engine, latency=0.5)  # long enough that the four requests overlap on a loaded machine
    scorer = engine_scorer(engine, server.url, clf_dir, concurrency=4)
    assert server.requests == []  # constructing never contacts the server
    scores = scorer.score(PROMPTS, RESPONSES)
    assert scores.dtype == np.float64 and scores.shape == (40,)
    np.testing.assert_allclose(scores, local_scores(clf_dir), rtol=0, atol=1e-5)
    posts = server.posts()
    # 40 pairs, 4 in flight: 4 requests of 10 pairs, all at once
    assert [len(p["body"]["input" if engine == "vllm" else "input_ids"]) for p in posts] == [10] * 4
    assert server.max_in_flight == 4
    note = scorer.stats.notes[0]
    assert note.startswith(f"{engine}: the server claims to serve 'tiny-rm'") and "rendered on the client" in note
    assert scorer.stats.pairs_scored == 40


@pytest.mark.parametrize("engine", ENGINES)
def test_gate_metrics_are_identical_to_a_local_run(engine, start, clf_dir, local_run):
    data, local = local_run
    server = start(engine)
    remote = evaluate(data, f"{engine}:{server.url}", cache=False, n_boot=N_BOOT, tokenizer=str(clf_dir),
                      progress=False)
    assert remote.reference == local.reference
    assert remote.table.equals(local.table)  # every cell, gap and interval
    assert remote.counts["scored"] == local.counts["scored"] == 576
    assert any("claims to serve 'tiny-rm'" in n for n in remote.meta["notes"])


@pytest.mark.parametrize("engine", ENGINES)
def test_truncation_matches_the_local_rule(engine, start, clf_dir):
    long_prompt = " ".join(["Explain how photosynthesis turns sunlight into chemical energy."] * 20)
    prompts, responses = [long_prompt, "hello"], ["Plants use chlorophyll to capture light.", "hello there"]
    scorer = engine_scorer(engine, start(engine).url, clf_dir, max_length=40)
    scores = scorer.score(prompts, responses)
    np.testing.assert_allclose(scores, local_scores(clf_dir, prompts, responses, max_length=40), atol=1e-5)
    assert scorer.stats.truncated == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_server_limit_below_the_model_limit_is_noted(engine, start, clf_dir, served):
    server = start(engine)
    served_len, served.max_model_len = served.max_model_len, 64
    try:
        scorer = engine_scorer(engine, server.url, clf_dir)
        long_prompt = "hello world " * 60
        scores = scorer.score([long_prompt], ["hello there"])
    finally:
        served.max_model_len = served_len
    assert np.isfinite(scores).all() and scorer.stats.truncated == 1
    assert any("at most 64 tokens per input" in n for n in scorer.stats.notes)


@pytest.mark.parametrize("engine", ENGINES)
def test_fingerprint_follows_the_reported_identity(engine, start, clf_dir, served, tmp_path):
    a = start(engine)
    first = engine_scorer(engine, a.url, clf_dir).fingerprint
    assert first.startswith(f"{engine}:tiny-rm:")
    assert engine_scorer(engine, a.url, clf_dir).fingerprint == first  # stable across scorers
    renamed = start(engine, name="tiny-rm-v2")
    assert engine_scorer(engine, renamed.url, clf_dir).fingerprint != first
    newer = start(engine, version="0.99.0")
    assert engine_scorer(engine, newer.url, clf_dir).fingerprint != first
    assert engine_scorer(engine, a.url, clf_dir, label=0).fingerprint != first
    assert engine_scorer(engine, a.url, clf_dir, max_length=100).fingerprint != first
    edited = tmp_path / "tokenizer"  # another chat template renders other tokens: another cache key
    shutil.copytree(clf_dir, edited)
    template = edited / "chat_template.jinja"  # where transformers 5 saves the template
    template.write_text(template.read_text().replace("{{ eos_token }}", "\n{{ eos_token }}"))
    assert engine_scorer(engine, a.url, edited).fingerprint != first
    if engine == "sglang":  # SGLang reports a weight version (--weight-version): new weights, new cache key
        reweighted = start(engine, weight_version="step-200")
        assert engine_scorer(engine, reweighted.url, clf_dir).fingerprint != first


@pytest.mark.parametrize("engine", ENGINES)
def test_named_version_caches_without_contacting_the_server(engine, start, clf_dir, tmp_path, bench_file):
    server = start(engine)
    cache = tmp_path / "scores.sqlite"
    spec = f"{engine}:{server.url}"
    ev = evaluate(bench_file, spec, cache=cache, n_boot=50, tokenizer=str(clf_dir), version="rm-7", progress=False)
    server.stop()  # a fully cached rerun must not need the server
    again = evaluate(bench_file, spec, cache=cache, n_boot=50, tokenizer=str(clf_dir), version="rm-7", progress=False)
    assert again.reference == ev.reference and again.counts["scored"] == 0
    assert again.meta["fingerprint"].startswith(f"{engine}:rm-7:")


@pytest.mark.parametrize("engine", ENGINES)
def test_replicas_serving_different_models_are_refused(engine, start, clf_dir):
    a, b = start(engine), start(engine, name="other-rm")
    with pytest.raises(RemoteError, match="serve different models") as err:
        engine_scorer(engine, f"{a.url},{b.url}", clf_dir).score(PROMPTS[:2], RESPONSES[:2])
    assert "'tiny-rm'" in str(err.value) and "'other-rm'" in str(err.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_api_model_gets_did_you_mean(engine, start, clf_dir):
    server = start(engine)
    with pytest.raises(RemoteError, match=r"'tiny-rn' is not served.*Did you mean 'tiny-rm'"):
        engine_scorer(engine, server.url, clf_dir, api_model="tiny-rn").score(["p"], ["r"])


@pytest.mark.parametrize("engine", ENGINES)
def test_answers_are_checked(engine, start, clf_dir):
    server = start(engine)
    scorer = engine_scorer(engine, server.url, clf_dir, batch_size=2, concurrency=1)
    wrap = ((lambda outs: {"object": "list", "model": "tiny-rm", "usage": {},
                           "data": [{"index": i, "object": "pooling", "data": o} for i, o in enumerate(outs)]})
            if engine == "vllm" else (lambda outs: [{"embedding": o, "meta_info": {}} for o in outs]))
    cases = [
        (wrap([[0.1, 0.9], [0.3, 0.7]]), "a vector of 2 values for input 0"),
        (wrap([[0.5]]), "returned 1"),
        (wrap([[[0.1], [0.2]], [[0.3]]]), "one value per token"),
        (wrap([["high"], [1.0]]), "non-numeric score"),
        (b"<html>busy</html>", "not JSON: '<html>busy</html>'"),
    ]
    for body, needle in cases:
        server.canned(200, body)
        with pytest.raises(RemoteError, match=needle.replace("[", r"\[")) as err:
            scorer.score(PROMPTS[:2], RESPONSES[:2])
        assert "\n" not in str(err.value) and "Fix:" in str(err.value) and len(str(err.value)) < 800


@pytest.mark.parametrize("engine", ENGINES)
def test_multi_label_head_scores_the_named_label(engine, start, multi_label_dir):
    server = start(engine, model=TinyEngineModel(str(multi_label_dir)))
    with pytest.raises(ScorerError, match=r"3 labels.*--rm-label K"):  # read from the local config.json
        engine_scorer(engine, server.url, multi_label_dir)
    scores = engine_scorer(engine, server.url, multi_label_dir, label=2).score(PROMPTS[:6], RESPONSES[:6])
    np.testing.assert_allclose(scores, local_scores(multi_label_dir, PROMPTS[:6], RESPONSES[:6], label=2), atol=1e-5)


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_is_one_clear_error(engine, start, clf_dir):
    server = start(engine)
    body = ('{"object": "list", "data": [{"index": 0, "object": "pooling", "data": [NaN]}], "usage": {}}'
            if engine == "vllm" else '[{"embedding": [NaN], "meta_info": {}}]')
    server.canned(200, body.encode())
    with pytest.raises(RemoteError, match=r"answered nan for input 0.*float16") as err:
        engine_scorer(engine, server.url, clf_dir).score(["p"], ["r"])
    assert f"{engine}:{server.url} (pair 1 of 1)" in str(err.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_4xx_body_is_a_short_masked_excerpt(engine, start, clf_dir, monkeypatch):
    monkeypatch.setenv("RMGAP_API_KEY", "sk-very-secret")
    server = start(engine, api_key="sk-very-secret")
    body = {"error": {"message": "bad input from Bearer sk-very-secret " + "x" * 5000, "type": "BadRequestError",
                      "param": None, "code": 400}}
    server.canned(400, body)
    with pytest.raises(RemoteError) as err:
        engine_scorer(engine, server.url, clf_dir).score(["p"], ["r"])
    msg = str(err.value)
    assert "answered HTTP 400 with body" in msg and "Bearer ***" in msg and "sk-very-secret" not in msg
    assert "x" * 300 not in msg and len(msg) < 800
    assert all(r["headers"]["Authorization"] == "Bearer sk-very-secret" for r in server.requests)
    assert len(server.posts()) == 1  # a 4xx is not retried


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_key_names_the_variable(engine, start, clf_dir):
    server = start(engine, api_key="sk-needed")
    with pytest.raises(RemoteError, match="set RMGAP_API_KEY"):
        engine_scorer(engine, server.url, clf_dir).score(["p"], ["r"])


@pytest.mark.parametrize("engine", ENGINES)
def test_tls_failure_is_one_message(engine, start, clf_dir):
    server = start(engine)
    https = server.url.replace("http://", "https://")  # a TLS client against a plain-HTTP port
    with pytest.raises(RemoteError, match="TLS handshake") as err:
        engine_scorer(engine, https, clf_dir).score(["p"], ["r"])
    assert "SSL_CERT_FILE" in str(err.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_overloaded_server_is_retried(engine, start, clf_dir):
    server = start(engine)
    server.canned(503, {"error": {"message": "overloaded"}}, times=2)
    scorer = engine_scorer(engine, server.url, clf_dir, concurrency=1)
    np.testing.assert_allclose(scorer.score(PROMPTS[:3], RESPONSES[:3]), local_scores(clf_dir, PROMPTS[:3],
                                                                                         RESPONSES[:3]), atol=1e-5)
    assert scorer.pool.stats.retries == 2 and "2 retries" in scorer.stats.notes[-1]


@pytest.mark.parametrize("engine", ENGINES)
def test_no_replica_answers_is_a_clear_error(engine, clf_dir):
    dead = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead.append(f"http://127.0.0.1:{s.getsockname()[1]}")
    scorer = engine_scorer(engine, ",".join(dead), clf_dir)
    with pytest.raises(RemoteError, match="No replica of") as err:
        scorer.score(["p"], ["r"])
    assert all(f"is the server running at {u}" in str(err.value) for u in dead)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_dead_replica_at_start_is_noted_and_skipped(engine, start, clf_dir):
    live = start(engine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    scorer = engine_scorer(engine, f"{dead},{live.url}", clf_dir, concurrency=4)
    np.testing.assert_allclose(scorer.score(PROMPTS, RESPONSES), local_scores(clf_dir), atol=1e-5)
    assert "1 of 2 replicas answered" in scorer.stats.notes[0] and scorer.pool.stats.failovers >= 1


@pytest.mark.parametrize("engine", ENGINES)
def test_resume_from_the_cache_after_an_interrupted_run(engine, start, clf_dir, local_run, tmp_path):
    bench_file, local = local_run
    cache = tmp_path / "scores.sqlite"
    server = start(engine)
    # The first run dies mid-way: after 300 pairs the server fails every request.
    spec = f"{engine}:{server.url}"
    budget = {"left": 300}
    original = server._handle

    def flaky(method, path, raw, headers):
        if method == "POST":
            n = len(json.loads(raw)["input" if engine == "vllm" else "input_ids"])
            with server.lock:
                failing = budget["left"] < n
                budget["left"] -= 0 if failing else n
            if failing:
                return 500, b'{"error": {"message": "CUDA error: an illegal memory access"}}'
        return original(method, path, raw, headers)

    server._handle = flaky
    with pytest.raises(RemoteError, match="HTTP 500"):
        evaluate(bench_file, spec, cache=cache, n_boot=N_BOOT, tokenizer=str(clf_dir), progress=False)
    server._handle = original
    resumed = evaluate(bench_file, spec, cache=cache, n_boot=N_BOOT, tokenizer=str(clf_dir), progress=False)
    stored = resumed.counts["cache_hits"]
    assert 0 < stored <= 300 and resumed.counts["scored"] == 576 - stored
    assert resumed.reference == local.reference and resumed.table.equals(local.table)


def test_scores_are_finite_floats_not_probabilities(start, clf_dir):
    """A server left to its default activation would squash rewards into (0, 1); the client turns it off."""
    server = start("vllm")
    scores = engine_scorer("vllm", server.url, clf_dir).score(PROMPTS, RESPONSES)
    assert all(p["body"]["use_activation"] is False for p in server.posts())
    assert (scores < 0).any() or (scores > 1).any()
    sigmoid = 1 / (1 + np.exp(-local_scores(clf_dir)))
    assert not np.allclose(scores, sigmoid, atol=1e-3)
    assert math.isfinite(float(scores.sum()))


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_specs_and_options_fail_before_any_request(engine, clf_dir, tmp_path):
    with pytest.raises(RemoteError, match="carries credentials") as err:
        engine_scorer(engine, "http://user:s3cret@127.0.0.1:8000", clf_dir)
    assert "s3cret" not in str(err.value)
    with pytest.raises(ScorerError, match="concurrency must be at least 1"):
        engine_scorer(engine, "http://127.0.0.1:8000", clf_dir, concurrency=0)
    with pytest.raises(ScorerError, match="is not a directory"):
        engine_scorer(engine, "http://127.0.0.1:8000", None, tokenizer=str(tmp_path / "missing"))
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text("{}")
    with pytest.raises(ScorerError, match="has no config.json"):
        engine_scorer(engine, "http://127.0.0.1:8000", None, tokenizer=str(tmp_path / "tok"))
