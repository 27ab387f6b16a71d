"""What only ``vllm:`` does: the server's chat template, the activation switch, vLLM's versions and errors."""

from __future__ import annotations

import functools

import httpx
import numpy as np
import pytest
from test_engines import PROMPTS, RESPONSES, engine_scorer, local_scores

from rmgap_pytest.scorers._http import RemoteError

pytestmark = pytest.mark.usefixtures("fast_remote")


@pytest.fixture
def vllm(start):
    return functools.partial(start, "vllm")


def test_server_side_template_sends_one_conversation_per_request(vllm, clf_dir):
    server = vllm(latency=0.5)  # long enough that eight requests overlap on a loaded machine
    scorer = engine_scorer("vllm", server.url, None, concurrency=8)
    scores = scorer.score(PROMPTS[:12], RESPONSES[:12])
    posts = server.posts()
    assert len(posts) == 12 and server.max_in_flight == 8
    body = posts[0]["body"]
    assert body["model"] == "tiny-rm" and body["task"] == "classify" and body["use_activation"] is False
    assert body["add_special_tokens"] is False and "truncate_prompt_tokens" not in body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert {(p["body"]["messages"][0]["content"], p["body"]["messages"][1]["content"]) for p in posts} == \
        set(zip(PROMPTS[:12], RESPONSES[:12]))
    # This tiny template renders the same on both sides, so the scores agree here too; docs/serving.md
    # says what the server-side mode does not guarantee in general.
    np.testing.assert_allclose(scores, local_scores(clf_dir, PROMPTS[:12], RESPONSES[:12]), atol=1e-5)
    assert "rendered by the server's chat template" in scorer.stats.notes[0]


def test_server_side_truncation_is_left_to_the_server_when_asked(vllm):
    server = vllm()
    long_prompt = "hello world " * 60
    scorer = engine_scorer("vllm", server.url, None, max_length=40)
    scores = scorer.score([long_prompt, "hi"], ["hello there", "hello"])
    assert np.isfinite(scores).all() and scorer.stats.truncated == 1
    assert all(p["body"]["truncate_prompt_tokens"] == 40 for p in server.posts())


def test_too_long_pair_without_truncation_names_the_fixes(vllm):
    server = vllm()
    with pytest.raises(RemoteError) as err:
        engine_scorer("vllm", server.url, None).score(["hello world " * 400], ["hi"])
    msg = str(err.value)
    assert "HTTP 400" in msg and "maximum context length is 512 tokens" in msg and "--rm-tokenizer=DIR" in msg


def test_a_vllm_without_use_activation_is_refused(vllm, clf_dir):
    server = vllm(version="0.10.2")
    with pytest.raises(RemoteError, match=r"runs vLLM 0.10.2.*sigmoid.*upgrade the server to vLLM 0.11.1"):
        engine_scorer("vllm", server.url, clf_dir).score(["p"], ["r"])
    assert server.posts() == []


def test_unknown_version_is_accepted_and_said(vllm, clf_dir):
    server = vllm(version_endpoint=False)
    scorer = engine_scorer("vllm", server.url, clf_dir)
    scorer.score(["p"], ["r"])
    assert "vLLM version unknown" in scorer.stats.notes[0]


def test_token_reward_model_gets_the_convert_advice(vllm, clf_dir):
    server = vllm(tasks=("token_classify",))
    with pytest.raises(RemoteError, match=r"HTTP 400.*Unsupported task.*--convert classify"):
        engine_scorer("vllm", server.url, clf_dir).score(["p"], ["r"])


def test_base_url_with_a_path_gets_the_base_url_advice(vllm, clf_dir):
    server = vllm()
    with pytest.raises(RemoteError, match=r"HTTP 404.*without /v1"):
        engine_scorer("vllm", server.url + "/v1", clf_dir).score(["p"], ["r"])


def test_a_models_list_that_is_not_one_is_a_clear_error(vllm, clf_dir):
    server = vllm()
    server.api.get = lambda path: {"models": ["x"]}
    with pytest.raises(RemoteError, match=r"/v1/models answered .*not a list of models"):
        engine_scorer("vllm", server.url, clf_dir).score(["p"], ["r"])


def test_the_simulator_validates_like_vllm(vllm):
    """Requests the client never sends still get vLLM's error shape: the server is strict, not lenient."""
    server = vllm()
    for body in ({"input": "x", "messages": []}, {"input": [1, "a"]}, {"input": [[1]], "use_activation": "no"},
                 {"input": [[1]], "task": "embed"}):
        answer = httpx.post(server.url + "/pooling", json=body)
        assert answer.status_code == 400 and set(answer.json()["error"]) == {"message", "type", "param", "code"}
    missing = httpx.post(server.url + "/pooling", json={"model": "nope", "input": [[1, 2]]})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"
    default = httpx.post(server.url + "/pooling", json={"input": [[1, 2, 3]]}).json()["data"][0]["data"]
    raw = httpx.post(server.url + "/pooling", json={"input": [[1, 2, 3]], "use_activation": False}).json()
    assert 0 < default[0] < 1 and default[0] == pytest.approx(1 / (1 + np.exp(-raw["data"][0]["data"][0])))
