"""One HTTP client for every remote scorer: bounded concurrency, retries, replicas, clean errors.

Remote kinds (OpenAI-compatible judges, vLLM and SGLang reward endpoints, the
plain ``http(s)://`` protocol) differ only in the JSON they send and read.
Everything that makes a long remote run survive lives here:

- **Concurrency.** ``HttpPool.map`` keeps at most ``concurrency`` requests in
  flight (a thread pool over one ``httpx.Client``, whose connection pool is
  thread-safe), and returns results in input order.
- **Retries.** Connection errors, timeouts and 408/425/429/500/502/503/504 are
  retried with exponential backoff and jitter (``tenacity``); a ``Retry-After``
  header (seconds or an HTTP date) is honoured, capped at ``MAX_RETRY_AFTER_S``.
- **Replicas.** A pool may hold several base URLs (data-parallel replicas of
  one model, or several load balancers). Requests go round-robin; a replica that
  fails is benched for ``COOLDOWN_S`` and the request moves to the next one, so
  the run fails only when no replica answers.
- **Errors.** Anything else becomes one ``RemoteError`` paragraph: the URL, the
  status, a short excerpt of the body (never the whole body; the API key is
  masked), and the fix. 401/403 and 404 get their own advice from the caller.

httpx (HTTP/1.1 client with pooled connections and proper timeouts) and tenacity
(retry policies) are well-kept libraries; neither is something this project
should re-implement.
"""

from __future__ import annotations

import email.utils
import itertools
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import tenacity

from ..errors import ScorerError

__all__ = ["HttpPool", "RemoteError", "PoolStats", "api_key", "excerpt", "split_urls",
           "RETRY_STATUSES", "DEFAULT_CONCURRENCY"]

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_CONCURRENCY = 16  # requests in flight; servers batch concurrent requests on the GPU
REQUEST_TIMEOUT_S = 300.0  # a long judge generation on a busy server can take minutes
MAX_ATTEMPTS = 5  # per request, across replicas
MAX_RETRY_AFTER_S = 60.0  # a server asking for longer is treated as down for this request
BACKOFF_S = (0.25, 8.0)  # exponential backoff bounds (with full jitter) when no Retry-After is given
COOLDOWN_S = 30.0  # a failed replica gets no new requests for this long
EXCERPT_CHARS = 200  # characters of a body quoted in an error message
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
KEY_ENVS = ("RMGAP_API_KEY", "OPENAI_API_KEY")


