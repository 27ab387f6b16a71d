"""``http://HOST:PORT/PATH`` and ``https://...``: a reward model behind an HTTP endpoint.

Each batch is one POST of ``{"prompts": [...], "responses": [...]}`` (parallel
lists, JSON); the server answers 200 with ``{"scores": [float, ...]}``, one per
pair in order, ``null`` meaning NaN (an invalid score that counts as wrong).
Like ``python:`` scorers, the contract is checked on every batch, so a broken
server fails with the URL, the batch and the value that broke it.

Transport is the shared ``_http.HttpPool``: retries with backoff, several
endpoints (comma-separated, tried round-robin with failover) and, with
``concurrency`` (``--rm-concurrency``), several batches in flight. The default
is one batch at a time: servers of this protocol are often single-threaded
adapters around one model. docs/scoring.md ("Remote reward models") has the
protocol and a minimal server.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Sequence

import numpy as np

from ..errors import ScorerError
from ._http import HttpPool, api_key, excerpt
from .base import ScorerOptions, ScoreStats

DEFAULT_BATCH = 32  # pairs per request; batch_size changes it
# Per request: a large batch on a busy GPU server can take minutes, but a hung
# server must still fail the run rather than block CI forever.
REQUEST_TIMEOUT_S = 300.0
MAX_ATTEMPTS = 3  # connection errors, timeouts and _http.RETRY_STATUSES are retried
RETRY_DELAYS = (0.5, 1.0)  # backoff bounds in seconds: first wait up to 0.5, later ones up to 1 (jittered)
DEFAULT_CONCURRENCY = 1  # batches in flight unless --rm-concurrency says otherwise (see the module doc)
TOKEN_ENV = "RMGAP_REMOTE_TOKEN"  # sent as "Authorization: Bearer <token>" when set


class RemoteScorer:
    """Scores pairs by POSTing batches to a URL. Constructing it never contacts the server."""

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        # build_scorer split the URL at its first colon; the spec is the URL itself (or several, comma-separated).
        self.spec, self.options = spec, options
        self.urls = [_check_url(u.strip(), spec) for u in spec.split(",") if u.strip()]
        self.url = self.urls[0] if self.urls else spec.strip()
        if not self.urls:
            raise ScorerError(f"Scorer spec {spec!r} is not a usable URL. Fix: write the full endpoint, "
                              "e.g. http://127.0.0.1:8000/score.")
        if options.batch_size is not None and options.batch_size < 1:
            raise ScorerError(f"Scorer {spec}: batch_size must be at least 1, got {options.batch_size}.")
        self.batch_size = options.batch_size or DEFAULT_BATCH
        self.concurrency = options.concurrency or DEFAULT_CONCURRENCY
        if self.concurrency < 1:
            raise ScorerError(f"Scorer {spec}: concurrency must be at least 1, got {self.concurrency}. "
                              "Fix: pass --rm-concurrency N with N >= 1.")
        # The model behind a URL can change without the URL changing: cache only under a named version.
        self.fingerprint = f"remote:{self.url}:version={options.version}" if options.version else None
        self.stats = ScoreStats(model_loaded=True)
        self._pool: HttpPool | None = None

    def _get_pool(self) -> HttpPool:
        # Built on first use, so the token and timeouts are read when the run starts.
        if self._pool is None:
            self._pool = HttpPool(self.urls, concurrency=self.concurrency, timeout_s=REQUEST_TIMEOUT_S,
                                  max_attempts=MAX_ATTEMPTS, key=api_key((TOKEN_ENV,)),
                                  what="The reward-model server", fix_for_status=_status_fix,
                                  backoff_s=RETRY_DELAYS)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        if len(prompts) != len(responses):
            raise ScorerError(f"Scorer {self.spec!r} got {len(prompts)} prompts but {len(responses)} responses; "
                              "they must be parallel lists.")
        n_batches = max(1, math.ceil(len(prompts) / self.batch_size))
        starts = list(range(0, len(prompts), self.batch_size))
        pool = self._get_pool()

        def one(b: int) -> np.ndarray:
            start = starts[b]
            ps = [str(p) for p in prompts[start:start + self.batch_size]]
            rs = [str(r) for r in responses[start:start + self.batch_size]]
            where = f" (batch {b + 1} of {n_batches}, {len(ps)} pairs)"
            body = pool.post("", {"prompts": ps, "responses": rs}, label=where)
            return _parse(body, len(ps), f"{self.urls[0] if len(self.urls) == 1 else self.spec}{where}")

        out = np.concatenate(pool.map(one, list(range(len(starts))))) if starts else np.zeros(0)
        self.stats.pairs_scored += len(prompts)
        return out.astype(np.float64)


def _check_url(url: str, spec: str) -> str:
    parts = urllib.parse.urlsplit(url)
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
    return url


def _parse(payload: object, n_pairs: int, where: str) -> np.ndarray:
    fix_shape = 'Fix: the server must answer {"scores": [float, ...]}, one per pair, in order.'
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
            raise ScorerError(f"The reward-model server {where} returned a non-numeric score {excerpt(repr(v), limit=80)} at position "
                              f"{i}. Fix: return numbers (null is allowed and counts as a wrong answer).")
    return arr


def _status_fix(code: int, body: str) -> str | None:
    if code in (401, 403):
        return (f"check the token in {TOKEN_ENV} (it is sent as 'Authorization: Bearer ...'); set it if the "
                "server wants one.")
    if code == 404:
        return "check the path in the URL (e.g. /score)."
    if code == 405:
        return "the endpoint must accept POST; check the path in the URL."
    if code == 413:
        return "lower the batch size (--rm-batch-size / batch_size) or raise the server's request limit."
    if 400 <= code < 500:
        return ('the server must accept a JSON POST {"prompts": [...], "responses": [...]} '
                "(see docs/scoring.md, Remote reward models).")
    return None  # 3xx and 5xx: the pool's own advice
