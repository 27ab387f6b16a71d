"""How the whole pipeline's cost grows with the data, stage by stage, and what xdist and a cached rerun cost.

    .venv/bin/python benchmarks/bench_pipeline.py [--sizes 1,2,5,10] [--repeat 3] [--parts 1,2,3]

Part 1 (stages): ``rmgap eval --rm-model builtin:length``'s pipeline, in-process, on
``rmgap synth`` files of 1x, 2x, 5x and 10x the release size (1,097 records, 52,656
pairs), each run in a fresh process (so its peak RSS is its own) with a fresh score
cache. Stages: imports (numpy, pandas, scipy.special, Pillow and the package), load
(parse and validate the JSONL), scoring (hash, claim, compute, store, read back),
outcome table, metrics + bootstrap (the resampling counts, drawn once, and
metric_table), bias table (same counts), report files (metrics.json, report.json,
report.md, report.html, heatmap.png, terminal summary); then, outside the
``rmgap eval`` total, a cached rerun of the scoring and the comparison with a
baseline (load its report.json, align, family-wise paired bootstrap). Then the whole
``rmgap eval`` command, timed as a child process (interpreter start-up included).
Wall and CPU seconds (user + sys) per stage: the machine is shared, CPU seconds are
the steadier measure. The growth exponent b fits time ~ size^b (least squares over
the sizes; 1 = linear).

Part 2 (xdist): ``pytest --rm-model=builtin:length`` at release size, serial and with
``-n 2``, each with a fresh cache: wall and CPU (all processes), pairs computed,
metrics.json bytes; then ``-n 2`` with a ``python:`` scorer that logs every pair it is
asked, to check that each pair is scored once in total.

Part 3 (cached model rerun): on the embedded sample, a tiny classifier built locally
(tests/scorers/tiny_models.py) is scored once, then rerun from the cache with
``rmgap eval`` (``-X importtime``), ``pytest`` and ``pytest -n 2``
(``PYTHONPROFILEIMPORTTIME``, inherited by the workers); each is timed against the same
command with ``builtin:length``, and the torch/transformers modules imported are counted.

Child processes write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped; a warm-up run
fills the caches), as an installed package does; ``--keep-env`` keeps the environment.
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
EVAL_STAGES = ["imports", "load", "scoring", "outcome table", "metrics + bootstrap", "bias table", "report files"]
EXTRA_STAGES = ["cached rerun", "comparison"]


class Stopwatch:
    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def __call__(self, name: str, fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        self.wall[name], self.cpu[name] = time.perf_counter() - w, time.process_time() - c
        return out


def _imports() -> None:
    import numpy, pandas, scipy.special  # noqa: E401,F401
    from PIL import Image, ImageDraw, ImageFont  # noqa: F401

    import rmgap_pytest.evaluation, rmgap_pytest.report, rmgap_pytest.results, rmgap_pytest.regression  # noqa: E401,F401


def one_size(data: Path, work: Path, n_boot: int) -> dict:
    """The pipeline on one file, in this (fresh) process: seconds per stage and peak RSS."""
    sw = Stopwatch()
    sw("imports", _imports)
    from rmgap_pytest.bias import bias_table, response_levels
    from rmgap_pytest.data import item_table, load_benchmark, response_keys
    from rmgap_pytest.evaluation import Evaluation, evaluation_from_scores, run_meta, score_run, tied_items
    from rmgap_pytest.metrics import bootstrap_counts, metric_table, outcome_table, record_domains, reference_metrics
    from rmgap_pytest.regression import compare_outcomes
    from rmgap_pytest.report import terminal_summary, write_report_files
    from rmgap_pytest.results import align, load_run, outcomes_from_run, write_run
    from rmgap_pytest.scorers import load_scorer
    from rmgap_pytest.thresholds import DEFAULT_MIN_SUPPORT, Thresholds

    bench = sw("load", lambda: load_benchmark(data))
    cache = work / "scores.sqlite"
    scorer = load_scorer("builtin:length", cache=cache)
    scored = sw("scoring", lambda: score_run(bench, scorer))
    out = sw("outcome table", lambda: outcome_table(item_table(bench), scored.values, response_keys(bench)))

    def metrics():
        counts = bootstrap_counts(record_domains(out), n_boot, 0)
        return counts, metric_table(out, min_support=DEFAULT_MIN_SUPPORT, counts=counts), reference_metrics(out)

    counts, table, reference = sw("metrics + bootstrap", metrics)
    why = sw("bias table", lambda: bias_table(out, response_levels(bench), counts=counts))
    tally = dict(records=len(bench.records), items=len(out), pairs=4 * len(out), invalid_items=int(out["invalid"].sum()),
                 tied_items=tied_items(scored.values), **scored.counts)
    meta = run_meta(bench, scorer, {}, n_boot=n_boot, seed=0, min_support=DEFAULT_MIN_SUPPORT)
    ev = Evaluation(meta, out, table, reference, tally, why)

    def report():
        paths = write_run(ev, work / "out")
        paths.update(write_report_files(ev, work / "out"))
        return terminal_summary(ev, files=paths, width=100)

    sw("report files", report)
    eval_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the rmgap eval stages alone
    # The same stages as evaluation_from_scores, which this must not drift from (untimed check).
    check = evaluation_from_scores(bench, scored.values, scorer, n_boot=n_boot, min_support=DEFAULT_MIN_SUPPORT,
                                   scoring=scored)
    assert check.table.equals(table) and check.bias.equals(why) and check.reference == reference
    rerun = sw("cached rerun", lambda: score_run(bench, load_scorer("builtin:length", cache=cache)))
    assert rerun.counts["scored"] == 0 and (rerun.values == scored.values).all()

    def comparison():
        baseline = load_run(work / "out" / "report.json")
        base = align(outcomes_from_run(baseline), out, "baseline")
        return compare_outcomes(base, out, Thresholds().regression_settings())

    sw("comparison", comparison)
    return {"records": len(bench.records), "pairs": 4 * len(out), "scored": scored.counts["scored"],
            "wall": sw.wall, "cpu": sw.cpu, "eval_rss_mb": eval_rss,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def timed_child(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> dict:
    """Run one command: wall seconds, CPU seconds (user + sys of it and of every process it
    waited for: xdist workers included) and peak RSS of the largest of them (``wait4``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
                "returncode": proc.returncode, "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace")}


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


