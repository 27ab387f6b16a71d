"""``http://...`` specs against a real ThreadingHTTPServer on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import math
import socket
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from builders import small_benchmark
from rmgap_pytest import load_scorer
from rmgap_pytest.errors import ScorerError
from rmgap_pytest.evaluation import evaluate
from rmgap_pytest.scorers import remote

REWARDS_PY = textwrap.dedent("""
    def score(prompts, responses):
        # deterministic, order-sensitive and not monotone in length, so misalignment shows
        return [float(sum(map(ord, r)) % 97 - len(p) % 5) / 10.0 for p, r in zip(prompts, responses)]
""")


def _load_rewards(tmp_path):
    path = tmp_path / "rewards_mod.py"
    path.write_text(REWARDS_PY)
    spec = importlib.util.spec_from_file_location("rewards_mod", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module.score


class FakeRM:
    """What the server saw, and what it should answer.

    ``script`` holds canned answers ``(status, body_bytes, headers)`` served first,
    one per request; after that it scores with ``score_fn``.
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple[int, bytes, dict]] = []
        self.score_fn = lambda ps, rs: [float(len(r) - len(p)) for p, r in zip(ps, rs)]
        self.delay = 0.0
        self.url = ""
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def canned(self, status: int, body, headers: dict | None = None, times: int = 1) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.script.extend([(status, data, headers or {})] * times)


@pytest.fixture
def server():
    rm = FakeRM()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rm.requests.append({"path": self.path, "headers": dict(self.headers), "body": raw})
            with rm.lock:
                rm.in_flight += 1
                rm.max_in_flight = max(rm.max_in_flight, rm.in_flight)
            if rm.delay:
                time.sleep(rm.delay)
            with rm.lock:
                rm.in_flight -= 1
            if rm.script:
                status, data, headers = rm.script.pop(0)
            else:
                payload = json.loads(raw)
                status, headers = 200, {"Content-Type": "application/json"}
                data = json.dumps({"scores": rm.score_fn(payload["prompts"], payload["responses"])}).encode()
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                pass

        def log_message(self, *args):  # keep pytest output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    rm.url = f"http://127.0.0.1:{httpd.server_address[1]}/score"
    try:
        yield rm
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(remote, "RETRY_DELAYS", (0.01, 0.01))


@pytest.fixture(autouse=True)
def _no_token(monkeypatch):
    monkeypatch.delenv("RMGAP_REMOTE_TOKEN", raising=False)


def _pairs(n):
    return [f"prompt {i} " + "x" * (i % 7) for i in range(n)], [f"response {i} " + "y" * (i * 3 % 11) for i in range(n)]


def test_scores_keep_order_across_batches(server, monkeypatch):
    ps, rs = _pairs(11)
    scorer = load_scorer(server.url, batch_size=4, cache=False)
    assert len(server.requests) == 0  # construction does not contact the server
    out = scorer.score(ps, rs)
    assert out.dtype == np.float64
    assert out.tolist() == [float(len(r) - len(p)) for p, r in zip(ps, rs)]
    assert [len(json.loads(r["body"])["prompts"]) for r in server.requests] == [4, 4, 3]
    first = server.requests[0]
    assert first["path"] == "/score" and first["headers"]["Content-Type"] == "application/json"
    assert json.loads(first["body"]) == {"prompts": ps[:4], "responses": rs[:4]}
    assert "Authorization" not in first["headers"]
    assert scorer.stats.pairs_scored == 11 and scorer.stats.model_loaded
    assert scorer.options.progress is True  # the cache reads it
    assert load_scorer(server.url, cache=False).batch_size == 32


def test_bearer_token_sent_when_set(server, monkeypatch):
    monkeypatch.setenv("RMGAP_REMOTE_TOKEN", "s3cret-token")
    load_scorer(server.url).score(["p"], ["r"])
    assert server.requests[-1]["headers"]["Authorization"] == "Bearer s3cret-token"


def test_null_is_nan(server):
    server.canned(200, {"scores": [1.5, None, 2]})
    out = load_scorer(server.url).score(["a", "b", "c"], ["x", "y", "z"])
    assert out[0] == 1.5 and math.isnan(out[1]) and out[2] == 2.0


def test_503_then_200_is_retried(server):
    server.canned(503, b"warming up")
    out = load_scorer(server.url).score(["ab"], ["abcd"])
    assert out.tolist() == [2.0] and len(server.requests) == 2


def test_retries_give_up_after_three_attempts(server, fast_retries):
    server.canned(429, b"slow down", times=3)
    with pytest.raises(ScorerError) as err:
        load_scorer(server.url).score(["p"], ["r"])
    msg = str(err.value)
    assert "HTTP 429 with body 'slow down'" in msg and "after 3 attempts" in msg and len(server.requests) == 3


def test_400_fails_at_once_with_status_and_body(server, monkeypatch):
    monkeypatch.setenv("RMGAP_REMOTE_TOKEN", "s3cret-token")
    server.canned(400, ("bad request: you sent Bearer s3cret-token\n" + "z" * 500).encode())
    with pytest.raises(ScorerError) as err:
        load_scorer(server.url, batch_size=2).score(["p"] * 3, ["r"] * 3)
    msg = str(err.value)
    assert len(server.requests) == 1  # not retried
    assert f"{server.url} (batch 1 of 2, 2 pairs) answered HTTP 400" in msg
    assert "bad request: you sent Bearer *** zzz" in msg and "z" * 300 not in msg
    assert "s3cret-token" not in msg and "\n" not in msg and "Fix:" in msg


