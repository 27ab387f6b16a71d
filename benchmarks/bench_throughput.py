"""``bench_scoring.py --device DEV``: an 8B-shaped classifier's scoring throughput and model-FLOPs utilisation.

The model is ``LlamaForSequenceClassification`` with Llama-3-8B's shapes and random
weights, built from its config directly on the device in the scoring dtype
(``from_config`` under ``torch.device``: the weights never exist on the CPU). The
classifier scorer's own ``_load`` runs with that model in place of ``from_pretrained``,
so everything after it is production code: rendering through the chat template,
truncation, length-sorted token-budget batches, right padding, the reward head in
fp32. Pairs come from an RMGAP file (default: the embedded sample) and go through a
run-scoped score store, so they are chunked exactly as in a run.

Model FLOPs count useful work only (no padding): per pair of T real tokens,
2 x (weights of the trunk's linear layers) x T + 2 x layers x hidden x T x (T + 1)
for causal attention scores and values (Kaplan et al. 2020 and the PaLM paper's
MFU, forward pass only). MFU = those FLOPs per second over the device's dense bf16
peak.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Dense bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets (without sparsity), by a substring
# of torch.cuda.get_device_name(); the first match wins, so the specific names come first.
PEAK_TFLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0), ("H100", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0),
]
LLAMA3_8B = dict(hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336, vocab=128256)
MAX_DEFAULT_PAIRS = 2000
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                 "{{ m['content'] }}<|eot_id|>{% endfor %}")


def add_throughput_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("throughput (--device)")
    g.add_argument("--device", default=None, help="cuda, cuda:N or cpu: run the 8B-shaped throughput benchmark")
    g.add_argument("--data", default=None, help="RMGAP file whose pairs are scored (default: the embedded sample)")
    g.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    g.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak in this dtype")
    g.add_argument("--token-budget", type=int, default=None, help="padded tokens per batch (default: the engine's)")
    g.add_argument("--max-length", type=int, default=8192, help="tokens per pair (Llama-3: 8192 positions)")
    g.add_argument("--plan-only", action="store_true", help="no model: the padding of the batches a run would "
                   "make (store chunks, then the engine's plan), for every pair of --data")
    for name, value in LLAMA3_8B.items():
        g.add_argument(f"--{name.replace('_', '-')}", type=int, default=value, help=f"model shape (Llama-3-8B: {value})")


def peak_tflops(device_name: str) -> float | None:
    return next((tf for key, tf in PEAK_TFLOPS if key in device_name), None)


def build_tokenizer(texts: list[str], path: Path) -> None:
    """A byte-level BPE with Llama-3's special tokens, trained on the data's texts, saved in ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<|pad|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=32000, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                            pad_token="<|pad|>", chat_template=CHAT_TEMPLATE,
                            model_max_length=1 << 30).save_pretrained(path)


def write_model_dir(args: argparse.Namespace, texts: list[str], path: Path) -> Path:
    """config.json, the tokenizer and a one-number placeholder weights file (the scorer wants a
    *.safetensors to fingerprint; the real weights are made on the device at load)."""
    from safetensors.numpy import save_file
    from transformers import AutoTokenizer, LlamaConfig

    build_tokenizer(texts, path)
    tok = AutoTokenizer.from_pretrained(path)
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                         num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                         intermediate_size=args.intermediate, max_position_embeddings=8192, rope_theta=500000.0,
                         num_labels=1, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, architectures=["LlamaForSequenceClassification"])
    config.save_pretrained(path)
    save_file({"placeholder": np.zeros(1, dtype=np.float32)}, str(path / "model.safetensors"))
    return path


def random_model_on_device(auto_class: Any, path: Path, options: Any, dtype: Any, device: Any, **_: Any) -> Any:
    """Stands in for ``_hf.load_model``: the config's model with random weights, made on ``device``."""
    import torch
    from transformers import AutoConfig

    torch.manual_seed(0)
    with torch.device(device):
        model = auto_class.from_config(AutoConfig.from_pretrained(path), dtype=dtype)
    return model.eval()


