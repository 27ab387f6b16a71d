"""``vllm:URL[,URL...]``: a reward model served by vLLM's pooling API.

Start the server with ``vllm serve MODEL --runner pooling`` (``*ForSequenceClassification``
reward models are detected and converted to the ``classify`` task). The
shapes below follow vLLM's docs (docs/models/pooling_models/{pooling,classify,reward}.md)
and its request models (vllm/entrypoints/pooling/base/protocol.py and
pooling/protocol.py, pooling/serving.py), read from vLLM's main branch in 2026, and the
v0.11.1 API reference (``PoolingParams.use_activation``):

- ``GET /v1/models`` -> ``{"object": "list", "data": [{"id": NAME, "root": PATH,
  "parent": null, "max_model_len": N, ...}]}``; ``GET /version`` -> ``{"version": "0.11.1"}``.
- ``POST /pooling`` with token ids (``--rm-tokenizer``, rendered here):
  ``{"model": NAME, "input": [[ids], ...], "task": "classify", "use_activation": false}``;
  with the server's chat template (default), one conversation per request:
  ``{"model": NAME, "messages": [{"role": "user", ...}, {"role": "assistant", ...}],
  "add_special_tokens": false, "task": "classify", "use_activation": false}``.
  Answer: ``{"id", "object": "list", "created", "model", "data": [{"index": i,
  "object": "pooling", "data": [float, ...]}], "usage": {"prompt_tokens", ...}}``.
- Errors: ``{"error": {"message", "type", "param", "code"}}`` with the HTTP status
  (400 for a request that fails validation or is longer than ``max_model_len``).

Activation. vLLM applies an activation to classification outputs by default
(sigmoid for one label, softmax for several; classify.md, "Enable/disable
activation"; ``use_activation: None`` = "the pooler's default, which is True in
most cases"). A reward is the head's raw output, never a sigmoid or a softmax
over one label (always 1.0), so every request sends ``"use_activation": false``,
a per-request field since vLLM 0.11.1 (PR #25524; before it the field was
``activation``). A server whose ``/version`` is older is refused.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._engine import EngineScorer, ServedModel
from ._http import RemoteError, excerpt

__all__ = ["VllmScorer"]

MIN_VERSION = (0, 11, 1)  # the first release with the use_activation request field


class VllmScorer(EngineScorer):
    kind = "vllm"
    engine = "vLLM"
    path = "/pooling"
    server_side_template = True

    def _served(self) -> list[tuple[str, ServedModel | RemoteError]]:
        models = self.pool.per_replica("/v1/models")
        versions = self.pool.per_replica("/version")
        out: list[tuple[str, ServedModel | RemoteError]] = []
        for (url, listing), (_, version) in zip(models, versions):
            try:
                if isinstance(listing, RemoteError):
                    raise listing
                out.append((url, self._describe(url, listing, None if isinstance(version, RemoteError) else version)))
            except RemoteError as exc:
                out.append((url, exc))
        return out

    def _describe(self, url: str, listing: Any, version: Any) -> ServedModel:
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list) or not data or \
                not all(isinstance(d, dict) and isinstance(d.get("id"), str) for d in data):
            raise RemoteError(f"The vLLM server at {url}/v1/models answered "
                              f"{excerpt(json.dumps(listing, default=str))!r}, not a list of models. Fix: check that "
                              "the spec is a vLLM server's base URL (vllm:http://HOST:PORT, without /v1).")
        ver = version.get("version") if isinstance(version, dict) and isinstance(version.get("version"), str) else None
        parsed = _version_tuple(ver)
        if parsed is not None and (0, 1, 0) <= parsed < MIN_VERSION:
            raise RemoteError(f"The vLLM server at {url} runs vLLM {ver}, which ignores the use_activation request "
                              "field and would return sigmoid/softmax probabilities instead of the reward head's raw "
                              "output. Fix: upgrade the server to vLLM 0.11.1 or later.")
        first = data[0]
        max_len = first.get("max_model_len") if isinstance(first.get("max_model_len"), int) else None
        facts = {"engine": "vllm", "version": ver, "max_model_len": max_len,
                 "models": [[d["id"], d.get("root"), d.get("parent")] for d in data]}
        summary = (f"{first['id']!r} (root {first.get('root')!r}, max_model_len {max_len}, "
                   f"vLLM {ver or 'version unknown'})")
        return ServedModel(tuple(d["id"] for d in data), facts, max_len, summary)

    def _payload_ids(self, model: str, ids: list[list[int]]) -> dict[str, Any]:
        return {"model": model, "input": ids, "task": "classify", "use_activation": False}

    def _payload_chat(self, model: str, prompt: str, response: str) -> dict[str, Any]:
        payload = {"model": model, "messages": [{"role": "user", "content": prompt},
                                                {"role": "assistant", "content": response}],
                   "add_special_tokens": False, "task": "classify", "use_activation": False}
        if self.options.max_length is not None:
            payload["truncate_prompt_tokens"] = self.options.max_length  # the server keeps the last N tokens
        return payload

    def _outputs(self, answer: Any, n: int, where: str) -> list[Any]:
        data = answer.get("data") if isinstance(answer, dict) else None
        shown = excerpt(json.dumps(answer, default=str))
        if not isinstance(data, list) or not all(isinstance(d, dict) and "data" in d for d in data):
            raise RemoteError(f"The vLLM server {where} answered {shown!r}, not a pooling response "
                              '({"data": [{"index": i, "data": [...]}, ...]}). Fix: check that the spec is the '
                              "server's base URL and that it serves a pooling model (vllm serve MODEL --runner pooling).")
        if len(data) != n:
            raise RemoteError(f"The vLLM server {where} returned {len(data)} outputs for {n} inputs "
                              f"({shown!r}). Fix: check the server log; one output per input is the API's contract.")
        indices = [d.get("index") for d in data]
        if sorted(i for i in indices if isinstance(i, int)) == list(range(n)):
            data = sorted(data, key=lambda d: d["index"])
        return [d["data"] for d in data]

    def _truncated(self, answer: Any, n_pairs: int) -> int:
        limit = self.options.max_length
        usage = answer.get("usage") if isinstance(answer, dict) else None
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        # One conversation per request: the server cut it when it holds exactly the limit.
        return int(self.renderer is None and limit is not None and n_pairs == 1 and tokens == limit)

    def _fix_for_status(self, status: int, body: str) -> str | None:
        low = body.lower()
        if status == 404:
            return ("check the base URL (vllm:http://HOST:PORT, without /v1 or /pooling) and the model name "
                    "(--rm-api-model; GET /v1/models lists what the server serves).")
        if status == 400 and "maximum context length" in low:
            return ("a pair is longer than the server's max_model_len. Pass --rm-tokenizer=DIR to truncate on the "
                    "client as a local run does (or --rm-max-length N to let the server keep the last N tokens).")
        if status == 400 and "task" in low and ("support" in low or "unsupported" in low):
            return ("the server does not run this model as a sequence classifier. Start it with "
                    "`vllm serve MODEL --runner pooling --convert classify` (docs/serving.md).")
        if status == 400 and "chat template" in low:
            return ("the served tokenizer has no chat template: pass --rm-tokenizer=DIR to render on the client, "
                    "or start vLLM with --chat-template.")
        return None


def _version_tuple(text: str | None) -> tuple[int, int, int] | None:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
