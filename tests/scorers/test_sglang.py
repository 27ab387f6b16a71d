"""What only ``sglang:`` does: token ids on /classify, SGLang's info endpoints (old and new), its errors."""

from __future__ import annotations

import functools

import httpx
import pytest
from test_engines import PROMPTS, RESPONSES, engine_scorer

from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers._http import RemoteError

pytestmark = pytest.mark.usefixtures("fast_remote")


@pytest.fixture
def sglang(start):
    return functools.partial(start, "sglang")


def test_without_a_tokenizer_the_spec_is_refused_with_the_reason(sglang):
    with pytest.raises(ScorerError, match=r"applies no chat template.*second BOS.*--rm-tokenizer=DIR"):
        engine_scorer("sglang", sglang().url, None)


def test_requests_carry_token_ids(sglang, clf_dir):
    server = sglang()
    engine_scorer("sglang", server.url, clf_dir, batch_size=3, concurrency=1).score(PROMPTS[:5], RESPONSES[:5])
    bodies = [p["body"] for p in server.posts()]
    assert [set(b) for b in bodies] == [{"model", "input_ids"}] * 2
    assert [len(b["input_ids"]) for b in bodies] == [3, 2]
    assert all(p["path"] == "/classify" for p in server.posts())


def test_older_info_paths_are_used_when_the_new_ones_are_missing(sglang, clf_dir):
    server = sglang(legacy=True, version="0.4.6")
    scorer = engine_scorer("sglang", server.url, clf_dir)
    scorer.score(["p"], ["r"])
    paths = [r["path"] for r in server.requests if r["method"] == "GET"]
    assert "/model_info" in paths and "/get_model_info" in paths and "/get_server_info" in paths
    assert "SGLang 0.4.6" in scorer.stats.notes[0]


def test_a_generation_server_is_refused(sglang, clf_dir):
    server = sglang(generation=True)
    with pytest.raises(RemoteError, match="as a generation model. Fix: start it with --is-embedding"):
        engine_scorer("sglang", server.url, clf_dir).score(["p"], ["r"])
    assert server.posts() == []


def test_schema_errors_pass_through_cleanly(sglang, clf_dir):
    server = sglang()
    server.canned(422, {"detail": [{"type": "list_type", "loc": ["body", "input_ids"],
                                    "msg": "Input should be a valid list", "input": "x"}]})
    with pytest.raises(RemoteError, match=r"HTTP 422 with body .*valid list.*/classify schema"):
        engine_scorer("sglang", server.url, clf_dir).score(["p"], ["r"])


def test_the_simulator_validates_like_sglang(sglang, served):
    """Requests the client never sends still get SGLang's error shapes: the server is strict, not lenient."""
    server = sglang()
    bad = httpx.post(server.url + "/classify", json={"input_ids": "1 2 3"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "input_ids"]
    empty = httpx.post(server.url + "/classify", json={"model": "tiny-rm"})
    assert empty.status_code == 400 and "Either text, input_ids" in empty.json()["error"]["message"]
    # Why the client sends ids: rendered text is tokenized again with specials, so BOS is doubled.
    ids = served.chat_ids([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], False)
    text = served.tok.decode(ids)
    by_ids = httpx.post(server.url + "/classify", json={"input_ids": [ids]}).json()[0]
    by_text = httpx.post(server.url + "/classify", json={"text": [text]}).json()[0]
    assert by_text["meta_info"]["prompt_tokens"] == by_ids["meta_info"]["prompt_tokens"] + 1
