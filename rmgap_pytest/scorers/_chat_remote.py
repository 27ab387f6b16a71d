"""A judge model behind an OpenAI-compatible chat-completions API (vLLM, SGLang, llama.cpp, OpenAI).

``POST {base}/chat/completions`` with ``temperature: 0``, ``seed`` and, when
log-probs are needed, ``logprobs: true, top_logprobs: 20``; the model name is
``--rm-api-model`` or else the one name ``GET {base}/models`` lists. Requests
run through ``_http.HttpPool`` (bounded concurrency, retries with backoff on
429/5xx honouring ``Retry-After``, replicas). The API key comes only from
``RMGAP_API_KEY`` / ``OPENAI_API_KEY`` and is sent as a bearer token; error
messages mask it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ScorerError
from ._chat import TOP_LOGPROBS, AnswerProb, ChatRequest, Completion, Messages, answer_mass
from ._http import DEFAULT_CONCURRENCY, HttpPool, RemoteError, api_key, excerpt, split_urls
from .base import ScorerOptions

__all__ = ["RemoteChat"]

_LOGPROB_FIX = ("this server did not return token log-probs, which the verifier and --rm-judge-score=expected "
                "need. vLLM and SGLang return them (vLLM: keep --max-logprobs at 20 or more), llama.cpp's server "
                "too; some hosted APIs do not. Fix: use such a server, or judge: with the plain rating "
                "(--rm-judge-score=rating).")


class RemoteChat:
    """``ChatBackend`` over an OpenAI-compatible server; nothing is sent before the first question."""

    def __init__(self, target: str, options: ScorerOptions) -> None:
        self.urls = split_urls(target)
        self.options = options
        concurrency = options.concurrency if options.concurrency is not None else DEFAULT_CONCURRENCY
        if concurrency < 1:
            raise ScorerError(f"concurrency must be at least 1, got {concurrency}. Fix: pass --rm-concurrency N "
                              "with N >= 1 (requests in flight).")
        self.concurrency = concurrency
        self.what = "the judge server" + (f" ({len(self.urls)} replicas)" if len(self.urls) > 1 else "")
        self.ten_is_one_token: bool | None = None  # unknown: the server's vocabulary is not visible
        self.notes: list[str] = []
        self._model = options.api_model
        self._pool: HttpPool | None = None
        self._lock = threading.Lock()

    def identity(self) -> dict[str, object]:
        # A named model is the same model wherever it is served; without a name, the URL is all we know.
        # Neither contacts the server, so a fully cached rerun sends no request at all.
        return {"api_model": self.options.api_model} if self.options.api_model else {"urls": self.urls}

    @property
    def pool(self) -> HttpPool:
        with self._lock:
            if self._pool is None:
                self._pool = HttpPool(self.urls, concurrency=self.concurrency, key=api_key(), what=self.what,
                                      fix_for_status=self._fix)
            return self._pool

    @property
    def stats(self) -> Any:
        return self.pool.stats

    def _fix(self, status: int, body: str) -> str | None:
        if status == 404:
            return ("check the base URL, which must be the API root ending in /v1 (e.g. http://127.0.0.1:8000/v1), "
                    "and the model name (--rm-api-model; GET <base>/models lists the names the server knows).")
        if status == 400 and "logprob" in body.lower():
            return _LOGPROB_FIX
        return None

    def model(self) -> str:
        """The model name to send: ``--rm-api-model``, or the only one the server lists."""
        if self._model is None:
            listing = self.pool.get("/models")
            data = listing.get("data") if isinstance(listing, dict) else None
            names = [m["id"] for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
            if len(names) != 1:
                shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
                raise RemoteError(f"{self.what} at {self.urls[0]} lists {len(names)} models"
                                  + (f" ({shown})" if names else "") + ", so which one judges is not clear. "
                                  "Fix: name it with --rm-api-model NAME (ini rm_api_model, env RMGAP_API_MODEL).")
            self._model = names[0]
            self.notes.append(f"judge model {self._model!r} (the one model the server lists)")
        return self._model

    def complete(self, requests: Sequence[ChatRequest], on_done: Callable[[int], None] | None = None
                 ) -> list[Completion]:
        if not requests:
            return []
        model = self.model()
        return self.pool.map(lambda r: self._one(model, r), list(requests), on_done)

    def _one(self, model: str, request: ChatRequest) -> Completion:
        payload: dict[str, Any] = {"model": model, "messages": request.messages, "temperature": 0,
                                   "max_tokens": request.max_tokens, "seed": self.options.seed, "n": 1}
        if request.logprobs:
            payload.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        body = self.pool.post("/chat/completions", payload)
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise RemoteError(f"{self.what} at {self.urls[0]} answered without choices[0].message.content ({exc}): "
                              f"{excerpt(str(body), [self.pool.key])!r}. Fix: point the spec at an "
                              "OpenAI-compatible chat-completions API (the base URL ending in /v1).") from None
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        out = Completion(text, "length" if choice.get("finish_reason") == "length" else "stop",
                         _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))
        if request.logprobs:
            out.tokens, out.tops = self._logprobs(choice)
        return out

    def _logprobs(self, choice: dict[str, Any]) -> tuple[list[str], list[dict[str, float]]]:
        content = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
        if not isinstance(content, list) or not content:
            raise RemoteError(f"{self.what} at {self.urls[0]}: {_LOGPROB_FIX}")
        tokens, tops = [], []
        try:
            for entry in content:
                top = {t["token"]: float(t["logprob"]) for t in entry.get("top_logprobs") or []}
                top.setdefault(entry["token"], float(entry["logprob"]))
                tokens.append(entry["token"])
                tops.append(top)
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteError(f"{self.what} at {self.urls[0]} returned malformed logprobs ({exc}). Fix: the server "
                              "must follow the chat-completions logprobs shape (content[].token, .logprob, "
                              ".top_logprobs[]).") from None
        return tokens, tops

    def answer_logprob(self, conversations: Sequence[Messages], answer: str) -> list[AnswerProb]:
        """log p(first token reads ``answer``) from the top-20 list; below the list's end it is a bound."""
        requests = [ChatRequest(m, max_tokens=1, logprobs=True) for m in conversations]
        out = []
        for c in self.complete(requests):
            top = c.tops[0] if c.tops else {}
            mass = answer_mass(top, answer)
            exact = mass is not None
            # Every token missing from the list is less likely than its last entry: an upper bound.
            value = mass if exact else min(top.values())
            out.append(AnswerProb(value, exact, (c.tokens or [""])[0], c.prompt_tokens, c.completion_tokens))
        return out


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