def test_redirect_is_not_followed(server):
    server.canned(301, b"", {"Location": "https://elsewhere.example/score"})
    with pytest.raises(ScorerError) as err:
        load_scorer(server.url).score(["p"], ["r"])
    assert "HTTP 301" in str(err.value) and "https://elsewhere.example/score" in str(err.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status,body,needle", [
    (200, {"scores": [1.0]}, "returned 1 scores for 3 pairs"),
    (200, {"score": [1.0, 2.0, 3.0]}, "answered without \"scores\" (an object with keys ['score'])"),
    (200, b"<html>oops</html>", "a body that is not JSON: '<html>oops</html>'"),
    (200, {"scores": [1.0, "high", 3.0]}, "non-numeric score 'high' at position 1"),
    (200, {"scores": [1.0, True, 3.0]}, "non-numeric score True at position 1"),
    (200, {"scores": "1,2,3"}, "answered \"scores\" as a JSON str, not a list"),
])
def test_contract_errors(server, status, body, needle):
    server.canned(status, body)
    with pytest.raises(ScorerError) as err:
        load_scorer(server.url).score(["p"] * 3, ["r"] * 3)
    assert needle in str(err.value) and f"{server.url} (batch 1 of 1, 3 pairs)" in str(err.value)


def test_connection_refused_says_is_the_server_running():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/score"
    scorer = load_scorer(url)  # constructing does not connect
    started = time.monotonic()
    with pytest.raises(ScorerError) as err:
        scorer.score(["p"], ["r"])
    assert time.monotonic() - started < 5  # three attempts, 0.5 s + 1 s backoff
    msg = str(err.value)
    assert "connection refused (after 3 attempts)" in msg and f"is the server running at {url}?" in msg


def test_timeout_is_retried_then_reported(server, fast_retries, monkeypatch):
    monkeypatch.setattr(remote, "REQUEST_TIMEOUT_S", 0.2)
    server.delay = 0.6
    with pytest.raises(ScorerError) as err:
        load_scorer(server.url).score(["p"], ["r"])
    assert "no answer within 0.2 s (after 3 attempts)" in str(err.value)
    assert len(server.requests) == 3


def test_fingerprint_only_with_version(server):
    assert load_scorer(server.url, cache=False).fingerprint is None
    assert load_scorer(server.url, version="rm-v7", cache=False).fingerprint == f"remote:{server.url}:version=rm-v7"
    assert load_scorer("https://rm.example.com/score", cache=False).url == "https://rm.example.com/score"


def test_cached_with_version(server):
    scorer = load_scorer(server.url, version="v1")
    first = scorer.score(["a", "b"], ["xx", "y"])
    again = load_scorer(server.url, version="v1").score(["a", "b"], ["xx", "y"])
    assert first.tolist() == again.tolist() == [1.0, 0.0] and len(server.requests) == 1


@pytest.mark.parametrize("spec,needle", [
    ("http://", "is not a usable URL"),
    ("http:/score", "is not a usable URL"),
    ("http://user:pw@127.0.0.1:8000/score", "carries credentials in the URL"),
    ("http://127.0.0.1:port/score", "has an invalid port"),
])
def test_bad_urls(spec, needle):
    with pytest.raises(ScorerError) as err:
        load_scorer(spec)
    assert needle in str(err.value)


def test_evaluate_matches_local_python_scorer(server, tmp_path):
    path = small_benchmark(tmp_path / "bench.jsonl")
    rewards_path, fn = _load_rewards(tmp_path)
    server.score_fn = fn
    ev = evaluate(path, server.url, cache=False, n_boot=100)
    local = evaluate(path, f"python:{rewards_path}:score", cache=False, n_boot=100)
    assert ev.reference == local.reference
    assert ev.counts["scored"] == local.counts["scored"] > 0
    assert len(server.requests) > 1


def test_several_batches_in_flight_only_when_asked(server):
    server.delay = 0.5  # long enough that four requests overlap on a loaded machine
    ps, rs = _pairs(8)
    expected = [float(len(r) - len(p)) for p, r in zip(ps, rs)]
    assert load_scorer(server.url, batch_size=2, cache=False).score(ps, rs).tolist() == expected
    assert server.max_in_flight == 1  # the default: one batch at a time, as single-threaded adapters need
    assert load_scorer(server.url, batch_size=2, concurrency=4, cache=False).score(ps, rs).tolist() == expected
    assert server.max_in_flight == 4


def test_comma_separated_endpoints_fail_over(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/score"
    scorer = load_scorer(f"{dead},{server.url}", cache=False)
    assert scorer.score(["ab", "a"], ["abcd", "abc"]).tolist() == [2.0, 2.0]
    assert len(server.requests) == 1


def test_a_server_returning_vectors_is_quoted_as_an_excerpt(server):
    """An embedding server answering 8,192 numbers per pair: the message stays one short paragraph."""
    server.canned(200, {"scores": [[0.125] * 8192] * 3})
    with pytest.raises(ScorerError) as err:
        load_scorer(server.url).score(["p"] * 3, ["r"] * 3)
    msg = str(err.value)
    assert "non-numeric score [0.125, 0.125" in msg and "characters)" in msg and len(msg) < 600