class RemoteError(ScorerError):
    """A remote server could not give an answer; the message says where, why and how to fix it.

    ``status`` is the HTTP status when the server answered with one (a caller may, for
    example, fall back to an older path on 404), else None.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def api_key(envs: Sequence[str] = KEY_ENVS) -> str | None:
    """The first non-empty API key among ``envs`` (the environment only: never a URL or a file)."""
    for name in envs:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def excerpt(body: bytes | str, secrets: Iterable[str | None] = (), limit: int = EXCERPT_CHARS) -> str:
    """One line of at most ``limit`` characters from a body, with every secret masked."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)
    text = " ".join(text.split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def split_urls(target: str) -> list[str]:
    """``http://a:8000,http://b:8000`` -> base URLs without trailing slashes; refuses credentials."""
    urls = [u.strip().rstrip("/") for u in target.split(",") if u.strip()]
    if not urls:
        raise RemoteError(f"{target!r} names no server. Fix: write a base URL such as http://127.0.0.1:8000.")
    for url in urls:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise RemoteError(f"{url!r} is not a usable URL ({exc}). Fix: write http://HOST:PORT.") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise RemoteError(f"{url!r} is not an http(s) URL with a host. Fix: write http://HOST:PORT "
                              "(or https://...).")
        if parsed.userinfo:
            raise RemoteError(f"{_redact_userinfo(url)} carries credentials in the URL, which would end up in "
                              "reports and logs. Fix: drop them from the URL and set RMGAP_API_KEY instead.")
    return urls


def _redact_userinfo(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


@dataclass
class PoolStats:
    """What the pool did; a remote scorer copies these into its report notes."""

    requests: int = 0
    retries: int = 0
    failovers: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


class _Retryable(Exception):
    """A failure worth another attempt (on this replica after a wait, or on the next one)."""

    def __init__(self, url: str, reason: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.url, self.reason, self.retry_after, self.status = url, reason, retry_after, status


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpPool:
    """JSON over HTTP to one or more replicas of one server.

    ``fix_for_status(status, body_excerpt) -> str`` lets a scorer give advice for its own
    API (an unknown model name, a wrong path); the default covers the common cases.
    Constructing a pool never contacts a server.
    """

    def __init__(self, urls: Sequence[str], *, concurrency: int = DEFAULT_CONCURRENCY,
                 timeout_s: float = REQUEST_TIMEOUT_S, max_attempts: int = MAX_ATTEMPTS,
                 key: str | None = None, what: str = "the server",
                 fix_for_status: Callable[[int, str], str | None] | None = None,
                 headers: Mapping[str, str] | None = None, transport: httpx.BaseTransport | None = None,
                 backoff_s: tuple[float, float] | None = None) -> None:
        if concurrency < 1:
            raise RemoteError(f"concurrency must be at least 1, got {concurrency}. Fix: pass --rm-concurrency N "
                              "with N >= 1.")
        self.urls = list(urls)
        self.concurrency, self.max_attempts, self.what = concurrency, max_attempts, what
        self.timeout_s, self.backoff_s = timeout_s, backoff_s
        self.key = key
        self.fix_for_status = fix_for_status
        self.stats = PoolStats()
        base_headers = {"Accept": "application/json", **(headers or {})}
        if key:
            base_headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            headers=base_headers, timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(max_connections=concurrency * len(self.urls),
                                max_keepalive_connections=concurrency * len(self.urls)),
            follow_redirects=False,  # a redirected POST loses its body and would carry the key elsewhere
            transport=transport)
        self._next = itertools.cycle(range(len(self.urls)))
        self._benched: dict[int, float] = {}  # replica index -> monotonic time it may serve again
        self._lock = threading.Lock()
        self._in_flight = 0

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "HttpPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request -------------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, payload: Any, label: str = "") -> Any:
        return self.request("POST", path, payload, label=label)

    def request(self, method: str, path: str, payload: Any = None, *, label: str = "") -> Any:
        """Send one JSON request, retrying and failing over; returns the decoded JSON answer.

        ``label`` follows the URL in error messages (for example ``" (batch 2 of 9, 16 pairs)"``).
        """
        last: list[_Retryable] = []

        def attempt() -> Any:
            replica = self._pick()
            try:
                return self._once(replica, method, path, payload, label)
            except _Retryable as exc:
                last.append(exc)
                if len(self.urls) > 1:
                    self._bench(replica)
                raise

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait, retry=tenacity.retry_if_exception_type(_Retryable), reraise=True,
            before_sleep=lambda _state: self._count("retries"))
        try:
            return retrying(attempt)
        except _Retryable:
            failure = last[-1]
            tried = sorted({f.url for f in last})
            where = failure.url if len(tried) == 1 else f"every replica ({', '.join(tried)})"
            raise RemoteError(f"{self.what} at {where}{label} gave no answer to {method}: {failure.reason} "
                              f"(after {len(last)} attempts). Fix: {_unreachable_fix(failure.reason, where)}",
                              failure.status) from None

    def per_replica(self, path: str, replicas: Sequence[int] | None = None) -> list[tuple[str, Any]]:
        """GET ``path`` from every replica (or those listed), without failover and with one retry on a
        transient failure: ``[(base_url, answer or RemoteError)]``. For answers that must agree across
        replicas (which model do you serve?)."""
        out: list[tuple[str, Any]] = []
        for i in range(len(self.urls)) if replicas is None else replicas:
            for attempt in (1, 2):
                try:
                    result = self._once(i, "GET", path, None, "")
                except _Retryable as exc:
                    result = RemoteError(f"{self.what} at {exc.url} gave no answer to GET: {exc.reason}. Fix: "
                                         f"{_unreachable_fix(exc.reason, exc.url)}", exc.status)
                    if attempt == 1:
                        time.sleep(min(exc.retry_after or 0.2, 2.0))
                        continue
                except RemoteError as exc:
                    result = exc
                break
            out.append((self.urls[i], result))
        return out

    def _wait(self, state: tenacity.RetryCallState) -> float:
        if self._healthy_replica():
            return 0.0  # another replica can take the request now
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER_S)
        lo, hi = self.backoff_s or BACKOFF_S
        return random.uniform(0, min(hi, lo * 2 ** (state.attempt_number - 1)))

    def _healthy_replica(self) -> bool:
        """Whether, with several replicas, one is not benched (a single server is never benched)."""
        with self._lock:
            now = time.monotonic()
            return len(self.urls) > 1 and any(self._benched.get(i, 0.0) <= now for i in range(len(self.urls)))

    def _pick(self) -> int:
        with self._lock:
            now = time.monotonic()
            for _ in range(len(self.urls)):
                i = next(self._next)
                if self._benched.get(i, 0.0) <= now:
                    self._benched.pop(i, None)
                    return i
            # Every replica is benched: try the one that comes back first.
            return min(self._benched, key=self._benched.__getitem__)

    def _bench(self, replica: int) -> None:
        with self._lock:
            self._benched[replica] = time.monotonic() + COOLDOWN_S
        self._count("failovers")

    def _count(self, name: str, delta: int = 1) -> None:
        with self.stats.lock:
            setattr(self.stats, name, getattr(self.stats, name) + delta)

    def _once(self, replica: int, method: str, path: str, payload: Any, label: str) -> Any:
        url = self.urls[replica] + path
        with self._lock:
            self._in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
        self._count("requests")
        try:
            response = self._client.request(method, url, json=payload)
        except httpx.ConnectError as exc:
            text = str(exc)
            if isinstance(exc.__cause__, ssl.SSLError) or "SSL" in text or "CERTIFICATE" in text.upper():
                raise RemoteError(f"{self.what} at {url}{label} failed the TLS handshake ({excerpt(text)}). Fix: "
                                  "give the server a certificate this machine trusts (or point SSL_CERT_FILE at "
                                  "its CA bundle), or use http:// on a trusted network.") from None
            detail = "connection refused" if "refused" in text.lower() else excerpt(text or type(exc).__name__)
            raise _Retryable(url, f"connection failed: {detail}") from None
        except httpx.TimeoutException:
            raise _Retryable(url, f"no answer within {self.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _Retryable(url, f"{type(exc).__name__}: {excerpt(str(exc))}") from None
        finally:
            with self._lock:
                self._in_flight -= 1
        body = excerpt(response.content, [self.key])
        status = response.status_code
        with_body = f" with body {body!r}" if body else " with an empty body"
        if status in RETRY_STATUSES:
            raise _Retryable(url, f"HTTP {status}{with_body}", _retry_after(response.headers.get("Retry-After")),
                             status)
        if status >= 300:
            fix = (self.fix_for_status(status, body) if self.fix_for_status else None) \
                or _status_fix(status, bool(self.key), response.headers.get("Location"))
            raise RemoteError(f"{self.what} at {url}{label} answered HTTP {status}{with_body}. Fix: {fix}", status)
        try:
            return response.json()
        except ValueError:
            raise RemoteError(f"{self.what} at {url}{label} answered with a body that is not JSON: {body!r}. Fix: "
                              "check that the URL points at the API (for example the base URL without a path)."
                              ) from None

    # -- many requests -------------------------------------------------------------------------------
    def map(self, fn: Callable[[T], R], items: Sequence[T], on_done: Callable[[int], None] | None = None) -> list[R]:
        """``[fn(x) for x in items]`` with at most ``concurrency`` calls in flight, results in input order.

        ``fn`` usually makes one request through this pool. The first exception
        cancels the calls not yet started and is raised once the running ones end
        (their results are dropped; a caller that caches per item keeps what
        finished before). ``on_done(i)`` is called after item i completes.
        """
        if self.concurrency == 1 or len(items) <= 1:
            out = []
            for i, x in enumerate(items):
                out.append(fn(x))
                if on_done:
                    on_done(i)
            return out
        results: list[Any] = [None] * len(items)
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)),
                                thread_name_prefix="rmgap-http") as pool:
            futures: dict[Future, int] = {pool.submit(fn, x): i for i, x in enumerate(items)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    if f.exception() is not None:
                        for p in pending:
                            p.cancel()
                        raise f.exception()  # type: ignore[misc]
                    results[futures[f]] = f.result()
                    if on_done:
                        on_done(futures[f])
        return results


def _unreachable_fix(reason: str, where: str) -> str:
    if reason.startswith("connection failed"):
        return f"is the server running at {where}? Start it, or correct the host and port."
    if reason.startswith("no answer within"):
        return ("check the server's log; if one request legitimately takes this long, send smaller batches "
                "(--rm-batch-size).")
    if reason.startswith("HTTP 429"):
        return "the server is rate limiting: lower --rm-concurrency, or retry later."
    return "the server is overloaded or failing; check its log, lower --rm-concurrency, or retry later."


def _status_fix(status: int, has_key: bool, location: str | None = None) -> str:
    if 300 <= status < 400:
        where = f" ({location})" if location else ""
        return (f"use the final URL{where} in the spec; redirects are not followed, so the request and the API "
                "key go only where you say.")
    if status in (401, 403):
        return ("the API key was refused: check RMGAP_API_KEY (or OPENAI_API_KEY)." if has_key
                else "the server wants an API key: set RMGAP_API_KEY (or OPENAI_API_KEY).")
    if status == 404:
        return "check the base URL and the model name (--rm-api-model); the path was not found."
    if status == 413:
        return "the request is too large: send fewer pairs per request (--rm-batch-size)."
    if status < 500:
        return "the server rejected the request; the body above says why."
    return "the server failed on this request; check its log."
