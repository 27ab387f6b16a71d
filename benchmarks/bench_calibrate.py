"""How far the regression gate can be trusted: ``rmgap calibrate`` on the sample and at release size.

    .venv/bin/python benchmarks/bench_calibrate.py [--runs 400] [--models consistent inconsistent heavy]
                                                   [--skip-timing]

1. ``rmgap calibrate`` (the command itself, through ``cli.main``) on the embedded
   26-record sample and on a 1,097-record ``rmgap synth`` file, once per
   simulated model: false-block rate at rho 0.5 and 0.9, detection of a 3-point
   uniform BoN drop, of a 10-point drop in All/Conciseness=terse, and of a model
   that follows users 15% and 5% less (the sensitivity units vs the BoN units).
2. The cost of one gate comparison (``regression.compare_outcomes``, default
   settings) at 1x, 2x and 5x the release size, as a ratio to the per-run metric
   bootstrap (``metrics.metric_table``, 1,000 draws) timed in the same process.

Numbers go to docs/regression.md by hand, with the command that made them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rmgap_pytest.cli import main  # noqa: E402
from rmgap_pytest.data import item_table, load_benchmark, response_keys  # noqa: E402
from rmgap_pytest.metrics import metric_table, outcome_table  # noqa: E402
from rmgap_pytest.regression import compare_outcomes  # noqa: E402
from rmgap_pytest.synth import write_synthetic  # noqa: E402
from rmgap_pytest.thresholds import Thresholds  # noqa: E402


def calibrations(data: Path, runs: int, models: list[str]) -> None:
    for path, label in ((None, "embedded sample"), (data, "1,097-record synth file")):
        for model in models:
            argv = ["calibrate", "--runs", str(runs), "--model", model, "--follow-drop", "0.15", "0.05",
                    *(["--data", str(path)] if path else [])]
            print(f"\n### {label}, model {model}\n$ rmgap {' '.join(argv)}", flush=True)
            main(argv)


def timing(tmp: Path, repeats: int = 3) -> None:
    settings = Thresholds().regression_settings()
    print("\n### one gate comparison vs the metric bootstrap, same process (best of "
          f"{repeats}; n_boot {settings.n_boot})")
    print(f"{'records':>8}{'compare s':>11}{'metric_table s':>16}{'ratio':>8}")
    for factor in (1, 2, 5):
        bench = load_benchmark(write_synthetic(tmp / f"x{factor}.jsonl", 1097 * factor))
        items, keys = item_table(bench), response_keys(bench)
        rng = np.random.default_rng(0)
        base = outcome_table(items, rng.normal(size=(len(items), 4)), keys)
        cur = outcome_table(items, rng.normal(size=(len(items), 4)), keys)
        t_cmp = min(_time(lambda: compare_outcomes(base, cur, settings)) for _ in range(repeats))
        t_tab = min(_time(lambda: metric_table(cur, n_boot=1000)) for _ in range(repeats))
        print(f"{len(bench.records):>8}{t_cmp:>11.2f}{t_tab:>16.2f}{t_cmp / t_tab:>8.2f}", flush=True)


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--models", nargs="+", default=["consistent", "inconsistent", "heavy"])
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        data = write_synthetic(Path(d) / "synth1097.jsonl", 1097)  # `rmgap synth --records 1097 --seed 0`
        calibrations(data, args.runs, args.models)
        if not args.skip_timing:
            timing(Path(d))


if __name__ == "__main__":
    run()
