"""``sglang:URL[,URL...]``: a reward model served by SGLang (``--is-embedding``).

Start the server with ``python -m sglang.launch_server --model-path MODEL
--is-embedding``. The shapes below follow SGLang's docs (supported_models/reward_models,
basic_usage/native_api "Classify (reward model)") and its server code
(srt/entrypoints/http_server.py, srt/managers/io_struct.py ``EmbeddingReqInput``,
srt/models/llama_reward.py), read from SGLang's main branch in 2026, with the older
``/get_model_info`` and ``/get_server_info`` paths that the current ones replaced:

- ``POST /classify`` ``{"model": NAME, "input_ids": [[ids], ...]}`` ->
  ``[{"embedding": [float, ...], "meta_info": {"prompt_tokens": n, ...}}, ...]``,
  one entry per input, in order. ``embedding`` is the reward head's raw output:
  SGLang's reward models pool the last token without normalization and apply no
  activation (``Pooler(LAST, normalize=False)`` followed by the ``score`` head).
- ``GET /model_info`` (``/get_model_info`` before it was renamed) ->
  ``{"model_path", "tokenizer_path", "is_generation", "weight_version", ...}``;
  ``GET /v1/models`` -> ``{"data": [{"id": NAME, "root": PATH, "max_model_len": N}]}``;
  ``GET /server_info`` (``/get_server_info`` before) -> ``{..., "version": "0.5.x"}``.
- Errors: ``400 {"error": {"message": ...}}``; a body that fails the request
  schema gets FastAPI's ``422 {"detail": [...]}``.

Why token ids, and so why ``sglang:`` needs ``--rm-tokenizer``: ``/classify``
applies no chat template, and it tokenizes ``text`` with the tokenizer's special
tokens added, so a pre-rendered chat (which already starts with BOS) would be
scored with two. Token ids are used as sent. The OpenAI-style ``/v1/classify``
is not used: it returns softmax probabilities, always ``[1.0]`` for a
one-output reward head.
"""

from __future__ import annotations

import json
from typing import Any

from ._engine import EngineScorer, ServedModel
from ._http import RemoteError, excerpt

__all__ = ["SglangScorer"]


class SglangScorer(EngineScorer):
    kind = "sglang"
    engine = "SGLang"
    path = "/classify"
    server_side_template = False

    def _needs_tokenizer(self) -> str:
        return (f"{self.spec}: SGLang's reward endpoint (/classify) applies no chat template and would add a second "
                "BOS to pre-rendered text, so sglang: renders on the client and sends token ids. Fix: pass "
                "--rm-tokenizer=DIR, a directory with the served model's tokenizer files and config.json (the "
                "weights are not needed).")

    def _get(self, *paths: str) -> list[tuple[str, Any]]:
        """``per_replica`` on the first path; replicas that answer 404 are asked the next (older) path."""
        results = self.pool.per_replica(paths[0])
        for older in paths[1:]:
            missing = [i for i, (_, r) in enumerate(results) if isinstance(r, RemoteError) and r.status == 404]
            for i, answer in zip(missing, self.pool.per_replica(older, missing)):
                results[i] = answer
        return results

    def _served(self) -> list[tuple[str, ServedModel | RemoteError]]:
        infos = self._get("/model_info", "/get_model_info")
        models = self.pool.per_replica("/v1/models")
        servers = self._get("/server_info", "/get_server_info")
        out: list[tuple[str, ServedModel | RemoteError]] = []
        for (url, info), (_, listing), (_, server) in zip(infos, models, servers):
            try:
                if isinstance(info, RemoteError):
                    raise info
                out.append((url, self._describe(url, info, listing, server)))
            except RemoteError as exc:
                out.append((url, exc))
        return out

    def _describe(self, url: str, info: Any, listing: Any, server: Any) -> ServedModel:
        if not isinstance(info, dict) or not isinstance(info.get("model_path"), str):
            raise RemoteError(f"The SGLang server at {url}/model_info answered "
                              f"{excerpt(json.dumps(info, default=str))!r}, without a model_path. Fix: check that "
                              "the spec is an SGLang server's base URL (sglang:http://HOST:PORT).")
        if info.get("is_generation") is True:
            raise RemoteError(f"The SGLang server at {url} serves {info['model_path']!r} as a generation model. "
                              "Fix: start it with --is-embedding, which serves reward models on /classify.")
        data = listing.get("data") if isinstance(listing, dict) else None
        cards = [d for d in data if isinstance(d, dict) and isinstance(d.get("id"), str)] if isinstance(data, list) \
            else []
        names = tuple(d["id"] for d in cards) or (info["model_path"],)
        max_len = next((d["max_model_len"] for d in cards if isinstance(d.get("max_model_len"), int)), None)
        version = server.get("version") if isinstance(server, dict) and isinstance(server.get("version"), str) \
            else None
        facts = {"engine": "sglang", "version": version, "names": list(names), "max_model_len": max_len,
                 **{k: info.get(k) for k in ("model_path", "tokenizer_path", "weight_version", "architectures")}}
        weights = info.get("weight_version")
        summary = (f"{names[0]!r} (model_path {info['model_path']!r}, weight_version {weights!r}, "
                   f"max_model_len {max_len}, SGLang {version or 'version unknown'})")
        return ServedModel(names, facts, max_len, summary)

    def _payload_ids(self, model: str, ids: list[list[int]]) -> dict[str, Any]:
        return {"model": model, "input_ids": ids}

    def _outputs(self, answer: Any, n: int, where: str) -> list[Any]:
        shown = excerpt(json.dumps(answer, default=str))
        if not isinstance(answer, list) or not all(isinstance(a, dict) and "embedding" in a for a in answer):
            raise RemoteError(f"The SGLang server {where} answered {shown!r}, not a list of "
                              '{"embedding": [...]} results. Fix: check that the spec is the server\'s base URL and '
                              "that it runs with --is-embedding.")
        if len(answer) != n:
            raise RemoteError(f"The SGLang server {where} returned {len(answer)} results for {n} inputs "
                              f"({shown!r}). Fix: check the server log; one result per input is the API's contract.")
        return [a["embedding"] for a in answer]

    def _fix_for_status(self, status: int, body: str) -> str | None:
        low = body.lower()
        if status == 404:
            return "check the base URL (sglang:http://HOST:PORT, without /classify or /v1)."
        if status == 400 and ("context length" in low or "longer than" in low):
            return ("a pair is longer than the server accepts; pass --rm-max-length N (at most the server's "
                    "--context-length) to truncate on the client.")
        if status == 400 and "embedding" in low:
            return "start the server with --is-embedding; reward models are served on /classify in that mode."
        if status == 422:
            return ("the request did not match this SGLang version's /classify schema; check the server version "
                    "(docs/serving.md lists the tested shapes).")
        return None

