"""``scorers._http.HttpPool`` against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rmgap_pytest.scorers import _http
from rmgap_pytest.scorers._http import HttpPool, RemoteError, excerpt, split_urls


class Server:
    """A JSON echo server; ``script`` holds canned (status, body, headers) answers served first."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.script: list[tuple[int, bytes, dict]] = []
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.dead = False  # crashed: drop every connection without answering
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                if server.dead:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                with server.lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": raw,
                                            "at": time.monotonic()})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    canned = server.script.pop(0) if server.script else None
                time.sleep(server.delay)
                with server.lock:
                    server.in_flight -= 1
                if canned:
                    status, data, headers = canned
                else:
                    status, headers = 200, {}
                    data = json.dumps({"path": self.path, "echo": json.loads(raw) if raw else None}).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def canned(self, status: int, body: object = b"", headers: dict | None = None, times: int = 1) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.script.extend([(status, data, headers or {})] * times)

    def crash(self) -> None:
        """Like a killed process: no new connections, and open keep-alive ones get no answer."""
        self.dead = True
        self.httpd.shutdown()
        self.httpd.server_close()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def _dead_url() -> str:
    """A loopback port nobody listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    monkeypatch.setattr(_http, "BACKOFF_S", (0.01, 0.05))


def test_post_returns_json_and_sends_the_key_as_bearer(server):
    with HttpPool([server.url], key="sk-secret") as pool:
        assert pool.post("/v1/x", {"a": 1}) == {"path": "/v1/x", "echo": {"a": 1}}
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-secret"


def test_map_keeps_order_and_has_many_requests_in_flight():
    slow = Server(delay=0.2)
    try:
        with HttpPool([slow.url], concurrency=8) as pool:
            started = time.monotonic()
            out = pool.map(lambda i: pool.post("/", {"i": i})["echo"]["i"], list(range(16)))
            took = time.monotonic() - started
        assert out == list(range(16))
        assert slow.max_in_flight == 8
        assert took < 16 * 0.2 / 2  # serial would take 3.2 s; 8 in flight about 0.4 s
    finally:
        slow.stop()


def test_retry_after_is_honoured_then_the_request_succeeds(server):
    server.canned(429, {"error": "slow down"}, {"Retry-After": "1"})
    with HttpPool([server.url]) as pool:
        assert pool.post("/", {"x": 1})["echo"] == {"x": 1}
        assert pool.stats.retries == 1
    first, second = server.requests
    assert second["at"] - first["at"] >= 0.95


def test_5xx_is_retried_with_backoff(server):
    server.canned(503, b"restarting", times=2)
    with HttpPool([server.url]) as pool:
        assert pool.post("/", {})["echo"] == {}
    assert len(server.requests) == 3


def test_persistent_failure_is_one_paragraph_with_a_short_excerpt(server):
    server.canned(502, b"x" * 50_000, times=10)
    with HttpPool([server.url], max_attempts=3) as pool, pytest.raises(RemoteError) as err:
        pool.post("/v1/score", {})
    msg = str(err.value)
    assert "after 3 attempts" in msg and "HTTP 502" in msg and "Fix:" in msg
    assert len(msg) < 800 and "\n" not in msg


def test_401_names_the_key_variable_and_never_shows_the_key(server):
    server.canned(401, {"error": "bad key sk-secret-123"})
    with HttpPool([server.url], key="sk-secret-123") as pool, pytest.raises(RemoteError) as err:
        pool.post("/", {})
    assert "RMGAP_API_KEY" in str(err.value)
    assert "sk-secret-123" not in str(err.value) and "***" in str(err.value)
    assert len(server.requests) == 1  # a refused key is not retried


def test_404_uses_the_callers_advice(server):
    server.canned(404, {"error": "model 'x' not found"})
    pool = HttpPool([server.url], fix_for_status=lambda status, body: "pass --rm-api-model" if status == 404 else None)
    with pool, pytest.raises(RemoteError, match="pass --rm-api-model"):
        pool.post("/", {})


def test_redirects_are_not_followed(server):
    server.canned(307, b"", {"Location": "http://evil.example/"})
    with HttpPool([server.url], key="k") as pool, pytest.raises(RemoteError, match="redirects are not followed"):
        pool.post("/", {})


def test_a_dead_replica_fails_over_to_a_live_one(server):
    with HttpPool([_dead_url(), server.url], concurrency=4) as pool:
        out = pool.map(lambda i: pool.post("/", {"i": i})["echo"]["i"], list(range(20)))
        assert out == list(range(20))
        assert pool.stats.failovers >= 1
    assert len(server.requests) == 20


def test_a_replica_that_dies_mid_run_is_replaced_by_the_other():
    a, b = Server(delay=0.02), Server(delay=0.02)
    try:
        with HttpPool([a.url, b.url], concurrency=4) as pool:
            def call(i: int) -> int:
                if i == 10:
                    a.crash()
                return pool.post("/", {"i": i})["echo"]["i"]

            assert pool.map(call, list(range(60))) == list(range(60))
        assert len(a.requests) < 20 and len(a.requests) + len(b.requests) >= 60
    finally:
        b.stop()


def test_no_replica_answers_is_a_clear_error():
    with HttpPool([_dead_url(), _dead_url()], max_attempts=4) as pool, pytest.raises(RemoteError) as err:
        pool.post("/", {})
    assert "every replica" in str(err.value) and "connection failed" in str(err.value)


def test_map_raises_the_first_error_and_stops_starting_new_calls(server):
    calls = []

    def fn(i: int) -> int:
        calls.append(i)
        if i == 0:
            raise RemoteError("boom")
        time.sleep(0.05)
        return i

    with HttpPool([server.url], concurrency=2) as pool, pytest.raises(RemoteError, match="boom"):
        pool.map(fn, list(range(50)))
    assert len(calls) < 50


def test_split_urls_refuses_credentials_and_garbage():
    assert split_urls("http://a:1/, http://b:2") == ["http://a:1", "http://b:2"]
    with pytest.raises(RemoteError, match="credentials") as err:
        split_urls("http://user:pw@host:1")
    assert "pw" not in str(err.value)
    with pytest.raises(RemoteError, match="http"):
        split_urls("ftp://host")


def test_excerpt_is_bounded_and_masks_secrets():
    text = excerpt(b"key=abc " + b"y" * 1000, ["abc"])
    assert "abc" not in text and text.startswith("key=***") and len(text) < 260


def test_retry_after_http_date_is_understood():
    from email.utils import formatdate

    assert 1.0 < _http._retry_after(formatdate(time.time() + 3, usegmt=True)) <= 3.0
    assert _http._retry_after("2") == 2.0 and _http._retry_after("soon") is None