def child_env(keep: bool) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if not keep:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def part1(sizes: list[int], tmp: Path, n_boot: int, repeat: int, env: dict[str, str]) -> None:
    stages = EVAL_STAGES + EXTRA_STAGES
    runs: dict[int, list[dict]] = {k: [] for k in sizes}
    whole: dict[int, list[dict]] = {k: [] for k in sizes}
    rmgap = [sys.executable, "-m", "rmgap_pytest.cli", "eval", "--rm-model", "builtin:length"]
    for r in range(repeat):  # sizes interleaved, so a change in background load hits every size alike
        for k in sizes:
            data = synth(k * RELEASE_RECORDS, tmp / f"synth_{k}x.jsonl")
            work = tmp / f"run_{k}x_{r}"
            work.mkdir()
            res = timed_child([sys.executable, __file__, "--one", str(data), "--work", str(work), "--boot",
                               str(n_boot)], env)
            if res["returncode"]:
                raise SystemExit(res["stderr"][-3000:])
            runs[k].append(json.loads(res["stdout"].strip().splitlines()[-1]))
            cmd = timed_child([*rmgap, "--data", str(data), "--out", str(work / "cli"), "--cache",
                               str(work / "cli.sqlite"), "--bootstrap", str(n_boot)], env)
            if cmd["returncode"]:
                raise SystemExit(cmd["stderr"][-3000:])
            whole[k].append(cmd)
    # The fastest of the repeats, stage by stage: on a shared machine, noise only ever adds time.
    rows = [{**runs[k][0], "wall": {s: min(x["wall"][s] for x in runs[k]) for s in stages},
             "cpu": {s: min(x["cpu"][s] for x in runs[k]) for s in stages},
             "eval_rss_mb": max(x["eval_rss_mb"] for x in runs[k]),
             "peak_rss_mb": max(x["peak_rss_mb"] for x in runs[k])} for k in sizes]
    print(f"\nPart 1: builtin:length, bootstrap {n_boot} draws; seconds as wall / CPU, the minimum of {repeat} runs")
    for k, r in zip(sizes, rows):
        print(f"\n{k}x: {r['records']} records, {r['pairs']} pairs, peak RSS {r['eval_rss_mb']:.0f} MB after the "
              f"rmgap eval stages, {r['peak_rss_mb']:.0f} MB with the untimed check, rerun and comparison")
        for s in stages:
            print(f"  {s:<22} {r['wall'][s]:7.2f} / {r['cpu'][s]:6.2f}")
        tw, tc = (sum(r[x][s] for s in EVAL_STAGES) for x in ("wall", "cpu"))
        print(f"  {'rmgap eval stages':<22} {tw:7.2f} / {tc:6.2f}")
        w, c = min(x["wall"] for x in whole[k]), min(x["cpu"] for x in whole[k])
        rss = max(x["peak_rss_mb"] for x in whole[k])
        print(f"  {'rmgap eval command':<22} {w:7.2f} / {c:6.2f}   (a child process: start-up and imports "
              f"included), peak RSS {rss:.0f} MB")
    if len(sizes) > 1:
        print("\ngrowth exponent, wall / CPU (1 = linear):")
        for s in stages:
            print(f"  {s:<22} {exponent(sizes, [r['wall'][s] for r in rows]):5.2f} / "
                  f"{exponent(sizes, [r['cpu'][s] for r in rows]):5.2f}")
        totals = {x: [sum(r[x][s] for s in EVAL_STAGES) for r in rows] for x in ("wall", "cpu")}
        print(f"  {'rmgap eval stages':<22} {exponent(sizes, totals['wall']):5.2f} / "
              f"{exponent(sizes, totals['cpu']):5.2f}")
        cmd_w = [min(x["wall"] for x in whole[k]) for k in sizes]
        cmd_c = [min(x["cpu"] for x in whole[k]) for k in sizes]
        print(f"  {'rmgap eval command':<22} {exponent(sizes, cmd_w):5.2f} / {exponent(sizes, cmd_c):5.2f}")
        if 1 in sizes and 5 in sizes:
            i, j = sizes.index(1), sizes.index(5)
            print(f"\nrmgap eval command, 5x / 1x: {cmd_w[j] / cmd_w[i]:.2f} wall, {cmd_c[j] / cmd_c[i]:.2f} CPU "
                  f"(target at most 6); 1x: {cmd_w[i]:.2f} s wall (target at most 5)")


