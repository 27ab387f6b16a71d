"""The judges against a real OpenAI-compatible server on 127.0.0.1 (``fake_judge.FakeJudge``)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from fake_judge import FakeJudge

from rmgap_pytest import load_scorer
from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers import _http
from rmgap_pytest.scorers._http import RemoteError
from rmgap_pytest.scorers.ranker import shown_orders, shuffle_order

PROMPTS = ["how do I cook rice?", "explain the tides", "why is the sky blue?", "name a prime"]
RESPONSES = ["boil it in water", "the moon pulls the sea", "scattering of light", "seven"]


@pytest.fixture(autouse=True)
def _no_key_and_fast_backoff(monkeypatch):
    monkeypatch.delenv("RMGAP_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(_http, "BACKOFF_S", (0.01, 0.05))


@pytest.fixture
def judge():
    server = FakeJudge()
    yield server
    server.stop()


def _q(server: FakeJudge, p: str, r: str) -> float:
    return min(max(server.quality(p, r), 1e-6), 1 - 1e-6)


def test_verifier_scores_are_the_servers_yes_logprobs(judge):
    got = load_scorer(f"verifier:{judge.base}", cache=False).score_detailed(PROMPTS, RESPONSES)
    assert got.values.tolist() == [math.log(_q(judge, p, r)) for p, r in zip(PROMPTS, RESPONSES)]
    payload = judge.completions[0]
    assert payload["max_tokens"] == 1 and payload["logprobs"] is True and payload["top_logprobs"] == 20
    assert payload["temperature"] == 0 and payload["seed"] == 0 and payload["model"] == "judge-1"
    assert all(m["raw"] in ("YES", "NO") and m["usage"]["completion_tokens"] == 1 for m in got.meta)


def test_verifier_marks_a_yes_below_the_top_list_as_a_bound(monkeypatch):
    server = FakeJudge(unlisted_below=0.5)
    try:
        got = load_scorer(f"verifier:{server.base}", cache=False).score_detailed(PROMPTS, RESPONSES)
    finally:
        server.stop()
    for p, r, value, meta in zip(PROMPTS, RESPONSES, got.values, got.meta):
        q = _q(server, p, r)
        if q >= 0.5:
            assert value == math.log(q) and "bound" not in meta
        else:  # the last listed log-prob: YES is at most that likely
            assert meta["bound"] is True and value == -37.0
    assert any(m.get("bound") for m in got.meta)


def test_judge_rating_and_expected_rating(judge):
    rating = load_scorer(f"judge:{judge.base}", cache=False).score_detailed(PROMPTS, RESPONSES)
    want = [min(10, max(1, round(1 + 9 * judge.quality(p, r)))) for p, r in zip(PROMPTS, RESPONSES)]
    assert rating.values.tolist() == want
    assert "logprobs" not in judge.completions[-1]  # the plain rating needs no log-probs
    expected = load_scorer(f"judge:{judge.base}", judge_score="expected", cache=False).score_detailed(PROMPTS,
                                                                                                     RESPONSES)
    assert [m["rating"] for m in expected.meta] == want
    centers = [1 + 9 * judge.quality(p, r) for p, r in zip(PROMPTS, RESPONSES)]
    for value, center, meta in zip(expected.values, centers, expected.meta):
        assert abs(value - center) < 0.6 and meta["expected"] == pytest.approx(value, abs=1e-6)
    assert judge.completions[-1]["logprobs"] is True


def test_expected_rating_finds_the_rating_token_in_a_decorated_answer():
    plain, decorated = FakeJudge(), FakeJudge(decorate=True)
    try:
        a = load_scorer(f"judge:{plain.base}", judge_score="expected", cache=False).score_detailed(PROMPTS, RESPONSES)
        b = load_scorer(f"judge:{decorated.base}", judge_score="expected", cache=False).score_detailed(PROMPTS,
                                                                                                      RESPONSES)
    finally:
        plain.stop()
        decorated.stop()
    assert b.meta[0]["raw"].startswith("Score: ")
    assert b.values.tolist() == a.values.tolist() and np.isfinite(b.values).all()


def test_expected_rating_with_digit_split_ten():
    server = FakeJudge(quality=lambda q, r: 0.99, split_digits=True)
    try:
        got = load_scorer(f"judge:{server.base}", judge_score="expected", cache=False).score_detailed(["p"], ["r"])
    finally:
        server.stop()
    assert got.meta[0]["rating"] == 10 and 9.3 < got.values[0] <= 10


def test_ranker_ranks_in_the_seeded_shuffled_order(judge):
    items = [RESPONSES, RESPONSES[::-1]]
    got = load_scorer(f"ranker:{judge.base}", cache=False).score_detailed(PROMPTS[:2], items)
    for i, (p, rs) in enumerate(zip(PROMPTS[:2], items)):
        order = sorted(range(4), key=lambda j: -judge.quality(p, rs[j]))
        want = np.zeros(4)
        want[order] = [4, 3, 2, 1]
        assert got.values[i].tolist() == want.tolist()
        shown = shown_orders(shuffle_order(p, rs, 0), 1)[0]
        assert got.meta[i]["first"] == "ABCD"[shown.index(order[0])]
    asked = sorted(json.dumps(c["messages"]) for c in judge.completions)
    again = load_scorer(f"ranker:{judge.base}", cache=False).score_detailed(PROMPTS[:2], items)
    assert sorted(json.dumps(c["messages"]) for c in judge.completions[2:]) == asked  # same questions again
    assert again.meta == got.meta


def test_ranker_orders_average_away_a_position_bias():
    server = FakeJudge(bias_first="A")  # always puts whatever is labelled A first
    try:
        one = load_scorer(f"ranker:{server.base}", cache=False).score_detailed(PROMPTS, [RESPONSES] * 4)
        four = load_scorer(f"ranker:{server.base}", ranker_orders=4, cache=False).score_detailed(PROMPTS,
                                                                                               [RESPONSES] * 4)
    finally:
        server.stop()
    assert all(m["first"] == "A" for m in one.meta)
    assert all(m["first"] == ["A", "A", "A", "A"] and len(m["ranking"]) == 4 for m in four.meta)
    assert np.allclose(four.values.sum(axis=1), 10)  # mean ranks still sum to 4+3+2+1
    assert len(server.completions) == 4 + 16


def test_unreadable_answers_are_retried_with_a_repair_turn_then_invalid(judge):
    prompts = ["fine", "ramble <junk-once>", "ramble <junk-always>"]
    got = load_scorer(f"judge:{judge.base}", cache=False).score_detailed(prompts, ["a", "b", "c"])
    assert np.isfinite(got.values[:2]).all() and math.isnan(got.values[2])
    assert got.meta[1]["attempts"] == 2 and "invalid" not in got.meta[1]
    assert got.meta[2] == {**got.meta[2], "attempts": 3, "invalid": "no number in the answer",
                           "raw": "I cannot decide between them."}
    junk = [c for c in judge.completions if "<junk-always>" in json.dumps(c)]
    assert len(junk) == 3  # bounded: three attempts, then counted as invalid
    repair = junk[1]["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == "I cannot decide between them." and "no number" in repair[3]["content"]
    assert got.meta[2]["usage"]["prompt_tokens"] == sum(
        sum(len(m["content"].split()) for m in c["messages"]) for c in junk)


def test_a_reply_cut_while_reasoning_is_asked_again_with_more_room(judge):
    got = load_scorer(f"ranker:{judge.base}", cache=False).score_detailed(["think first <think>"], [RESPONSES])
    budgets = [c["max_tokens"] for c in judge.completions]
    assert budgets == [2048, 4096] and np.isfinite(got.values).all()
    assert got.meta[0]["raw"].startswith("[reasoning: ") and got.meta[0]["attempts"] == 2
    capped = load_scorer(f"ranker:{judge.base}", judge_max_tokens=16, cache=False)
    out = capped.score_detailed(["think first <think>"], [RESPONSES])
    assert [c["max_tokens"] for c in judge.completions[2:]] == [16, 32, 64]
    assert np.isnan(out.values).all() and "never closes" in out.meta[0]["invalid"]


def test_many_requests_in_flight_and_slow_replies():
    server = FakeJudge(delay=0.15)
    try:
        scorer = load_scorer(f"judge:{server.base}", concurrency=8, api_model="judge-1", cache=False)
        started = time.monotonic()
        got = scorer.score(PROMPTS * 4, RESPONSES * 4)
        took = time.monotonic() - started
    finally:
        server.stop()
    assert np.isfinite(got).all() and server.max_in_flight == 8
    assert took < 16 * 0.15 / 2  # serial: 2.4 s; 8 in flight: about 0.3 s
    assert not any(r["path"].endswith("/models") for r in server.requests)  # --rm-api-model: no lookup


def test_429_with_retry_after_is_honoured(judge):
    judge.canned(429, {"error": {"message": "rate limited"}}, {"Retry-After": "1"})
    got = load_scorer(f"judge:{judge.base}", concurrency=1, cache=False).score(PROMPTS[:1], RESPONSES[:1])
    assert np.isfinite(got).all()
    first, second = [r for r in judge.requests if r["path"].endswith("/chat/completions")]
    assert second["at"] - first["at"] >= 0.95


def test_401_names_the_key_variable_and_masks_the_key(monkeypatch):
    server = FakeJudge(key="sk-right-key")
    monkeypatch.setenv("RMGAP_API_KEY", "sk-wrong-key-123")
    try:
        with pytest.raises(RemoteError) as err:
            load_scorer(f"judge:{server.base}", cache=False).score(["p"], ["r"])
    finally:
        server.stop()
    msg = str(err.value)
    assert "HTTP 401" in msg and "RMGAP_API_KEY" in msg and "sk-wrong-key-123" not in msg and "***" in msg


def test_openai_api_key_is_used_when_rmgap_api_key_is_unset(monkeypatch):
    server = FakeJudge(key="sk-openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    try:
        assert np.isfinite(load_scorer(f"judge:{server.base}", cache=False).score(["p"], ["r"])).all()
    finally:
        server.stop()
    assert all(r["headers"]["Authorization"] == "Bearer sk-openai" for r in server.requests)


def test_unknown_model_is_a_clear_404(judge):
    with pytest.raises(RemoteError) as err:
        load_scorer(f"judge:{judge.base}", api_model="gpt-nope", cache=False).score(["p"], ["r"])
    assert "HTTP 404" in str(err.value) and "--rm-api-model" in str(err.value) and "/v1" in str(err.value)


def test_a_base_url_without_v1_gets_advice(judge):
    with pytest.raises(RemoteError) as err:
        load_scorer(f"judge:{judge.base.removesuffix('/v1')}", cache=False).score(["p"], ["r"])
    assert "HTTP 404" in str(err.value) and "ending in /v1" in str(err.value)


def test_several_listed_models_need_a_name():
    server = FakeJudge(models=["small", "large"])
    try:
        with pytest.raises(RemoteError) as err:
            load_scorer(f"judge:{server.base}", cache=False).score(["p"], ["r"])
        assert "lists 2 models (small, large)" in str(err.value) and "--rm-api-model" in str(err.value)
        got = load_scorer(f"judge:{server.base}", api_model="large", cache=False).score(["p"], ["r"])
        assert np.isfinite(got).all() and server.completions[-1]["model"] == "large"
    finally:
        server.stop()


def test_a_server_without_logprobs_is_a_clear_error_for_the_verifier():
    server = FakeJudge(no_logprobs=True)
    try:
        with pytest.raises(RemoteError, match="did not return token log-probs"):
            load_scorer(f"verifier:{server.base}", cache=False).score(["p"], ["r"])
        with pytest.raises(RemoteError, match="--rm-judge-score=rating"):
            load_scorer(f"judge:{server.base}", judge_score="expected", cache=False).score(["p"], ["r"])
        assert np.isfinite(load_scorer(f"judge:{server.base}", cache=False).score(["p"], ["r"])).all()
    finally:
        server.stop()


@pytest.mark.parametrize("options,needle", [
    ({"judge_score": "expectd"}, "Did you mean 'expected'?"),
    ({"concurrency": 0}, "at least 1"),
    ({"judge_max_tokens": 0}, "at least 1"),
    ({"ranker_orders": 0}, "between 1 and"),
])
def test_bad_options_fail_before_any_request(judge, options, needle):
    kind = "ranker" if "ranker_orders" in options else "judge"
    with pytest.raises(ScorerError, match=needle):
        load_scorer(f"{kind}:{judge.base}", cache=False, **options)
    assert judge.requests == []


def test_credentials_in_the_url_are_refused():
    with pytest.raises(RemoteError, match="credentials") as err:
        load_scorer("judge:http://user:pw@127.0.0.1:8000/v1", cache=False)
    assert "pw" not in str(err.value)


@pytest.mark.parametrize("target,needle", [
    ("127.0.0.1:8000/v1", "without its scheme. Fix: write the base URL in full, e.g. http://127.0.0.1:8000/v1"),
    ("./no-such-judge", "judge model directory 'no-such-judge' does not exist"),
    ("", "nothing after the colon"),
])
def test_bad_targets_say_what_to_write(target, needle):
    with pytest.raises(ScorerError) as err:
        load_scorer(f"ranker:{target}", cache=False)
    assert needle in str(err.value)
