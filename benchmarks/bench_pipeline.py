"""How the whole pipeline's cost grows with the data, stage by stage, and what xdist costs.

    .venv/bin/python benchmarks/bench_pipeline.py [--sizes 1,2,5,10] [--boot 1000] [--repeat 3] [--no-pytest]

Part 1 runs ``rmgap eval --rm-model builtin:length``'s pipeline in-process on
``rmgap synth`` files of 1x, 2x, 5x and 10x the release size (1,097 records,
52,656 pairs), each size in a fresh process (so its peak RSS is its own) and
with a fresh score cache. Stages: load (parse and validate the JSONL), scoring
through the store (hash, claim, compute, store, read back), a cached rerun of
the scoring (the same scorer, every score served from the store), outcome table,
metrics + bootstrap, report files (metrics.json, report.json, report.md, report.html,
heatmap.png). It prints wall and CPU seconds per stage (the machine may be
shared: CPU seconds are the steadier measure), peak RSS, and the growth exponent
b of total time ~ size^b (least squares over the sizes; 1 = linear).

Part 2 runs ``pytest --rm-model=builtin:length`` at release size, serial and
with ``-n 2``, each with a fresh cache, and compares wall time and metrics.json
bytes; then a ``-n 2`` run with a ``python:`` scorer that logs every pair it is
asked, to check that each pair is scored once in total.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RELEASE_RECORDS = 1097
STAGES = ["load", "scoring", "cached rerun", "outcome table", "metrics + bootstrap", "report files"]


class Stopwatch:
    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def __call__(self, name: str, fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        self.wall[name], self.cpu[name] = time.perf_counter() - w, time.process_time() - c
        return out


def one_size(data: Path, work: Path, n_boot: int) -> dict:
    """The pipeline on one file, in this process; returns seconds per stage and peak RSS."""
    from rmgap_pytest.data import item_table, load_benchmark, response_keys
    from rmgap_pytest.evaluation import Evaluation, run_meta, score_run
    from rmgap_pytest.metrics import metric_table, outcome_table, reference_metrics
    from rmgap_pytest.report import write_report_files
    from rmgap_pytest.results import write_run
    from rmgap_pytest.scorers import load_scorer
    from rmgap_pytest.thresholds import DEFAULT_MIN_SUPPORT

    sw = Stopwatch()
    bench = sw("load", lambda: load_benchmark(data))
    cache = work / "scores.sqlite"
    scored = sw("scoring", lambda: score_run(bench, load_scorer("builtin:length", cache=cache)))
    rerun = sw("cached rerun", lambda: score_run(bench, load_scorer("builtin:length", cache=cache)))
    assert rerun.counts["scored"] == 0 and (rerun.values == scored.values).all()
    out = sw("outcome table", lambda: outcome_table(item_table(bench), scored.values, response_keys(bench)))

    def metrics():
        return metric_table(out, n_boot=n_boot, seed=0, min_support=DEFAULT_MIN_SUPPORT), reference_metrics(out)

    table, reference = sw("metrics + bootstrap", metrics)
    scorer = load_scorer("builtin:length", cache=False)
    counts = dict(records=len(bench.records), items=len(out), pairs=4 * len(out), invalid_items=0, **scored.counts)
    ev = Evaluation(run_meta(bench, scorer, {}, n_boot=n_boot, seed=0, min_support=DEFAULT_MIN_SUPPORT), out, table,
                    reference, counts)

    def report():
        write_run(ev, work / "out")
        write_report_files(ev, work / "out")

    sw("report files", report)
    return {"records": len(bench.records), "pairs": 4 * len(out), "scored": scored.counts["scored"],
            "wall": sw.wall, "cpu": sw.cpu, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def exponent(sizes: list[float], times: list[float]) -> float:
    """Least-squares slope of log(time) on log(size)."""
    xs, ys = [math.log(s) for s in sizes], [math.log(max(t, 1e-9)) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def synth(records: int, path: Path) -> Path:
    if not path.exists():
        from rmgap_pytest.synth import write_synthetic

        write_synthetic(path, records, seed=0)
    return path


def part1(sizes: list[int], tmp: Path, n_boot: int, repeat: int) -> None:
    runs: dict[int, list[dict]] = {k: [] for k in sizes}
    for r in range(repeat):  # sizes interleaved, so a change in background load hits every size alike
        for k in sizes:
            data = synth(k * RELEASE_RECORDS, tmp / f"synth_{k}x.jsonl")
            work = tmp / f"run_{k}x_{r}"
            work.mkdir()
            res = subprocess.run([sys.executable, __file__, "--one", str(data), "--work", str(work), "--boot",
                                  str(n_boot)], capture_output=True, text=True, check=True)
            runs[k].append(json.loads(res.stdout.strip().splitlines()[-1]))
    # The fastest of the repeats, stage by stage: on a shared machine, noise only ever adds time.
    rows = [{**runs[k][0], "wall": {s: min(x["wall"][s] for x in runs[k]) for s in STAGES},
             "cpu": {s: min(x["cpu"][s] for x in runs[k]) for s in STAGES},
             "peak_rss_mb": max(x["peak_rss_mb"] for x in runs[k])} for k in sizes]
    print(f"builtin:length, bootstrap {n_boot} draws; seconds per stage as wall / CPU, the minimum of {repeat} runs")
    header = f"{'size':>4} {'records':>7} {'pairs':>7} " + " ".join(f"{s:>19}" for s in STAGES) + \
        f" {'total':>13} {'peak RSS':>9}"
    print(header)
    for k, r in zip(sizes, rows):
        cells = " ".join(f"{r['wall'][s]:>9.2f} / {r['cpu'][s]:>6.2f}" for s in STAGES)
        total_w, total_c = sum(r["wall"].values()), sum(r["cpu"].values())
        print(f"{k:>3}x {r['records']:>7} {r['pairs']:>7} {cells} {total_w:>6.2f}/{total_c:>6.2f} "
              f"{r['peak_rss_mb']:>6.0f} MB")
    if len(sizes) > 1:
        for what in ("wall", "cpu"):
            per_stage = ", ".join(f"{s} {exponent(sizes, [r[what][s] for r in rows]):.2f}" for s in STAGES)
            total = exponent(sizes, [sum(r[what].values()) for r in rows])
            print(f"growth exponent ({what}): total {total:.2f}; {per_stage}")


COUNTING = """
import os
def length(prompts, responses):
    with open(os.environ["RMGAP_BENCH_LOG"], "a") as fh:
        fh.write("".join(f"{hash((p, r))}\\n" for p, r in zip(prompts, responses)))
    return [float(len(r)) for r in responses]