def pick_pairs(data: str | None, n: int | None, seed: int = 0) -> tuple[list[str], list[str]]:
    from rmgap_pytest.data import load_benchmark, pair_texts

    prompts, responses = pair_texts(load_benchmark(data))
    n = n or min(len(prompts), MAX_DEFAULT_PAIRS)
    if n < len(prompts):  # a random subset keeps the length distribution
        keep = sorted(random.Random(seed).sample(range(len(prompts)), n))
        prompts, responses = [prompts[i] for i in keep], [responses[i] for i in keep]
    return list(prompts), list(responses)


class Meter:
    """Wraps the scorer's ``_score_batch``: real and padded tokens, FLOPs of the real ones, forward time."""

    def __init__(self, scorer: Any, linear_params: int, layers: int, hidden: int, sync: Any) -> None:
        self.real = self.padded = self.pairs = 0
        self.flops, self.seconds = 0.0, 0.0
        inner, self.sync = scorer._score_batch, sync

        def score_batch(encs: list[Any]) -> np.ndarray:
            lengths = np.array([len(e.ids) for e in encs], dtype=np.float64)
            start = time.perf_counter()
            out = inner(encs)  # ends with .cpu(): the device has finished this batch
            self.seconds += time.perf_counter() - start
            self.pairs += len(encs)
            self.real += int(lengths.sum())
            self.padded += len(encs) * int(lengths.max())
            self.flops += float((2 * linear_params * lengths + 2 * layers * hidden * lengths * (lengths + 1)).sum())
            return out

        scorer._score_batch = score_batch

    def reset(self) -> None:
        self.real = self.padded = self.pairs = 0
        self.flops, self.seconds = 0.0, 0.0


def throughput(args: argparse.Namespace) -> None:
    import torch

    from rmgap_pytest.cache import ScoreStore
    from rmgap_pytest.scorers import _hf, build_scorer, parse_options
    from rmgap_pytest.stored import StoredScorer

    prompts, responses = pick_pairs(args.data, 10**9 if args.plan_only else args.pairs)
    on_gpu = args.device.startswith("cuda")
    with tempfile.TemporaryDirectory(prefix="rmgap-throughput-") as tmp:
        model_dir = write_model_dir(args, [*set(prompts), *set(responses)], Path(tmp) / "model")
        options = {"device": args.device, "dtype": args.dtype, "max_length": args.max_length, "progress": False}
        if args.token_budget:
            options["token_budget"] = args.token_budget
        scorer = build_scorer(f"classifier:{model_dir}", parse_options(options))
        if args.plan_only:
            plan_padding(scorer, prompts, responses, Path(tmp))
            return
        _hf.load_model = random_model_on_device  # the scorer's _load imports it from _hf when it runs
        built = time.perf_counter()
        scorer._ensure_loaded()
        sync = torch.cuda.synchronize if on_gpu else (lambda: None)
        sync()
        built = time.perf_counter() - built
        trunk = scorer.model.base_model
        linear = sum(m.weight.numel() for m in trunk.modules() if isinstance(m, torch.nn.Linear))
        meter = Meter(scorer, linear, args.layers, args.hidden, sync)
        chars = sum(map(len, prompts)) + sum(map(len, responses))

        def run(p: list[str], r: list[str]) -> tuple[np.ndarray, float]:
            store = ScoreStore(Path(tempfile.mkdtemp(dir=tmp)) / "scores.sqlite")
            stored = StoredScorer(scorer, store, fingerprint="bench", persistent=False)
            sync()
            start = time.perf_counter()
            values = stored.fetch(p, r).values
            sync()
            return values, time.perf_counter() - start

        run(prompts[:64], responses[:64])  # warm-up: kernels chosen, caches allocated
        meter.reset()
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        scores, seconds = run(prompts, responses)
        report(args, scorer, meter, scores, seconds, built, linear, chars, on_gpu)


