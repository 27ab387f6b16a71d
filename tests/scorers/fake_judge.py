"""A deterministic OpenAI-compatible judge server on 127.0.0.1, for the judge scorers' tests.

It speaks ``GET /v1/models`` and ``POST /v1/chat/completions`` (with
``logprobs`` / ``top_logprobs``), reads the query and responses out of the
default judge prompts, and answers from ``quality(query, response) -> [0, 1]``:

- verifier: "YES" with probability q (``top_logprobs`` lists YES, NO and filler
  tokens; YES is left out of the list when q < ``unlisted_below``);
- judge: the rating round(1 + 9q), with log-probs spread around 1 + 9q;
- ranker: the labels sorted by q, best first (``bias_first`` moves a label to the front).

Markers in a query or response text make it misbehave: ``<junk-once>`` answers
junk until the repair turn, ``<junk-always>`` always, ``<think>`` reasons at
length before answering (cut by a small ``max_tokens``). ``script`` serves
canned (status, body, headers) answers first, e.g. a 429 with Retry-After.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

THINK_WORDS = 3000  # a reasoning block this many "tokens" long

_RESP = re.compile(r"### Response ([A-Z])\n(.*?)(?=\n\n### Response [A-Z]\n|\n\nReply with)", re.S)


def _plain(text: str) -> list:
    """Log-prob entries for text the judge is sure of (each piece its own only alternative)."""
    return [{"token": t, "logprob": 0.0, "top_logprobs": [{"token": t, "logprob": 0.0}]}
            for t in re.findall(r"\S+|\s+", text)]


def default_quality(query: str, response: str) -> float:
    import zlib

    return (zlib.crc32((query + "|" + response).encode()) % 1000) / 999


class FakeJudge:
    def __init__(self, quality: Callable[[str, str], float] = default_quality, *, models: list[str] | None = None,
                 key: str | None = None, delay: float = 0.0, no_logprobs: bool = False,
                 unlisted_below: float = 0.0, split_digits: bool = False, bias_first: str | None = None,
                 decorate: bool = False) -> None:
        self.quality, self.models, self.key, self.delay = quality, models or ["judge-1"], key, delay
        self.no_logprobs, self.unlisted_below, self.split_digits = no_logprobs, unlisted_below, split_digits
        self.bias_first, self.decorate = bias_first, decorate  # decorate: "Score: 7" in three tokens
        self.script: list[tuple[int, Any, dict]] = []
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, the body waits for the client's
            # delayed ACK (40 ms on Linux), which would be measured as client overhead.
            disable_nagle_algorithm = True

            def _send(self, status: int, body: Any, headers: dict | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                judge._log(self, None)
                if not judge._authorized(self):
                    return
                if self.path.rstrip("/") != "/v1/models":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in judge.models]})

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                payload = json.loads(raw)
                judge._log(self, payload)
                with judge.lock:
                    judge.in_flight += 1
                    judge.max_in_flight = max(judge.max_in_flight, judge.in_flight)
                    canned = judge.script.pop(0) if judge.script else None
                try:
                    time.sleep(judge.delay)
                    if canned:
                        return self._send(*canned)
                    if not judge._authorized(self):
                        return
                    if self.path != "/v1/chat/completions":
                        return self._send(404, {"error": {"message": f"no route {self.path}"}})
                    if payload.get("model") not in judge.models:
                        return self._send(404, {"error": {"message": f"The model `{payload.get('model')}` does "
                                                          "not exist."}})
                    self._send(200, judge.answer(payload))
                finally:
                    with judge.lock:
                        judge.in_flight -= 1

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def canned(self, status: int, body: Any = b"", headers: dict | None = None, times: int = 1) -> None:
        self.script.extend([(status, body, headers or {})] * times)

    def _log(self, handler: BaseHTTPRequestHandler, payload: Any) -> None:
        with self.lock:
            self.requests.append({"path": handler.path, "headers": dict(handler.headers), "payload": payload,
                                  "at": time.monotonic()})

    def _authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.key is None or handler.headers.get("Authorization") == f"Bearer {self.key}":
            return True
        sent = handler.headers.get("Authorization", "")
        handler._send(401, {"error": {"message": f"Incorrect API key provided: {sent}"}})  # echoes, as some do
        return False

    @property
    def completions(self) -> list[dict]:
        return [r["payload"] for r in self.requests if r["path"].endswith("/chat/completions")]

    # -- the judge ---------------------------------------------------------------------------------
    def answer(self, payload: dict) -> dict:
        messages = payload["messages"]
        question = next(m["content"] for m in messages if m["role"] == "user")
        repaired = sum(m["role"] == "user" for m in messages) > 1
        query = question.split("### Query\n", 1)[1].split("\n\n### Response", 1)[0]
        if "Answer with one word: YES or NO" in question:
            text, tokens = self._verify(query, question)
        elif "scale from 1 to 10" in question:
            text, tokens = self._rate(query, question)
        else:
            text, tokens = self._rank(query, question)
        verifier = "YES or NO" in question
        if not verifier and ("<junk-always>" in question or ("<junk-once>" in question and not repaired)):
            text, tokens = "I cannot decide between them.", _plain("I cannot decide between them.")
        finish = "stop"
        if "<think>" in question and not verifier:
            thought = "<think>" + " hmm" * THINK_WORDS + "</think>"
            if payload.get("max_tokens", 10 ** 9) < THINK_WORDS + 10:
                text, finish = thought[:payload["max_tokens"] * 4], "length"
                tokens = _plain(text)
            else:
                text, tokens = thought + text, _plain(thought) + tokens
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": finish, "logprobs": None}
        if payload.get("logprobs") and not self.no_logprobs and tokens is not None:
            choice["logprobs"] = {"content": tokens[:payload.get("max_tokens", len(tokens))]}
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return {"id": "cmpl-1", "object": "chat.completion", "model": payload["model"], "choices": [choice],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": max(1, len(text.split())),
                          "total_tokens": prompt_tokens + max(1, len(text.split()))}}

    def _verify(self, query: str, question: str) -> tuple[str, list]:
        response = question.split("### Response\n", 1)[1].rsplit("\n\nIs this a good response", 1)[0]
        q = min(max(self.quality(query, response), 1e-6), 1 - 1e-6)
        top = [{"token": "NO", "logprob": math.log(1 - q)}]
        if q >= self.unlisted_below:
            top.insert(0, {"token": "YES", "logprob": math.log(q)})
        top += [{"token": f"filler{i}", "logprob": -20.0 - i} for i in range(18)]
        top.sort(key=lambda t: -t["logprob"])
        text = top[0]["token"]
        return text, [{"token": text, "logprob": top[0]["logprob"], "top_logprobs": top}]

    def _rate(self, query: str, question: str) -> tuple[str, list]:
        response = question.split("### Response\n", 1)[1].rsplit("\n\nScale:", 1)[0]
        center = 1 + 9 * self.quality(query, response)
        rating = min(10, max(1, round(center)))
        weights = {k: math.exp(-((k - center) ** 2) / 0.8) for k in range(1, 11)}
        total = sum(weights.values()) * 1.05  # 5% of the mass on non-digit tokens
        lps = {k: math.log(w / total) for k, w in weights.items()}
        def top_at() -> list:
            keys = [str(k) for k in range(1, 10)] + (["10"] if not self.split_digits else [])
            top = [{"token": t, "logprob": lps[int(t)]} for t in keys]
            if self.split_digits:  # "1" also starts "10"
                top[0]["logprob"] = math.log(math.exp(lps[1]) + math.exp(lps[10]))
            top += [{"token": " ", "logprob": math.log(0.05 / 1.05)}]
            return sorted(top, key=lambda t: -t["logprob"])
        if self.split_digits and rating == 10:
            first = top_at()
            p10 = min(1 - 1e-9, math.exp(lps[10]) / (math.exp(lps[1]) + math.exp(lps[10])))
            second = [{"token": "0", "logprob": math.log(p10)}, {"token": "<end>", "logprob": math.log(1 - p10)}]
            return "10", [{"token": "1", "logprob": next(t["logprob"] for t in first if t["token"] == "1"),
                           "top_logprobs": first},
                          {"token": "0", "logprob": math.log(p10), "top_logprobs": second}]
        top = top_at()
        chosen = next(t for t in top if t["token"] == str(rating))
        if self.decorate:
            top = [{**t, "token": " " + t["token"]} for t in top]
            return f"Score: {rating}", _plain("Score:") + [{"token": f" {rating}", "logprob": chosen["logprob"],
                                                            "top_logprobs": top}]
        return str(rating), [{"token": str(rating), "logprob": chosen["logprob"], "top_logprobs": top}]

    def _rank(self, query: str, question: str) -> tuple[str, list]:
        shown = dict(_RESP.findall(question))
        order = sorted(shown, key=lambda c: (-self.quality(query, shown[c]), c))
        if self.bias_first and self.bias_first in order:
            order.remove(self.bias_first)
            order.insert(0, self.bias_first)
        text = ">".join(order)
        return text, _plain(text)
