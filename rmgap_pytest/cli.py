"""``rmgap``: the evaluation outside pytest.

    rmgap eval --rm-model SPEC [--data PATH] --out DIR [--thresholds FILE] [--baseline PATH]
    rmgap compare BASE NEW [--format text|json|md]
    rmgap history list|trend|accept|export|plot --dir DIR
    rmgap init [--force]
    rmgap calibrate [--data PATH] [--runs N] [--model consistent|inconsistent|heavy]
    rmgap synth --records N --out FILE [--force]
    rmgap cache info|clear

``rmgap eval`` takes the gate's options from the same table as pytest
(``options.OPTIONS``): each under its short name (``--dtype``) and its pytest
name (``--rm-dtype``). Exit status (every subcommand):

    0  done; the gate passed (eval with --thresholds/--baseline), no regression (compare)
    1  a gate check failed or a metric regressed
    2  bad input or options: one paragraph (what, where, how to fix), no traceback
    6  eval could not score the model (server down, CUDA error, a scorer exception)
    130 interrupted (scores already computed stay in the cache)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from . import __version__
from .errors import RMGapError
from .options import OPTIONS, UsageError, check_value, set_tool

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_SCORING_FAILED = 0, 1, 2, 6
_GATE = ("rmgap_thresholds", "rmgap_baseline", "rmgap_update_baseline", "rmgap_history")  # options that decide


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _typed(o) -> object:
    def convert(text: str) -> object:
        try:
            return check_value(o, text, o.cli or o.pytest)
        except UsageError as exc:  # argparse prints "argument --x: <message>"
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
    convert.__name__ = o.kind  # argparse names the type in its messages
    return convert


def add_option_arguments(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """Every option of ``options.OPTIONS`` under both spellings (``--dtype`` and ``--rm-dtype``)."""
    for o in OPTIONS:
        if o.name in skip:
            continue
        names = [o.cli] if o.cli else []
        names += [o.pytest] if o.pytest not in names else []
        env = f" [env {o.env}]" if o.env and o.env != "RMGAP_CACHE" else ""
        if o.kind == "flag":
            p.add_argument(*names, dest=o.name, action="store_true", default=None, help=o.help)
        else:
            p.add_argument(*names, dest=o.name, metavar=o.metavar, type=_typed(o), default=None,
                           required=o.name == "rm_model", help=o.help + env)
    p.add_argument("--no-cache", action="store_true", help="score every pair again; read and write no cache "
                   "(the same as --cache off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def option_values(args: argparse.Namespace) -> dict:
    """``{option name: value}``: the command line, then the option's environment variable."""
    values = {}
    for o in OPTIONS:
        value = getattr(args, o.name, None)
        if value is None and o.env and os.environ.get(o.env) and o.name != "rmgap_cache":
            value = check_value(o, os.environ[o.env], o.env)
        values[o.name] = value
    if getattr(args, "no_cache", False):
        values["rmgap_cache"] = "off"
    return values


