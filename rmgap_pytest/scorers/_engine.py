"""What the serving-engine kinds (``vllm:``, ``sglang:``) share: replicas, identity, rendering, batching.

A spec names one or more base URLs of replicas of one model
(``vllm:http://a:8000,http://b:8000``). The scorer

- learns which model the servers serve (``_served``, per engine) the first time it
  is needed: for the fingerprint, or at the first ``score``. Every replica that
  answers must report the same model; a note in the report says what they claimed;
- renders pairs on the client when ``tokenizer`` (``--rm-tokenizer``) is set and
  sends token ids, else asks the server to apply its chat template (vLLM only);
- cuts the pairs into requests of at most ``batch_size`` pairs (and
  ``TOKENS_PER_REQUEST`` tokens), small enough that ``concurrency`` requests are in
  flight even for a short call; each request renders its own pairs, so rendering
  overlaps with waiting; requests go through ``_http.HttpPool`` (retries, replica
  failover, one clear error when no replica answers);
- checks every answer: one finite number per pair (or the ``label`` column of a
  multi-label head), the right count, nothing else.

Caching: scores are cached under ``version`` (``--rm-scorer-version``) when the
user names one; otherwise under what the servers report about their model
(``ServedModel.facts``), which changes with the model name, path, revision
information and engine version, but not with weights replaced in place under
the same name (docs/serving.md says when to name a version).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ScorerError, did_you_mean
from ._http import DEFAULT_CONCURRENCY, HttpPool, RemoteError, api_key, excerpt, split_urls
from ._render import ClientRenderer
from .base import ScorerOptions, ScoreStats

__all__ = ["EngineScorer", "ServedModel"]

PROTOCOL_VERSION = 1  # bump when a change here changes the scores a server is asked for
DEFAULT_BATCH = 32  # pairs per request at most; the engine batches concurrent requests itself
TOKENS_PER_REQUEST = 32_768  # keeps request bodies small (a few hundred KB of token ids)


@dataclass(frozen=True)
class ServedModel:
    """What one replica says it serves."""

    names: tuple[str, ...]  # the names a request may use ("model"); the first is the default
    facts: dict[str, Any]  # everything reported that identifies the model (goes into the fingerprint)
    max_model_len: int | None = None
    summary: str = ""  # one line for the report

    def key(self) -> str:
        return json.dumps(self.facts, sort_keys=True, default=str)


class EngineScorer:
    """Base of the engine kinds; subclasses set ``kind``/``engine``/``path`` and the engine's JSON."""

    kind = "engine"
    engine = "the server"
    path = "/"
    server_side_template = False  # whether the engine can apply the chat template itself

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        self.spec, self.options = spec, options
        self.urls = split_urls(target)
        self.stats = ScoreStats(model_loaded=True)
        for name in ("batch_size", "concurrency", "label"):
            value = getattr(options, name)
            if value is not None and value < (0 if name == "label" else 1):
                raise ScorerError(f"Scorer {spec}: {name} must be at least {0 if name == 'label' else 1}, "
                                  f"got {value}.")
        self.batch_size = options.batch_size or DEFAULT_BATCH
        self.concurrency = options.concurrency or DEFAULT_CONCURRENCY
        self.renderer = ClientRenderer(options.tokenizer, trust_remote_code=options.trust_remote_code) \
            if options.tokenizer else None
        if self.renderer is None and not self.server_side_template:
            raise ScorerError(self._needs_tokenizer())
        if self.renderer is not None:
            self._check_label(self.renderer.num_labels, str(self.renderer.path))
        self.pool = HttpPool(self.urls, concurrency=self.concurrency, key=api_key(), what=f"The {self.engine} server",
                             fix_for_status=self._fix_for_status)
        self._lock = threading.Lock()
        self._served_model: ServedModel | None = None
        self._down: list[str] = []  # replicas that did not answer the identity questions
        self._fingerprint: str | None = None
        self._stats_note: int | None = None

    # -- per engine ------------------------------------------------------------------------------------
    def _needs_tokenizer(self) -> str:
        return f"{self.spec}: this engine needs --rm-tokenizer=DIR."

    def _served(self) -> list[tuple[str, ServedModel | RemoteError]]:
        """Ask every replica what it serves."""
        raise NotImplementedError

    def _payload_ids(self, model: str, ids: list[list[int]]) -> dict[str, Any]:
        raise NotImplementedError

    def _payload_chat(self, model: str, prompt: str, response: str) -> dict[str, Any]:
        raise NotImplementedError

    def _outputs(self, answer: Any, n: int, where: str) -> list[Any]:
        """The per-input outputs of one answer, in request order (count and shape checked)."""
        raise NotImplementedError

    def _fix_for_status(self, status: int, body: str) -> str | None:
        return None

    def _truncated(self, answer: Any, n_pairs: int) -> int:
        """Pairs of one request that the server truncated, where its answer tells (server-side rendering)."""
        return 0

    # -- identity ---------------------------------------------------------------------------------------
    def served_model(self) -> ServedModel:
        """The model the replicas serve (asked once); RemoteError when none answers or they disagree."""
        with self._lock:
            if self._served_model is None:
                self._served_model = self._agree(self._served())
                self.stats.notes.append(self._identity_note(self._served_model))
            return self._served_model

    def _agree(self, results: list[tuple[str, ServedModel | RemoteError]]) -> ServedModel:
        ok = [(url, s) for url, s in results if isinstance(s, ServedModel)]
        if not ok:
            errors = [e for _, e in results if isinstance(e, RemoteError)]
            if len(errors) == 1:
                raise errors[0]
            raise RemoteError(f"No replica of {self.spec} answered: " + "; ".join(str(e) for e in errors))
        if len({s.key() for _, s in ok}) > 1:
            seen = "; ".join(f"{url} serves {s.summary}" for url, s in ok)
            raise RemoteError(f"The replicas in {self.spec} serve different models ({seen}). Fix: list only "
                              "replicas of one model, or score each model in its own run.")
        served = ok[0][1]
        wanted = self.options.api_model
        if wanted is not None and wanted not in served.names:
            raise RemoteError(f"{self.spec}: --rm-api-model {wanted!r} is not served; the server serves "
                              f"{', '.join(map(repr, served.names))}.{did_you_mean(wanted, served.names)} Fix: "
                              "pass one of those names, or leave --rm-api-model unset.")
        self._down = [url for url, s in results if not isinstance(s, ServedModel)]
        return served

    def _identity_note(self, served: ServedModel) -> str:
        replicas = (f"{len(self.urls) - len(self._down)} of {len(self.urls)} replicas answered"
                    if len(self.urls) > 1 else f"at {self.urls[0]}")
        mode = (f"pairs rendered on the client with {self.renderer.path}" if self.renderer is not None
                else "pairs rendered by the server's chat template")
        cache = (f"scores cached under --rm-scorer-version {self.options.version!r}" if self.options.version
                 else "scores cached under this reported identity")
        return f"{self.kind}: the server claims to serve {served.summary}; {replicas}; {mode}; {cache}"

    @property
    def model_name(self) -> str:
        return self.options.api_model or self.served_model().names[0]

    @property
    def fingerprint(self) -> str:
        """Everything that decides the scores; contacts the servers unless a version is named."""
        if self._fingerprint is None:
            doc: dict[str, Any] = {
                "kind": self.kind, "protocol": PROTOCOL_VERSION, "api_model": self.options.api_model,
                "label": self.options.label, "max_length": self.options.max_length,
                "rendering": self.renderer.identity if self.renderer is not None else "server-chat-template"}
            if self.options.version:
                doc["version"], name = self.options.version, self.options.version
            else:
                served = self.served_model()
                doc["served"], name = served.facts, served.names[0]
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
            self._fingerprint = f"{self.kind}:{name}:{digest}"
        return self._fingerprint

    # -- scoring ----------------------------------------------------------------------------------------
    def close(self) -> None:
        self.pool.close()

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        if len(prompts) != len(responses):
            raise ScorerError(f"Scorer {self.spec!r} got {len(prompts)} prompts but {len(responses)} responses; "
                              "they must be parallel lists.")
        n = len(prompts)
        if not n:
            return np.zeros(0, dtype=np.float64)
        model = self.model_name  # asks the servers once: identity, name, length limit
        max_length = self._max_length() if self.renderer is not None else None
        # Requests small enough that `concurrency` of them are in flight even for a short call. Each
        # request renders its own pairs, so rendering overlaps with the other requests' waiting.
        per = 1 if self.renderer is None else min(self.batch_size, max(1, math.ceil(n / self.concurrency)))
        groups = [list(range(i, min(i + per, n))) for i in range(0, n, per)]
        out = np.empty(n, dtype=np.float64)

        def send(g: int) -> None:
            idx = groups[g]
            if self.renderer is None:  # the engine's chat API takes one conversation per request
                self._request(idx, self._payload_chat(model, str(prompts[idx[0]]), str(responses[idx[0]])), n, out)
                return
            encs = self.renderer.render([prompts[i] for i in idx], [responses[i] for i in idx], max_length)
            with self._lock:
                self.stats.truncated += sum(e.truncated for e in encs)
            for part in _by_tokens(list(zip(idx, encs))):
                self._request([i for i, _ in part], self._payload_ids(model, [e.ids for _, e in part]), n, out)

        self.pool.map(send, list(range(len(groups))))
        self.stats.pairs_scored += n
        self._note_stats()
        return out

    def _request(self, idx: list[int], payload: dict[str, Any], n: int, out: np.ndarray) -> None:
        """POST one request for pairs ``idx`` and write their scores into ``out``."""
        label = f" (pair {idx[0] + 1} of {n})" if len(idx) == 1 else f" (pairs {idx[0] + 1}-{idx[-1] + 1} of {n})"
        answer = self.pool.post(self.path, payload, label=label)
        where = f"{self.spec}{label}"
        raw = self._outputs(answer, len(idx), where)
        out[idx] = [self._value(v, where, k, answer) for k, v in enumerate(raw)]
        cut = self._truncated(answer, len(idx))
        if cut:
            with self._lock:
                self.stats.truncated += cut

    def _max_length(self) -> int | None:
        assert self.renderer is not None
        limit = self.renderer.max_length(self.options.max_length)
        served = self.served_model().max_model_len
        if served is not None and (limit is None or served < limit):
            note = (f"{self.kind}: the server accepts at most {served} tokens per input (max_model_len), fewer than "
                    f"the model's own limit {limit}: longer pairs are truncated to {served} tokens, where a local "
                    "run would keep more")
            if note not in self.stats.notes:
                self.stats.notes.append(note)
            return served
        return limit

    def _value(self, v: Any, where: str, k: int, answer: Any) -> float:
        """One pair's score from its output: a number, or a vector whose ``label`` entry is the reward."""
        shown = excerpt(json.dumps(v, default=str), limit=120)
        if isinstance(v, list) and len(v) == 1 and not isinstance(v[0], list):
            v = v[0]
        elif isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
            if self.options.label is None:
                raise RemoteError(f"The {self.engine} server {where} answered a vector of {len(v)} values for "
                                  f"input {k} ({shown}), not one reward. Fix: pass --rm-label K to score with "
                                  "entry K of a multi-label head, or serve a reward model with one output.")
            if self.options.label >= len(v):
                raise RemoteError(f"The {self.engine} server {where} answered {len(v)} values for input {k}, but "
                                  f"--rm-label is {self.options.label}. Fix: pass a label below {len(v)}.")
            v = v[self.options.label]
        elif isinstance(v, list):
            raise RemoteError(f"The {self.engine} server {where} answered {shown} for input {k}: one value per "
                              "token, or nested lists, not one reward per sequence. Fix: serve the model for "
                              "sequence classification (see docs/serving.md), not token classification.")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise RemoteError(f"The {self.engine} server {where} answered a non-numeric score {shown} for input {k} "
                              f"(answer: {excerpt(json.dumps(answer, default=str))}). Fix: check that the endpoint "
                              "serves a reward model.")
        if not math.isfinite(v):
            raise RemoteError(f"The {self.engine} server {where} answered {v} for input {k}. Fix: the model "
                              "overflowed on the server; serve it in bfloat16 or float32, not float16, and check "
                              "the server log.")
        return float(v)

    def _note_stats(self) -> None:
        s = self.pool.stats
        note = (f"{self.kind}: {s.requests} HTTP requests, {s.retries} retries, {s.failovers} failovers to "
                f"another replica, at most {s.max_in_flight} in flight (concurrency {self.concurrency})")
        with self._lock:
            if self._stats_note is None:
                self._stats_note = len(self.stats.notes)
                self.stats.notes.append(note)
            else:
                self.stats.notes[self._stats_note] = note

    def _check_label(self, num_labels: int, where: str) -> None:
        label = self.options.label
        if label is None and num_labels > 1:
            raise ScorerError(f"{where}: config.json says the head has {num_labels} labels, but a reward model has "
                              f"one. Fix: pass --rm-label K to score with entry K (0..{num_labels - 1}), or serve a "
                              "single-output reward model.")
        if label is not None and label >= num_labels:
            raise ScorerError(f"{where}: --rm-label {label} but the head has {num_labels} label(s). "
                              f"Fix: pass a label between 0 and {num_labels - 1}.")


def _by_tokens(items: list[tuple[int, Any]]) -> list[list[tuple[int, Any]]]:
    """Consecutive parts of at most ``TOKENS_PER_REQUEST`` tokens (a single longer pair goes alone)."""
    parts: list[list[tuple[int, Any]]] = []
    tokens = 0
    for item in items:
        size = len(item[1].ids)
        if not parts or tokens + size > TOKENS_PER_REQUEST:
            parts.append([])
            tokens = 0
        parts[-1].append(item)
        tokens += size
    return parts