def plan_padding(scorer: Any, prompts: list[str], responses: list[str], tmp: Path) -> None:
    """The padding of a run's batches, without a model: the store's chunks, each planned by the engine."""
    from rmgap_pytest.cache import ScoreStore, pair_keys
    from rmgap_pytest.scorers._hf import load_tokenizer
    from rmgap_pytest.stored import StoredScorer

    scorer.tokenizer = load_tokenizer(scorer.path, scorer.options)
    scorer.encoder = scorer._make_encoder()
    unique = dict(zip(pair_keys(prompts, responses), zip(prompts, responses)))
    chunks = StoredScorer(scorer, ScoreStore(tmp / "plan.sqlite"), fingerprint="plan")._chunks(unique)
    real = padded = batches = 0
    for keys in chunks.values():
        encs = scorer.encode([unique[k][0] for k in keys], [unique[k][1] for k in keys])
        lengths = [len(e.ids) for e in encs]
        for batch in scorer._plan(lengths):
            real += sum(lengths[i] for i in batch)
            padded += len(batch) * max(lengths[i] for i in batch)
            batches += 1
    print(f"{len(unique)} pairs in {len(chunks)} store chunks, {batches} batches (token budget "
          f"{scorer.options.token_budget or 'default'} on {scorer.device_name}): {real / len(unique):.0f} tokens "
          f"per pair, padding fraction {1 - real / padded:.3f}")


def report(args: argparse.Namespace, scorer: Any, meter: Meter, scores: np.ndarray, seconds: float, built: float,
           linear: int, chars: int, on_gpu: bool) -> None:
    import torch

    name = torch.cuda.get_device_name(scorer.device) if on_gpu else "CPU"
    peak = args.peak_tflops or (peak_tflops(name) if on_gpu and args.dtype in ("bfloat16", "float16") else None)
    achieved = meter.flops / seconds / 1e12
    rows = [
        ("device", f"{name} ({args.device}), torch {torch.__version__}, {scorer.dtype}, head in float32"),
        ("model", f"Llama {args.layers} layers, hidden {args.hidden}, heads {args.heads}/{args.kv_heads} KV, "
                  f"intermediate {args.intermediate}, vocab {args.vocab}: {linear / 1e9:.3g} B linear weights, "
                  f"random, built on the device in {built:.1f} s"),
        ("pairs", f"{meter.pairs} pairs, {meter.real / meter.pairs:.0f} tokens each on average "
                  f"({chars / meter.real:.2f} characters per token), max_length {scorer.max_length}"),
        ("batches", f"token budget {scorer.options.token_budget or 'default'}; padding fraction "
                    f"{1 - meter.real / meter.padded:.3f} ({meter.padded - meter.real} of {meter.padded} tokens)"),
        ("pairs/s", f"{meter.pairs / seconds:.1f} ({seconds:.1f} s, store and tokenizing included; forward "
                    f"{meter.seconds:.1f} s)"),
        ("tokens/s", f"{meter.real / seconds:,.0f} real tokens"),
        ("model TFLOP/s", f"{achieved:.3g} over the whole run, {meter.flops / meter.seconds / 1e12:.3g} over the "
                          "forward passes"),
        ("MFU", f"{achieved / peak:.1%} of {peak:.0f} TFLOP/s dense {args.dtype} (forward passes alone: "
                f"{meter.flops / meter.seconds / 1e12 / peak:.1%})" if peak else
                "n/a: no peak known for this device; pass --peak-tflops"),
        ("scores", f"all finite: {bool(np.isfinite(scores).all())}; float64 from the fp32 head; std "
                   f"{float(np.nanstd(scores)):.3g}"),
    ]
    if on_gpu:
        rows.append(("peak memory", f"{torch.cuda.max_memory_allocated(scorer.device) / 2**30:.1f} GiB allocated"))
    for key, value in rows:
        print(f"{key:<14} {value}")
    print(json.dumps({"pairs_per_s": meter.pairs / seconds, "tokens_per_s": meter.real / seconds,
                      "padding_fraction": 1 - meter.real / meter.padded, "tflops": achieved,
                      "mfu": achieved / peak if peak else None}))
