"""``http://HOST:PORT/PATH`` and ``https://...``: a reward model behind an HTTP endpoint.

Each batch is one POST of ``{"prompts": [...], "responses": [...]}`` (parallel
lists, JSON); the server answers 200 with ``{"scores": [float, ...]}``, one per
pair in order, ``null`` meaning NaN (an invalid score that counts as wrong).
Like ``python:`` scorers, the contract is checked on every batch, so a broken
server fails with the URL, the batch and the value that broke it. Only the
standard library is used. docs/scoring.md ("Remote reward models") has the
protocol and a minimal server.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

import numpy as np

from ..errors import ScorerError
from .base import ScorerOptions, ScoreStats

DEFAULT_BATCH = 32  # pairs per request; batch_size changes it
# Per request: a large batch on a busy GPU server can take minutes, but a hung
# server must still fail the run rather than block CI forever.
REQUEST_TIMEOUT_S = 300.0
MAX_ATTEMPTS = 3  # connection errors, timeouts and RETRY_STATUSES are retried
RETRY_DELAYS = (0.5, 1.0)  # seconds to wait before attempts 2 and 3 (exponential)
RETRY_STATUSES = frozenset({429, 502, 503, 504})  # overloaded / restarting / behind a gateway
TOKEN_ENV = "RMGAP_REMOTE_TOKEN"  # sent as "Authorization: Bearer <token>" when set
BODY_EXCERPT = 200  # characters of an error body quoted in messages


class RemoteScorer:
    """Scores pairs by POSTing batches to a URL. Constructing it never contacts the server."""

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        # build_scorer split the URL at its first colon; the spec is the URL itself.
        self.spec, self.options = spec, options
        self.url = spec.strip()
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ScorerError(f"Scorer spec {spec!r} is not a usable URL. Fix: write the full endpoint, "
                              "e.g. http://127.0.0.1:8000/score or https://rm.example.com/score.")
        if parts.username is not None or parts.password is not None:
            raise ScorerError(f"Scorer spec {spec!r} carries credentials in the URL, which would end up in reports "
                              f"and logs. Fix: drop them from the URL and set {TOKEN_ENV} instead "
                              "(sent as a bearer token).")
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise ScorerError(f"Scorer spec {spec!r} has an invalid port. Fix: write HOST:PORT with a number, "
                              "e.g. http://127.0.0.1:8000/score.") from None
        if options.batch_size is not None and options.batch_size < 1:
            raise ScorerError(f"Scorer {spec}: batch_size must be at least 1, got {options.batch_size}.")
        self.batch_size = options.batch_size or DEFAULT_BATCH
        # The model behind a URL can change without the URL changing: cache only under a named version.
        self.fingerprint = f"remote:{self.url}:version={options.version}" if options.version else None
        self.stats = ScoreStats(model_loaded=True)
        # No redirects: urllib would turn a redirected POST into a bodiless GET and forward the
        # Authorization header to wherever the Location points.
        self._opener = urllib.request.build_opener(_NoRedirect)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        if len(prompts) != len(responses):
            raise ScorerError(f"Scorer {self.spec!r} got {len(prompts)} prompts but {len(responses)} responses; "
                              "they must be parallel lists.")
        out = np.empty(len(prompts), dtype=np.float64)
        n_batches = max(1, math.ceil(len(prompts) / self.batch_size))
        token = os.environ.get(TOKEN_ENV) or None
        for b, start in enumerate(range(0, len(prompts), self.batch_size)):
            ps = [str(p) for p in prompts[start:start + self.batch_size]]
            rs = [str(r) for r in responses[start:start + self.batch_size]]
            out[start:start + len(ps)] = self._batch(ps, rs, b + 1, n_batches, token)
        self.stats.pairs_scored += len(prompts)
        return out

    # -- one batch -------------------------------------------------------------------------------

    def _batch(self, ps: list[str], rs: list[str], b: int, n: int, token: str | None) -> np.ndarray:
        where = f"{self.url} (batch {b} of {n}, {len(ps)} pairs)"
        body = self._post(json.dumps({"prompts": ps, "responses": rs}).encode("utf-8"), where, token)
        return self._parse(body, len(ps), where, token)

    def _post(self, data: bytes, where: str, token: str | None) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        failure = ""
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                time.sleep(RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)])
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with self._opener.open(request, timeout=REQUEST_TIMEOUT_S) as response:
                    return response.read()
            except urllib.error.HTTPError as exc:
                excerpt = _excerpt(_read_quietly(exc), token)
                if exc.code in RETRY_STATUSES:
                    failure = f"HTTP {exc.code}{_body_note(excerpt)}"
                    continue
                raise ScorerError(f"The reward-model server {where} answered HTTP {exc.code} "
                                  f"{exc.reason or ''}{_body_note(excerpt)}. "
                                  f"Fix: {_status_fix(exc.code, exc.headers, token)}") from None
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, ssl.SSLError):  # a certificate problem does not go away on retry
                    raise ScorerError(f"The reward-model server {where} failed the TLS handshake: {reason}. "
                                      "Fix: give the server a certificate this machine trusts (or point "
                                      "SSL_CERT_FILE at its CA bundle), or use http:// on a trusted network."
                                      ) from None
                failure = _describe(reason)
            except (TimeoutError, OSError, http.client.HTTPException) as exc:  # while reading the answer
                failure = _describe(exc)
        raise ScorerError(f"The reward-model server {where} could not be reached: {failure} "
                          f"(after {MAX_ATTEMPTS} attempts). Fix: {_unreachable_fix(failure, self.url)}")

    def _parse(self, body: bytes, n_pairs: int, where: str, token: str | None) -> np.ndarray:
        fix_shape = 'Fix: the server must answer {"scores": [float, ...]}, one per pair, in order.'
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ScorerError(f"The reward-model server {where} answered with a body that is not JSON: "
                              f"{_excerpt(body, token)!r}. {fix_shape}") from None
        if not isinstance(payload, dict) or "scores" not in payload:
            got = (f"an object with keys {sorted(payload)[:10]}" if isinstance(payload, dict)
                   else f"a JSON {type(payload).__name__}")
            raise ScorerError(f'The reward-model server {where} answered without "scores" ({got}). {fix_shape}')
        scores = payload["scores"]
        if not isinstance(scores, list):
            raise ScorerError(f'The reward-model server {where} answered "scores" as a JSON {type(scores).__name__}, '
                              f"not a list. {fix_shape}")
        if len(scores) != n_pairs:
            raise ScorerError(f"The reward-model server {where} returned {len(scores)} scores for {n_pairs} pairs. "
                              "Fix: return exactly one score per (prompt, response) pair, in order.")
        arr = np.empty(n_pairs, dtype=np.float64)
        for i, v in enumerate(scores):
            if v is None:
                arr[i] = np.nan  # null: an invalid score, counted as a wrong answer
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                arr[i] = float(v)
            else:
                raise ScorerError(f"The reward-model server {where} returned a non-numeric score {_clip(repr(v))} at position "
                                  f"{i}. Fix: return numbers (null is allowed and counts as a wrong answer).")
        return arr


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        return None  # urllib then raises HTTPError for the 3xx, reported with its Location


def _read_quietly(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read() or b""
    except Exception:  # the body of an error answer is only decoration
        return b""


def _excerpt(body: bytes, token: str | None) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())  # one paragraph
    if token:
        text = text.replace(token, "***")  # a server echoing the request must not leak the token
    return text[:BODY_EXCERPT] + ("..." if len(text) > BODY_EXCERPT else "")


def _clip(text: str, limit: int = 80) -> str:
    """A quoted value cut to an excerpt: a server that returns vectors must not flood every message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _body_note(excerpt: str) -> str:
    return f" with body {excerpt!r}" if excerpt else " with an empty body"