def add_calibrate_arguments(p: argparse.ArgumentParser) -> None:
    def fraction(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not 0 <= value <= 1:
            raise argparse.ArgumentTypeError(f"{text!r} must lie between 0 and 1")
        return value

    p.add_argument("--data", "--rmgap-data", default=None, metavar="PATH",
                   help="RMGAP JSONL file (default: the embedded sample)")
    p.add_argument("--thresholds", "--rmgap-thresholds", default=None, metavar="PATH",
                   help="the gate's thresholds file (default: the one shipped with rmgap-pytest)")
    p.add_argument("--runs", type=_positive_int, default=200, metavar="N", help="model pairs per scenario (default 200)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="simulation seed (the gate's sign-flip seed "
                   "comes from the thresholds)")
    p.add_argument("--tolerance", type=fraction, default=None, metavar="X", help="override regression.tolerance")
    p.add_argument("--confidence", type=fraction, default=None, metavar="X", help="override regression.confidence")
    p.add_argument("--n-boot", type=_positive_int, default=None, metavar="N",
                   help="override regression.n_boot (sign flips)")
    p.add_argument("--rho", type=fraction, nargs="+", default=None, metavar="R",
                   help="noise correlations between the two runs (default 0.5 0.9)")
    p.add_argument("--drop", type=fraction, default=0.03, metavar="X",
                   help="uniform BoN drop to detect (default 0.03; 0 skips)")
    p.add_argument("--cell-drop", type=fraction, default=0.10, metavar="X",
                   help="BoN drop in one cell (default 0.10; 0 skips)")
    p.add_argument("--follow-drop", type=fraction, nargs="+", default=[0.15], metavar="F",
                   help="a model that follows users this share less, one scenario per value (default 0.15, about 3 "
                        "BoN points; 0 skips): the sensitivity units vs the BoN units")
    p.add_argument("--cell", default="All/Conciseness=terse", metavar="CELL", help="the cell that drops (default "
                   "All/Conciseness=terse)")
    p.add_argument("--model", default="consistent", choices=["consistent", "inconsistent", "heavy"],
                   help="simulated reward model preset (default consistent)")
    p.add_argument("--bon", type=fraction, default=None, metavar="X", help="the model's expected BoN (default 0.45)")
    p.add_argument("--noise", default=None, choices=["normal", "logistic", "t3"], help="noise distribution")
    p.add_argument("--record-share", type=fraction, default=None, metavar="X",
                   help="noise variance shared by a record's prompts")
    p.add_argument("--group-share", type=fraction, default=None, metavar="X", help="noise variance shared by a "
                   "group's paraphrases (higher: more consistent)")
    p.add_argument("--difficulty", type=float, default=None, metavar="SD", help="sd of log signal across records")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmgap", description="RMGAP evaluation of reward models. Exit status: 0 "
                                     "done/passed, 1 a check failed or regressed, 2 bad input, 6 scoring failed.")
    parser.add_argument("--version", action="version", version=f"rmgap-pytest {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ev = sub.add_parser("eval", help="score a reward model on RMGAP and write the report files",
                        description="Score a reward model and write the report files. With --thresholds, --baseline "
                        "or --history the gate decides and the exit status is its verdict (1: a check failed or "
                        "regressed); without them the run only reports (exit 0).")
    add_option_arguments(ev)
    ev.add_argument("--bootstrap", type=_positive_int, default=None, metavar="N", help="bootstrap draws (default 1000)")
    ev.add_argument("--seed", type=int, default=0, metavar="N", help="bootstrap seed (report-only runs)")
    ev.add_argument("--min-support", type=_positive_int, default=None, metavar="N", help="prompt groups a cell needs "
                    "to enter a preference gap (report-only runs; with --thresholds: its min_support)")
    cmp_ = sub.add_parser("compare", help="compare two runs item by item (paired bootstrap)")
    cmp_.add_argument("base", metavar="BASE", help="baseline report.json (or its directory)")
    cmp_.add_argument("new", metavar="NEW", help="new report.json (or its directory)")
    cmp_.add_argument("--tolerance", type=float, default=None, metavar="X",
                      help="allowed drop before a regression counts")
    cmp_.add_argument("--thresholds", "--rmgap-thresholds", default=None, metavar="PATH", help="the gate's thresholds "
                      "file, so both decide alike (default: the one shipped with rmgap-pytest)")
    cmp_.add_argument("--format", choices=["text", "json", "md"], default="text",
                      help="text (default), json (every unit) or md (a pull-request comment)")
    hist = sub.add_parser("history", help="list, trend, accept, export or plot the runs kept with --rmgap-history")
    hist.add_argument("action", nargs="?", default="list", choices=["list", "trend", "accept", "export", "plot"],
                      help="list (default): the runs; trend: one metric over the runs; accept ID: mark a run "
                           "accepted; export: CSV or JSON; plot: a PNG of metrics over the runs")
    hist.add_argument("run", nargs="?", metavar="ID", help="accept: the run id (or a unique start of it)")
    hist.add_argument("--dir", default=os.environ.get("RMGAP_HISTORY"), metavar="DIR",
                      help="the history directory (default: $RMGAP_HISTORY)")
    hist.add_argument("--metric", action="append", default=None, metavar="SCOPE/METRIC",
                      help="trend/plot: Avg/BoN (default), Chat/Pair, All/Conciseness=terse/BoN, ... (plot: repeatable)")
    hist.add_argument("--format", choices=["csv", "json"], default="csv", help="export: csv (default) or json")
    hist.add_argument("--out", default=None, metavar="FILE", help="export: a file instead of stdout; plot: the PNG "
                      "(default rmgap-trend.png)")
    init = sub.add_parser("init", help="write a starter thresholds.yaml and a CI workflow into this repository")
    init.add_argument("--dir", default=".", metavar="DIR", help="the repository root (default: here)")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    add_calibrate_arguments(sub.add_parser("calibrate", help="measure the regression gate on simulated model "
                                           "pairs: false-block and detection rates"))
    cache = sub.add_parser("cache", help="show or clear the score cache")
    cache.add_argument("action", choices=["info", "clear"], help="info: stored scores per scorer; clear: delete them")
    cache.add_argument("--path", "--cache", "--rmgap-cache", default=None, metavar="PATH",
                       help="cache file (default: $RMGAP_CACHE or ~/.cache/rmgap-pytest/scores.sqlite)")
    which = cache.add_mutually_exclusive_group()
    which.add_argument("--fingerprint", default=None, metavar="F",
                       help="clear: only this scorer's scores (see `rmgap cache info`)")
    which.add_argument("--all", action="store_true", help="clear: every score, without asking")
    syn = sub.add_parser("synth", help="write schema-valid synthetic records (for scale tests, benchmarks)")
    syn.add_argument("--records", type=_positive_int, required=True, metavar="N", help="how many records")
    syn.add_argument("--out", required=True, metavar="FILE", help="the JSONL file to write")
    syn.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    syn.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_tool("rmgap")  # messages name this tool's flags (--label, not --rm-label)
    commands = {"eval": cmd_eval, "compare": cmd_compare, "synth": cmd_synth, "cache": cmd_cache,
                "calibrate": cmd_calibrate, "history": cmd_history, "init": cmd_init}
    code = EXIT_OK
    try:
        code = commands[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except RMGapError as exc:
        print(f"rmgap {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"rmgap {args.command}: interrupted; scores already computed are kept in the cache.",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rmgap compare a b | head -1`: the reader left; the verdict still stands
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
        return code
    finally:
        set_tool(None)


def cmd_eval(args: argparse.Namespace) -> int:
    values = option_values(args)
    if any(values.get(name) for name in _GATE):
        return _eval_gate(args, values)
    from .data import load_benchmark, subset_benchmark
    from .evaluation import DEFAULT_BOOT, evaluate
    from .report import terminal_summary, write_report_files
    from .results import ensure_dir, write_run
    from .session import settings_from_values
    from .thresholds import DEFAULT_MIN_SUPPORT

    out = _require_out(values)
    bench = load_benchmark(values["rmgap_data"])  # bad data fails first and leaves nothing behind
    if values["rmgap_limit"]:
        bench = subset_benchmark(bench, values["rmgap_limit"])
    ensure_dir(out)  # a bad --out fails now, not after an hour of scoring
    settings = settings_from_values(values)
    options = {**settings.scorer_options, **({"progress": False} if args.no_progress else {})}
    cache = settings.cache if settings.cache is not None else True
    from .scorers import load_scorer

    scorer = load_scorer(settings.model, cache=cache, **options)  # spec errors are usage errors (exit 2)
    try:
        ev = evaluate(bench, scorer, n_boot=args.bootstrap or DEFAULT_BOOT, seed=args.seed,
                      min_support=args.min_support or DEFAULT_MIN_SUPPORT, **options)
    except RMGapError as exc:
        return _scoring_failed(str(exc))
    except Exception as exc:  # a model or library failure mid-run (CUDA, a server): "broke", not bad input
        if os.environ.get("RMGAP_DEBUG"):
            raise
        return _scoring_failed(f"{type(exc).__name__}: {exc} (RMGAP_DEBUG=1 shows the traceback)")
    paths = write_run(ev, out)
    paths.update(write_report_files(ev, out))
    print(terminal_summary(ev, files=paths, width=_width()))
    return EXIT_OK


def _eval_gate(args: argparse.Namespace, values: dict) -> int:
    """``rmgap eval --thresholds/--baseline/--history``: the pytest gate's decisions, as an exit status."""
    from .report import terminal_summary
    from .session import GateSession, settings_from_values

    settings = settings_from_values(values)
    settings.report = _require_out(values)
    if args.bootstrap:
        settings.bootstrap = args.bootstrap
    if args.no_progress:
        settings.scorer_options["progress"] = False
    gate = GateSession.from_settings(settings)
    gate.prepare()
    if gate.error is not None:
        print(f"rmgap eval: the gate could not score the model, so no check was decided: {gate.error}",
              file=sys.stderr)
        return EXIT_SCORING_FAILED
    gate.finish()
    checks, comparison = gate.shown()
    assert gate.result is not None
    print(terminal_summary(gate.result.evaluation, checks=checks, comparison=comparison, files=gate.files,
                           width=_width()))
    for message in gate.messages:
        print(message)
    return EXIT_OK if gate.passed() else EXIT_REGRESSION


def _require_out(values: dict) -> str:
    if not values.get("rmgap_report"):
        raise UsageError("--out DIR is required: the directory for metrics.json, report.json, report.md, "
                         "report.html and heatmap.png (--rmgap-report DIR is the same option).")
    return values["rmgap_report"]


def _scoring_failed(exc: str) -> int:
    print(f"rmgap eval: scoring failed: {exc} (scores already computed are kept in the cache; rerun to continue)",
          file=sys.stderr)
    return EXIT_SCORING_FAILED


def _width() -> int:
    import shutil

    return shutil.get_terminal_size().columns


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs, format_comparison

    result = compare_runs(args.base, args.new, thresholds=args.thresholds, tolerance=args.tolerance)
    print(format_comparison(result, fmt=args.format))
    return EXIT_REGRESSION if result.regressed else EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import run_from_args

    print(run_from_args(args))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from .history import run_command

    print(run_command(args))
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from .starter import write_starter

    print(write_starter(args.dir, force=args.force))
    return EXIT_OK


def cmd_cache(args: argparse.Namespace) -> int:
    from .cache import CacheError, ScoreStore, resolve_cache_path

    path = resolve_cache_path(args.path or True)
    if path is None:
        print("rmgap cache: the cache is turned off (RMGAP_CACHE says so)")
        return EXIT_OK
    if not path.exists():
        print(f"rmgap cache: no cache file at {path} yet")
        return EXIT_OK
    store = ScoreStore(path)  # a file that is not a score cache is refused here, untouched
    entries = store.describe_all()
    if args.action == "clear":
        if args.fingerprint is None and not args.all:
            total = sum(e["scores"] for e in entries)
            if not sys.stdin.isatty():
                raise CacheError(f"`rmgap cache clear` would delete all {total} scores in {path}, and there is no "
                                 "terminal to confirm it. Fix: pass --all to delete them all, or --fingerprint F "
                                 "for one scorer's (`rmgap cache info` lists them).")
            answer = input(f"Delete all {total} scores of {len(entries)} scorers from {path}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("rmgap cache: nothing deleted")
                return EXIT_OK
        n = store.clear(args.fingerprint)
        print(f"rmgap cache: deleted {n} scores from {path}")
        return EXIT_OK
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["created_at"])) if e["created_at"] else "date unknown"
        print(f"  {e['scores']:>9} {e['unit'] or 'pair'} scores  {e['spec'] or '(spec unknown)'}  kind "
              f"{e['kind'] or '?'}, dtype {e['dtype'] or 'n/a'}, first scored {when}")
        print(f"            fingerprint {e['fingerprint']}")
    if not entries:
        print("  (empty)")
    return EXIT_OK


def cmd_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .errors import OutputError
    from .synth import write_synthetic

    if Path(args.out).exists() and not args.force:
        raise OutputError(f"{args.out} exists; rmgap synth does not overwrite files. Fix: pass --force to replace "
                          "it, or another --out.")
    path = write_synthetic(args.out, args.records, seed=args.seed)
    print(f"wrote {args.records} synthetic records to {path} (marked \"synthetic\": true; not RMGAP data)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