COUNTING = """
import os
def length(prompts, responses):
    with open(os.environ["RMGAP_BENCH_LOG"], "a") as fh:
        fh.write("".join(f"{hash((p, r))}\\n" for p, r in zip(prompts, responses)))
    return [float(len(r)) for r in responses]
"""


def run_pytest(tmp: Path, data: Path | None, name: str, spec: str, env: dict[str, str], *extra: str) -> dict:
    """The whole command in ``tmp``: wall, CPU of all its processes (xdist workers included), report counts."""
    out = tmp / name
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "--no-header",
           f"--rm-model={spec}", *([f"--rmgap-data={data}"] if data else []), f"--rmgap-report={out}", *extra]
    res = timed_child(cmd, {**env, "RMGAP_BENCH_LOG": str(tmp / f"{name}.log")}, cwd=tmp)
    if res["returncode"] not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {res['returncode']}:\n{res['stdout'][-3000:]}")
    res["counts"] = json.loads((out / "report.json").read_text())["counts"]
    res["metrics"] = (out / "metrics.json").read_bytes()
    return res


def part2(tmp: Path, env: dict[str, str]) -> None:
    data = synth(RELEASE_RECORDS, tmp / "synth_1x.jsonl")
    (tmp / "counting_rm.py").write_text(COUNTING)
    env = {**env, "PYTHONPATH": str(tmp)}
    run_pytest(tmp, data, "warm", "builtin:length", env, "-n", "2", f"--rmgap-cache={tmp / 'warm.sqlite'}")
    res = {}
    for name, extra in (("serial", []), ("xdist", ["-n", "2"])):
        res[name] = run_pytest(tmp, data, name, "builtin:length", env, f"--rmgap-cache={tmp / (name + '.sqlite')}",
                               *extra)
    same = res["serial"]["metrics"] == res["xdist"]["metrics"]
    s, x = res["serial"], res["xdist"]
    print(f"\nPart 2: pytest --rm-model=builtin:length at release size ({s['counts']['pairs']} pairs), fresh cache, "
          "whole command:")
    print(f"  serial {s['wall']:.1f} s wall / {s['cpu']:.1f} s CPU, computed {s['counts']['scored']}")
    print(f"  -n 2   {x['wall']:.1f} s wall / {x['cpu']:.1f} s CPU (3 processes), computed {x['counts']['scored']}")
    print(f"  -n 2 / serial: {x['wall'] / s['wall']:.2f} wall, {x['cpu'] / s['cpu']:.2f} CPU; "
          f"metrics.json byte-identical: {same}")
    counted = run_pytest(tmp, data, "counted", "python:counting_rm:length", env, "-n", "2", "--rmgap-cache=off")
    asked = (tmp / "counted.log").read_text().split()
    print(f"  python: scorer under -n 2: {len(asked)} pairs asked, {len(set(asked))} distinct, "
          f"{counted['counts']['pairs']} in the benchmark (each once in total: "
          f"{len(asked) == len(set(asked)) == counted['counts']['pairs']})")


