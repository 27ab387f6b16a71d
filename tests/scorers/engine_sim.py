"""Loopback servers in vLLM's and SGLang's documented reward-API shapes, backed by a tiny transformers model.

The shapes are the ones the client modules document (rmgap_pytest/scorers/vllm.py,
sglang.py), taken from each engine's docs and request models, including what each
engine does that a client must undo or avoid: vLLM applies sigmoid/softmax unless
``use_activation`` is false, SGLang tokenizes ``text`` with special tokens added
(a rendered chat gets a second BOS). Malformed requests get the engine's error
shape (vLLM 400 ``{"error": {...}}``; SGLang 422 ``{"detail": [...]}`` for the
schema, 400 ``{"error": {"message"}}`` otherwise).

Scores are computed the way the engines pool: the head applied to the hidden
state of the sequence's final token, one sequence at a time, in float32.

In a thread: ``EngineServer("vllm", model_dir).start()``. As a process (so a test can
kill a replica): ``python engine_sim.py --engine vllm --model DIR``; it prints
``READY <port>`` once listening and ``SERVED <path>`` after each answer.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


class TinyEngineModel:
    """The served model: tokenizer, chat template, LAST pooling, optional activation."""

    def __init__(self, model_dir: str) -> None:
        self.dir = model_dir
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.max_model_len = int(self.model.config.max_position_embeddings)
        self.num_labels = int(self.model.config.num_labels)
        self.lock = threading.Lock()

    def logits(self, ids: list[int], per_token: bool = False) -> list[Any]:
        with self.lock, torch.inference_mode():
            hidden = self.model.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
            if per_token:
                return self.model.score(hidden).tolist()
            return self.model.score(hidden[-1]).tolist()

    def last_logits(self, seqs: list[list[int]]) -> list[list[float]]:
        """The head at each sequence's own last token, for a whole request at once (right padding:
        a causal model's real tokens never see the pads, so each row equals its unpadded run)."""
        width = max(map(len, seqs))
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, :len(seq)], mask[row, :len(seq)] = torch.tensor(seq), 1
        with self.lock, torch.inference_mode():
            hidden = self.model.model(input_ids=ids, attention_mask=mask).last_hidden_state
            last = hidden[torch.arange(len(seqs)), torch.tensor([len(s) - 1 for s in seqs])]
            return self.model.score(last).tolist()

    def chat_ids(self, messages: list[dict], add_special_tokens: bool) -> list[int]:
        text = self.tok.apply_chat_template(messages, tokenize=False, return_dict=False, add_generation_prompt=False)
        return self.tok(text, add_special_tokens=add_special_tokens)["input_ids"]

    def text_ids(self, text: str, add_special_tokens: bool) -> list[int]:
        return self.tok(text, add_special_tokens=add_special_tokens)["input_ids"]


def activate(values: list[float]) -> list[float]:
    """vLLM's default classify activation: sigmoid for one label, softmax for several."""
    if len(values) == 1:
        return [1.0 / (1.0 + math.exp(-values[0]))]
    m = max(values)
    exps = [math.exp(v - m) for v in values]
    return [e / sum(exps) for e in exps]