def _describe(exc: BaseException | str) -> str:
    if isinstance(exc, str):
        return exc
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within {REQUEST_TIMEOUT_S:g} s"
    if isinstance(exc, OSError) and exc.__class__.__name__ == "gaierror":
        return f"the host name could not be resolved ({exc.strerror or exc})"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def _unreachable_fix(failure: str, url: str) -> str:
    if failure.startswith("connection refused"):
        return f"is the server running at {url}? Start it, or correct the host and port in the spec."
    if failure.startswith("no answer within"):
        return ("check the server's log; if one batch legitimately takes this long, lower the batch size "
                "(--rm-batch-size / batch_size).")
    if failure.startswith("HTTP"):
        return ("the server is overloaded or restarting; retry later, lower the batch size "
                "(--rm-batch-size / batch_size), or check the server's log.")
    if failure.startswith("the host name"):
        return "check the host name in the spec and this machine's DNS."
    return f"is the server running at {url} and reachable from this machine? Check its log."


def _status_fix(code: int, headers, token: str | None) -> str:  # noqa: ANN001 - http.client.HTTPMessage
    if 300 <= code < 400:
        location = headers.get("Location") if headers is not None else None
        return (f"use the final URL{f' ({location})' if location else ''} in the spec; redirects are not "
                "followed, so that the request body and token go only where the spec says.")
    if code in (401, 403):
        return (f"check the token in {TOKEN_ENV} (it is sent as a bearer token)." if token
                else f"set {TOKEN_ENV} to the server's token (sent as 'Authorization: Bearer ...').")
    if code == 404:
        return "check the path in the URL (e.g. /score)."
    if code == 405:
        return "the endpoint must accept POST; check the path in the URL."
    if code == 413:
        return "lower the batch size (--rm-batch-size / batch_size) or raise the server's request limit."
    if code < 500:
        return ('the server must accept a JSON POST {"prompts": [...], "responses": [...]} '
                "(see docs/scoring.md, Remote reward models).")
    return "the server failed on this batch; check its log."
