"""Throughput of the engine clients against a loopback server with a fixed per-request latency.

The server (its own process, standard library only) answers vLLM's
``/v1/models``, ``/version`` and ``/pooling`` after sleeping ``--latency``
seconds per request, whatever the request holds: the time a GPU server spends
on a small request is mostly fixed overhead and queueing, and this isolates
what the client controls, the number of requests in flight. Scores are a hash
of the input, so no model is needed.

    .venv/bin/python benchmarks/bench_remote.py [--latency 0.05] [--pairs 200]

Rows (pairs per second, each the best of ``--repeat`` runs, in this process; the ratio is
against the first row of its group):

- ``server template``: ``vllm:URL`` default mode, one conversation per request
  (vLLM's chat API takes one), at 1 request in flight, 4, and the default;
- ``token ids, 8/request``: ``--rm-tokenizer`` mode with ``--rm-batch-size 8``,
  so every row sends requests of the same size and only the in-flight count varies;
- ``growth``: the default concurrency on 1x, 2x and 5x the pairs; the ratio column is the
  time relative to 1x (linear growth: 1, 2, 5);
- ``pipeline``: ``evaluate()`` on a synthetic RMGAP file, through the run's score store
  (chunks of 256 pairs), at 1 in flight and the default.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "scorers"))

from rmgap_pytest.scorers import _http, build_scorer, parse_options  # noqa: E402


def serve(latency: float, port_out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, payload: object) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/version":
                self._send({"version": "0.11.1"})
            else:
                self._send({"object": "list", "data": [{"id": "bench-rm", "object": "model", "root": "/bench",
                                                        "parent": None, "max_model_len": 4096}]})

        def do_POST(self) -> None:  # noqa: N802
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)
            inputs = [req["messages"]] if "messages" in req else req["input"]
            self._send({"object": "list", "model": "bench-rm", "usage": {},
                        "data": [{"index": i, "object": "pooling",
                                  "data": [zlib.crc32(json.dumps(x).encode()) % 1000 / 100]}
                                 for i, x in enumerate(inputs)]})

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.request_queue_size = 128
    port_out.put(httpd.server_address[1])
    httpd.serve_forever()


def pairs(n: int) -> tuple[list[str], list[str]]:
    words = "the reward model prefers concise answers over verbose ones in every domain".split()
    return ([" ".join(words[(i + k) % len(words)] for k in range(12)) + f" #{i}" for i in range(n)],
            [" ".join(words[(i * 3 + k) % len(words)] for k in range(20)) + f" ({i})" for i in range(n)])


def rate(url: str, n: int, repeat: int, **options: object) -> float:
    """Best pairs/s of ``repeat`` fresh scorers on ``n`` new pairs (the one-off identity lookup excluded)."""
    best = 0.0
    for r in range(repeat):
        ps, rs = pairs(n)
        ps = [f"{p} r{r}" for p in ps]
        scorer = build_scorer(f"vllm:{url}", parse_options({"progress": False, **options}))
        scorer.served_model()
        started = time.perf_counter()
        scorer.score(ps, rs)
        best = max(best, n / (time.perf_counter() - started))
        scorer.close()
    return best


def pipeline_rate(url: str, data: Path, repeat: int, **options: object) -> tuple[float, int]:
    from rmgap_pytest import evaluate

    best, n = 0.0, 0
    for _ in range(repeat):
        started = time.perf_counter()
        ev = evaluate(data, f"vllm:{url}", cache=False, n_boot=10, progress=False, **options)
        n = ev.counts["pairs"]
        best = max(best, n / (time.perf_counter() - started))
    return best, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the server waits per request")
    ap.add_argument("--pairs", type=int, default=200, help="pairs per measurement (1x)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    ports: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(args.latency, ports), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{ports.get(timeout=30)}"
    default = _http.DEFAULT_CONCURRENCY
    rows: list[tuple[str, str, float, float]] = []
    try:
        base = rate(url, args.pairs, args.repeat, concurrency=1)
        for c in (1, 4, default):
            r = base if c == 1 else rate(url, args.pairs, args.repeat, concurrency=c)
            rows.append(("server template, 1 pair/request", f"{c} in flight", r, r / base))
        with tempfile.TemporaryDirectory() as tmp:
            import tiny_models as tm

            tok_dir = Path(tmp) / "tok"
            tok_dir.mkdir()
            tokenizer = tm.build_tokenizer()
            tokenizer.save_pretrained(tok_dir)
            (tok_dir / "config.json").write_text(json.dumps({"num_labels": 1, "max_position_embeddings": 512}))
            n_ids = args.pairs * 4
            base_ids = rate(url, n_ids, args.repeat, concurrency=1, batch_size=8, tokenizer=str(tok_dir))
            for c in (1, 4, default):
                r = base_ids if c == 1 else rate(url, n_ids, args.repeat, concurrency=c, batch_size=8,
                                                 tokenizer=str(tok_dir))
                rows.append(("token ids, 8 pairs/request", f"{c} in flight", r, r / base_ids))
            one = rate(url, args.pairs, args.repeat)
            for k in (1, 2, 5):
                r = one if k == 1 else rate(url, args.pairs * k, args.repeat)
                seconds = args.pairs * k / r
                rows.append(("growth, default concurrency", f"{k}x pairs: {seconds:.2f} s", r, k * one / r))
            from rmgap_pytest.synth import write_synthetic

            data = write_synthetic(Path(tmp) / "synth.jsonl", 20, seed=0)
            slow, n = pipeline_rate(url, data, 1, concurrency=1)
            fast, _ = pipeline_rate(url, data, args.repeat)
            rows.append((f"pipeline: evaluate(), {n} pairs", "1 in flight", slow, 1.0))
            rows.append((f"pipeline: evaluate(), {n} pairs", f"{default} in flight", fast, fast / slow))
    finally:
        server.terminate()
    print(f"latency {args.latency * 1000:.0f} ms per request; {args.pairs} pairs = 1x\n")
    print("| mode | setting | pairs/s | ratio |\n|---|---|---:|---:|")
    for mode, setting, r, ratio in rows:
        print(f"| {mode} | {setting} | {r:,.0f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