"""


def run_pytest(tmp: Path, data: Path, name: str, spec: str, *extra: str) -> tuple[float, float, dict]:
    """Wall seconds, CPU seconds of the command and all its processes (xdist workers included), counts."""
    out = tmp / name
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "--no-header",
           f"--rm-model={spec}", f"--rmgap-data={data}", f"--rmgap-report={out}",
           f"--rmgap-cache={tmp / (name + '.sqlite')}", "--rm-scorer-version=1", *extra]
    env = {**os.environ, "RMGAP_BENCH_LOG": str(tmp / f"{name}.log"), "PYTHONHASHSEED": "0"}
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, json.loads((out / "report.json").read_text())["counts"]


def part2(tmp: Path) -> None:
    data = synth(RELEASE_RECORDS, tmp / "synth_1x.jsonl")
    (tmp / "counting_rm.py").write_text(COUNTING)
    serial_s, serial_cpu, serial = run_pytest(tmp, data, "serial", "builtin:length")
    xdist_s, xdist_cpu, xdist = run_pytest(tmp, data, "xdist", "builtin:length", "-n", "2")
    same = (tmp / "serial/metrics.json").read_bytes() == (tmp / "xdist/metrics.json").read_bytes()
    print(f"\npytest --rm-model=builtin:length at release size ({serial['pairs']} pairs), fresh cache, whole command:")
    print(f"  serial {serial_s:.1f} s wall / {serial_cpu:.1f} s CPU (computed {serial['scored']}); -n 2 {xdist_s:.1f} s "
          f"wall / {xdist_cpu:.1f} s CPU in 3 processes (computed {xdist['scored']}); wall ratio -n 2 / serial "
          f"{xdist_s / serial_s:.2f}; metrics.json byte-identical: {same}")
    _, _, counted = run_pytest(tmp, data, "counted", "python:counting_rm:length", "-n", "2")
    asked = (tmp / "counted.log").read_text().split()
    print(f"  python: scorer under -n 2: {len(asked)} pairs asked, {len(set(asked))} distinct, "
          f"{counted['pairs']} in the benchmark (each once in total: {len(asked) == len(set(asked)) == counted['pairs']})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,5,10", help="multiples of the release size (1,097 records)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap draws, as rmgap eval's default")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; each stage's minimum is shown")
    parser.add_argument("--no-pytest", action="store_true", help="skip part 2 (pytest serial vs -n 2)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child process: one size
        print(json.dumps(one_size(Path(args.one), Path(args.work), args.boot)))
        return
    import platform

    print(f"{platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start, "
          f"python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="rmgap-bench-") as tmp:
        part1([int(s) for s in args.sizes.split(",")], Path(tmp), args.boot, args.repeat)
        if not args.no_pytest:
            part2(Path(tmp))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
