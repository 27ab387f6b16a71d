"""What the style-bias and sensitivity estimates add to a run: bias_table vs metric_table, same process.

Synthetic records at release size (1,097 records, 13,164 items) and at 2x and
5x, builtin:length scores, 1,000 bootstrap draws (the default). Each timing is
the best of ``--repeat`` runs; the first bias_table call also imports
scipy.special, timed on its own.

    .venv/bin/python benchmarks/bench_bias.py [--repeat 5] [--boot 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rmgap_pytest.bias import bias_table, response_levels  # noqa: E402
from rmgap_pytest.data import item_table, load_benchmark, pair_texts, response_keys  # noqa: E402
from rmgap_pytest.metrics import metric_table, outcome_table  # noqa: E402
from rmgap_pytest.scorers import load_scorer  # noqa: E402
from rmgap_pytest.synth import RELEASE_COUNTS, write_synthetic  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--boot", type=int, default=1000)
    args = ap.parse_args()
    release = sum(RELEASE_COUNTS.values())
    scorer = load_scorer("builtin:length", cache=False)
    print(f"{'records':>8} {'items':>7} {'metric_table s':>15} {'bias_table s':>13} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for growth in (1, 2, 5):
            bench = load_benchmark(write_synthetic(Path(tmp) / f"x{growth}.jsonl", growth * release, seed=growth))
            prompts, responses = pair_texts(bench)
            out = outcome_table(item_table(bench), scorer.score(prompts, responses).reshape(-1, 4),
                                response_keys(bench))
            levels = response_levels(bench)
            if growth == 1:
                started = time.perf_counter()
                bias_table(out, levels, n_boot=args.boot)
                print(f"first bias_table call, scipy.special import included: {time.perf_counter() - started:.3f} s")
            base = best(lambda: metric_table(out, n_boot=args.boot), args.repeat)
            cost = best(lambda: bias_table(out, levels, n_boot=args.boot), args.repeat)
            print(f"{len(bench.records):>8} {len(out):>7} {base:>15.3f} {cost:>13.3f} {cost / base:>6.2f}")
    print(f"numpy {np.__version__}, {args.boot} draws, best of {args.repeat}")


if __name__ == "__main__":
    main()
