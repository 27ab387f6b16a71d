"""What writing the report files costs, stage by stage, at 1x and 5x the release size (issue 11).

    .venv/bin/python benchmarks/bench_report.py                 # 1,097 and 5,485 synthetic records
    .venv/bin/python benchmarks/bench_report.py --records 1097 --repeat 5

Scores come from builtin:length, computed outside the timed part (no score store,
no progress bar): only the report stage is measured. The gate's checks are decided
as the pytest gate decides them, so report.md and report.html carry a realistic set
of failures (builtin:length fails ~95 of 170 checks on synthetic data). Each stage
runs ``--repeat`` times; the minimum wall and CPU time are printed, the machine
being shared. ``report.json (old way)`` is the previous writer (recursive cleaning,
one JSON value per line), run in the same process as the baseline of the ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rmgap_pytest import report, results  # noqa: E402
from rmgap_pytest.biaschart import why_png  # noqa: E402
from rmgap_pytest.data import load_benchmark, pair_texts  # noqa: E402
from rmgap_pytest.evaluation import evaluation_from_scores  # noqa: E402
from rmgap_pytest.gate import decide_checks, plan_checks  # noqa: E402
from rmgap_pytest.scorers import load_scorer  # noqa: E402
from rmgap_pytest.synth import write_synthetic  # noqa: E402
from rmgap_pytest.thresholds import Thresholds  # noqa: E402


def old_report_json(ev: Any, checks: Any) -> str:
    """The writer this branch replaced: clean every value recursively, then one JSON value per line."""
    extra = {"checks": checks.to_dict(orient="records"), "comparison": None}
    full = {"version": 1, "meta": ev.meta, "counts": ev.counts, "reference": ev.reference,
            "metrics": ev.table.to_dict(orient="records"), **extra,
            "outcomes": {"columns": results.OUTCOME_COLUMNS,
                         "rows": ev.outcomes[results.OUTCOME_COLUMNS].to_numpy().tolist()}}
    return json.dumps(results._clean(full), indent=1) + "\n"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(min wall seconds, min CPU seconds) over ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def measure(n_records: int, repeat: int, tmp: Path) -> dict[str, tuple[float, float]]:
    data = write_synthetic(tmp / f"synth{n_records}.jsonl", n_records, seed=0)
    bench = load_benchmark(data)
    scorer = load_scorer("builtin:length", cache=False)
    prompts, responses = pair_texts(bench)
    scores = np.asarray(scorer.score(prompts, responses), dtype=np.float64).reshape(-1, 4)
    ev = evaluation_from_scores(bench, scores, scorer, min_support=10)
    thresholds = Thresholds()
    checks = decide_checks(plan_checks(bench, thresholds), ev.table, thresholds)
    out = tmp / f"out{n_records}"
    out.mkdir()
    extra = {"checks": checks.to_dict(orient="records"), "comparison": None}
    from PIL import Image, ImageDraw  # imported once, as in a run: not part of any stage's repeats

    assert Image.new and ImageDraw.Draw

    stages = {
        "report.json (old way)": lambda: (out / "old.json").write_text(old_report_json(ev, checks)),
        "metrics.json + report.json": lambda: results.write_run(ev, out, extra),
        "report.md": lambda: (out / "report.md").write_text(report.markdown(ev, checks), encoding="utf-8"),
        "report.html": lambda: (out / "report.html").write_text(report.html(ev, checks), encoding="utf-8"),
        "heatmap.png": lambda: report.heatmap_png(ev, out / "heatmap.png", checks),
        "why.png": lambda: why_png(ev.bias, out / "why.png", "builtin:length"),
        "terminal summary": lambda: report.terminal_summary(ev, checks, width=100),
    }
    return {name: timed(fn, repeat) for name, fn in stages.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, nargs="+", default=[1097, 5 * 1097])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    w, c = time.perf_counter(), time.process_time()
    from PIL import Image, ImageDraw, ImageFont

    assert Image.new and ImageDraw.Draw and ImageFont.load_default
    print(f"Pillow import (once per process): {time.perf_counter() - w:.2f} s wall, "
          f"{time.process_time() - c:.2f} s CPU")
    totals = {}
    with tempfile.TemporaryDirectory(prefix="rmgap-bench-report-") as tmp:
        for n in args.records:
            res = measure(n, args.repeat, Path(tmp))
            print(f"\n{n} records ({n * 12} items), min of {args.repeat}:")
            print(f"  {'stage':<28}{'wall s':>8}{'CPU s':>8}")
            for name, (wall, cpu) in res.items():
                print(f"  {name:<28}{wall:>8.3f}{cpu:>8.3f}")
            new = sum(wall for name, (wall, _) in res.items() if "old way" not in name)
            print(f"  {'all report files (new)':<28}{new:>8.3f}")
            print(f"  report.json: old/new = {res['report.json (old way)'][0] / res['metrics.json + report.json'][0]:.1f}x")
            totals[n] = new
    sizes = sorted(totals)
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        k = math.log(totals[b] / totals[a]) / math.log(b / a)
        print(f"\ngrowth: {b / a:.0f}x the records -> {totals[b] / totals[a]:.2f}x the time (exponent {k:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