MODULES_CONFTEST = """
import json, os, sys
def pytest_unconfigure(config):
    # Not $PYTEST_XDIST_WORKER: a controller started from inside an xdist worker inherits it.
    name = getattr(config, "workerinput", {}).get("workerid", "main")
    with open(os.path.join(os.path.dirname(__file__), "modules-" + name + ".json"), "w") as fh:
        json.dump(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers")), fh)
"""


def _torch_lines(stderr: str) -> int:
    """Modules of torch or transformers in ``-X importtime`` output (every process that wrote to stderr)."""
    return sum(1 for line in stderr.splitlines() if line.startswith("import time:")
               and line.rsplit("|", 1)[-1].strip().split(".")[0] in ("torch", "transformers"))


def part3(tmp: Path, env: dict[str, str], repeat: int) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "scorers"))
    import tiny_models as tm

    work = tmp / "part3"
    work.mkdir()
    model = tm.build_classifier(work / "clf", tm.build_tokenizer())
    specs = {"model": (f"classifier:{model}", ["--rm-dtype=float32"]), "length": ("builtin:length", [])}
    rmgap = [sys.executable, "-X", "importtime", "-m", "rmgap_pytest.cli", "eval", "--no-progress"]
    first = timed_child([*rmgap, "--rm-model", specs["model"][0], "--dtype", "float32", "--out", str(work / "o0"),
                         "--cache", str(work / "model.sqlite")], env)
    timed_child([*rmgap, "--rm-model", "builtin:length", "--out", str(work / "o1"), "--cache",
                 str(work / "length.sqlite")], env)
    print(f"\nPart 3: cached rerun of a classifier: spec (a tiny Llama classifier, float32) on the embedded sample "
          f"against builtin:length, whole commands; the first run computed every pair in {first['wall']:.1f} s wall")
    (work / "conftest.py").write_text(MODULES_CONFTEST)  # records what each pytest process imported
    for what, args in (("rmgap eval", None), ("pytest", []), ("pytest -n 2", ["-n", "2"])):
        best: dict[str, dict] = {}
        for _ in range(repeat):
            for name, (spec, options) in specs.items():
                cache = f"{work / name}.sqlite"
                for p in work.glob("modules-*.json"):
                    p.unlink()
                if args is None:
                    r = timed_child([*rmgap, "--rm-model", spec, *[o.replace("rm-", "") for o in options], "--out",
                                     str(work / f"o_{name}"), "--cache", cache], env)
                else:
                    r = run_pytest(work, None, f"p_{name}", spec, {**env, "PYTHONPROFILEIMPORTTIME": "1"}, *args,
                                   f"--rmgap-cache={cache}", *options)
                r["torch"] = _torch_lines(r["stderr"]) + sum(len(json.loads(p.read_text()))
                                                              for p in work.glob("modules-*.json"))
                if name not in best or r["wall"] < best[name]["wall"]:
                    best[name] = r
        m, n = best["model"], best["length"]
        print(f"  {what:<12} classifier {m['wall']:5.2f} s wall / {m['cpu']:5.2f} s CPU, builtin:length "
              f"{n['wall']:5.2f} / {n['cpu']:5.2f}: ratio {m['wall'] / n['wall']:.2f} wall, {m['cpu'] / n['cpu']:.2f} "
              f"CPU (target at most 1.5); torch/transformers modules imported: {m['torch']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,5,10", help="multiples of the release size (1,097 records)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap draws, as rmgap eval's default")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; each stage's minimum is shown")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run (see the module doc)")
    parser.add_argument("--keep-env", action="store_true", help="keep PYTHONDONTWRITEBYTECODE for the children")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child process: one size
        print(json.dumps(one_size(Path(args.one), Path(args.work), args.boot)))
        return
    import platform

    env = child_env(args.keep_env)
    print(f"{platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start, python "
          f"{platform.python_version()}, PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', '(unset)')}")
    parts = {int(p) for p in args.parts.split(",")}
    with tempfile.TemporaryDirectory(prefix="rmgap-bench-") as tmp:
        if 1 in parts:
            warm = Path(tmp) / "warm"
            warm.mkdir()  # one run first: bytecode caches filled, the file cache warm
            timed_child([sys.executable, __file__, "--one", str(synth(RELEASE_RECORDS, Path(tmp) / "synth_1x.jsonl")),
                         "--work", str(warm), "--boot", "50"], env)
            part1([int(s) for s in args.sizes.split(",")], Path(tmp), args.boot, args.repeat, env)
        if 2 in parts:
            part2(Path(tmp), env)
        if 3 in parts:
            part3(Path(tmp), env, args.repeat)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