class _Reject(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(str(body))
        self.status, self.body = status, body


def _vllm_error(status: int, message: str, kind: str = "BadRequestError", param: str | None = None) -> _Reject:
    return _Reject(status, {"error": {"message": message, "type": kind, "param": param, "code": status}})


def _int_list(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in x)


class VllmApi:
    """``vllm serve DIR --runner pooling`` for a one-label *ForSequenceClassification model."""

    def __init__(self, model: TinyEngineModel, name: str, version: str, *,
                 tasks: tuple[str, ...] = ("classify", "token_classify"), version_endpoint: bool = True) -> None:
        self.m, self.name, self.version, self.tasks = model, name, version, tasks
        self.version_endpoint = version_endpoint

    def get(self, path: str) -> Any:
        if path == "/v1/models":
            return {"object": "list", "data": [{"id": self.name, "object": "model", "created": 1, "owned_by": "vllm",
                                                "root": self.m.dir, "parent": None,
                                                "max_model_len": self.m.max_model_len, "permission": []}]}
        if path == "/version" and self.version_endpoint:
            return {"version": self.version}
        raise _Reject(404, {"detail": "Not Found"})

    def post(self, path: str, req: Any) -> Any:
        if path != "/pooling":
            raise _Reject(404, {"detail": "Not Found"})
        if not isinstance(req, dict):
            raise _vllm_error(400, "Input should be a valid dictionary or object to extract fields from")
        if ("input" in req) == ("messages" in req):
            raise _vllm_error(400, "1 validation error: Field required: exactly one of 'input' or 'messages'")
        if req.get("model") not in (None, self.name):
            raise _vllm_error(404, f"The model `{req['model']}` does not exist.", "NotFoundError", "model")
        task = req.get("task") or self.tasks[0]
        if task not in self.tasks:
            raise _vllm_error(400, f"Unsupported task: {task!r} Supported tasks: {self.tasks}")
        use_activation = req.get("use_activation")
        if use_activation is not None and not isinstance(use_activation, bool):
            raise _vllm_error(400, "use_activation: Input should be a valid boolean", param="use_activation")
        trunc = req.get("truncate_prompt_tokens")
        if trunc is not None and (not isinstance(trunc, int) or trunc < -1):
            raise _vllm_error(400, "truncate_prompt_tokens: Input should be greater than or equal to -1")
        if "messages" in req:
            msgs = req["messages"]
            if not isinstance(msgs, list) or not all(isinstance(x, dict) and isinstance(x.get("role"), str)
                                                     and isinstance(x.get("content"), str) for x in msgs):
                raise _vllm_error(400, "messages: Input should be a valid list of chat messages")
            prompts = [self.m.chat_ids(msgs, bool(req.get("add_special_tokens", False)))]
        else:
            inp = req["input"]
            if isinstance(inp, str):
                inp = [inp]
            if _int_list(inp):
                prompts = [inp]
            elif isinstance(inp, list) and inp and all(_int_list(x) for x in inp):
                prompts = inp
            elif isinstance(inp, list) and inp and all(isinstance(x, str) for x in inp):
                prompts = [self.m.text_ids(x, bool(req.get("add_special_tokens", True))) for x in inp]
            else:
                raise _vllm_error(400, "input: Input should be a valid string, list of strings or token ids")
        if trunc is not None:
            keep = self.m.max_model_len if trunc == -1 else trunc
            prompts = [p[-keep:] for p in prompts]
        for p in prompts:
            if len(p) > self.m.max_model_len:
                raise _vllm_error(400, f"This model's maximum context length is {self.m.max_model_len} tokens. "
                                       f"However, you requested {len(p)} tokens in the input for pooling. Please "
                                       "reduce the length of the input.")
        if task == "token_classify":
            outs = [self.m.logits(p, per_token=True) for p in prompts]
        else:
            outs = [o if use_activation is False else activate(o) for o in self.m.last_logits(prompts)]
        data = [{"index": i, "object": "pooling", "data": out} for i, out in enumerate(outs)]
        n = sum(map(len, prompts))
        return {"id": f"pool-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()), "model": self.name,
                "data": data, "usage": {"prompt_tokens": n, "total_tokens": n, "completion_tokens": 0,
                                        "prompt_tokens_details": None}}


class SglangApi:
    """``python -m sglang.launch_server --model-path DIR --is-embedding`` for a reward model."""

    def __init__(self, model: TinyEngineModel, name: str, version: str, *, legacy: bool = False,
                 generation: bool = False, weight_version: str = "default") -> None:
        self.m, self.name, self.version = model, name, version
        self.legacy, self.generation, self.weight_version = legacy, generation, weight_version

    def get(self, path: str) -> Any:
        info_paths = ("/get_model_info",) if self.legacy else ("/model_info", "/get_model_info")
        if path in info_paths:
            return {"model_path": self.m.dir, "tokenizer_path": self.m.dir, "is_generation": self.generation,
                    "preferred_sampling_params": None, "weight_version": self.weight_version,
                    "has_image_understanding": False, "has_audio_understanding": False, "model_type": "llama",
                    "architectures": ["LlamaForSequenceClassification"]}
        if path == "/v1/models":
            return {"object": "list", "data": [{"id": self.name, "object": "model", "created": 1,
                                                "owned_by": "sglang", "root": self.m.dir,
                                                "max_model_len": self.m.max_model_len}]}
        if path in (("/get_server_info",) if self.legacy else ("/server_info", "/get_server_info")):
            return {"model_path": self.m.dir, "is_embedding": not self.generation, "version": self.version}
        raise _Reject(404, {"detail": "Not Found"})

    def post(self, path: str, req: Any) -> Any:
        if path != "/classify":
            raise _Reject(404, {"detail": "Not Found"})
        if not isinstance(req, dict):
            raise _Reject(422, {"detail": [{"type": "dataclass_type", "loc": ["body"],
                                            "msg": "Input should be a dictionary or an instance of EmbeddingReqInput",
                                            "input": req}]})
        text, ids = req.get("text"), req.get("input_ids")
        for field, value, ok in (("text", text, lambda v: isinstance(v, str) or (isinstance(v, list) and all(
                isinstance(x, str) for x in v))), ("input_ids", ids, lambda v: _int_list(v) or (
                isinstance(v, list) and all(_int_list(x) for x in v)))):
            if value is not None and not ok(value):
                raise _Reject(422, {"detail": [{"type": "list_type", "loc": ["body", field],
                                                "msg": "Input should be a valid list", "input": value}]})
        if self.generation:
            raise _Reject(400, {"error": {"message": "This model does not appear to be an embedding model by "
                                         "default. Please add `--is-embedding` when launching the server or try "
                                         "another model."}})
        if text is None and ids is None:
            raise _Reject(400, {"error": {"message": "Either text, input_ids or input_embeds should be provided."}})
        single = isinstance(text, str) or _int_list(ids)
        if text is not None:  # SGLang tokenizes text with the special tokens added
            seqs = [self.m.text_ids(t, True) for t in ([text] if isinstance(text, str) else text)]
        else:
            seqs = [ids] if _int_list(ids) else ids
        for s in seqs:
            if len(s) > self.m.max_model_len:
                raise _Reject(400, {"error": {"message": f"The input ({len(s)} tokens) is longer than the model's "
                                                         f"context length ({self.m.max_model_len} tokens)."}})
        out = [{"embedding": e, "meta_info": {"id": uuid.uuid4().hex, "prompt_tokens": len(s), "e2e_latency": 0.0}}
               for s, e in zip(seqs, self.m.last_logits(seqs))]
        return out[0] if single else out


class EngineServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving one engine API; records requests; canned faults first."""

    def __init__(self, engine: str, model: TinyEngineModel | str, *, name: str = "tiny-rm",
                 version: str | None = None,
                 api_key: str | None = None, latency: float = 0.0, announce: bool = False, **api_kw: Any) -> None:
        self.model = model if isinstance(model, TinyEngineModel) else TinyEngineModel(model)
        self.api = (VllmApi(self.model, name, version or "0.11.1", **api_kw) if engine == "vllm"
                    else SglangApi(self.model, name, version or "0.5.4", **api_kw))
        self.api_key, self.latency, self.announce = api_key, latency, announce
        self.requests: list[dict] = []
        self.script: list[tuple[int, bytes]] = []  # canned (status, body) answers for POSTs, served first
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.requests.append({"method": method, "path": self.path, "headers": dict(self.headers),
                                            "body": json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw})
                    canned = server.script.pop(0) if method == "POST" and server.script else None
                try:
                    if server.latency:
                        time.sleep(server.latency)
                    status, body = canned if canned else server._handle(method, self.path, raw, self.headers)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client (or a killed proxy) went away
                    return
                if server.announce:
                    print(f"SERVED {self.path}", flush=True)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._answer("POST")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _handle(self, method: str, path: str, raw: bytes, headers: Any) -> tuple[int, bytes]:
        if self.api_key and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, json.dumps({"error": "Unauthorized"}).encode()
        try:
            if method == "GET":
                if path == "/health":
                    return 200, b""
                return 200, json.dumps(self.api.get(path)).encode()
            try:
                req = json.loads(raw)
            except ValueError as exc:
                if isinstance(self.api, VllmApi):
                    raise _vllm_error(400, f"JSON decode error: {exc}") from None
                raise _Reject(422, {"detail": [{"type": "json_invalid", "loc": ["body", 0],
                                                "msg": "JSON decode error", "input": {}}]}) from None
            return 200, json.dumps(self.api.post(path, req)).encode()
        except _Reject as rej:
            return rej.status, json.dumps(rej.body).encode()

    def canned(self, status: int, body: Any, times: int = 1) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.script.extend([(status, data)] * times)

    def posts(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]

    def start(self) -> "EngineServer":
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", choices=["vllm", "sglang"], required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--latency", type=float, default=0.0)
    args = p.parse_args(argv)
    server = EngineServer(args.engine, args.model, latency=args.latency, announce=True)
    print(f"READY {server.httpd.server_address[1]}", flush=True)
    server.httpd.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    sys.exit(main())
