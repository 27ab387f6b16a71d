"""``rmgap``: the evaluation outside pytest.

    rmgap eval --rm-model SPEC [--data PATH] --out DIR
    rmgap compare BASE NEW
    rmgap calibrate [--data PATH] [--runs N] [--model consistent|inconsistent|heavy]
    rmgap synth --records N --out FILE
    rmgap cache info|clear

Bad input exits 2 with one paragraph (what, where, how to fix), never a
traceback; an evaluation that completed exits 0 whatever its scores.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .errors import RMGapError

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE = 0, 1, 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_scorer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rm-model", required=True, metavar="SPEC",
                   help="model directory, classifier:PATH, logprob:PATH, dpo:PATH, builtin:length|random|minilm, "
                        "or python:MODULE:ATTR")
    p.add_argument("--ref-model", metavar="PATH", help="reference model for dpo:")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--batch-size", type=_positive_int, default=None, help="fixed pairs per batch")
    p.add_argument("--max-length", type=_positive_int, default=None, help="tokens per pair; longer prompts lose "
                   "their start")
    p.add_argument("--aggregate", default=None, choices=["mean", "sum", "discounted_sum"],
                   help="how response token log-probs are combined: logprob mean (default), dpo sum (default)")
    p.add_argument("--label", type=int, default=None, help="classifier: the logit of a multi-label head (0-based)")
    p.add_argument("--beta", type=float, default=None, help="dpo: beta of the DPO implicit reward (default 0.1)")
    p.add_argument("--chat-template", default=None, metavar="FILE", help="a Jinja chat template used instead of "
                   "the tokenizer's (classifier, logprob, dpo)")
    p.add_argument("--pool", default=None, choices=["last", "last_non_pad"], help="classifier: read the reward at "
                   "the pair's last token (default) or at the last token that is not the pad id")
    p.add_argument("--add-bos", action="store_true", default=None, help="chat templates: prepend the tokenizer's "
                   "BOS when the template does not write it")
    p.add_argument("--allow-pickle", action="store_true", default=None,
                   help="load *.bin/*.pt weights (default: safetensors only)")
    p.add_argument("--trust-remote-code", action="store_true", default=None,
                   help="run the model repository's own Python code (off by default)")
    p.add_argument("--scorer-version", default=None, help="python: and http(s): scorers are cached only under a version")
    p.add_argument("--concurrency", type=_positive_int, default=None,
                   help="remote kinds: requests in flight (default 16; http(s): 1)")
    p.add_argument("--api-model", default=None, metavar="NAME", help="remote kinds: the served model name to request")
    p.add_argument("--tokenizer", default=None, metavar="DIR", help="vllm:/sglang: render on the client with this "
                   "model directory's tokenizer files and config.json, and send token ids")
    p.add_argument("--cache", default=None, metavar="PATH", help="score cache file (default: $RMGAP_CACHE or "
                   "~/.cache/rmgap-pytest/scores.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="score every pair again; read and write no cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def scorer_options(args: argparse.Namespace) -> dict:
    return dict(ref_model=args.ref_model, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                max_length=args.max_length, aggregate=args.aggregate, trust_remote_code=args.trust_remote_code,
                label=args.label, allow_pickle=args.allow_pickle, beta=args.beta, chat_template=args.chat_template,
                pool=args.pool, add_bos=args.add_bos,
                version=args.scorer_version, progress=False if args.no_progress else None,
                concurrency=args.concurrency, api_model=args.api_model, tokenizer=args.tokenizer)


def cache_setting(args: argparse.Namespace) -> bool | str:
    return False if args.no_cache else (args.cache or True)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must lie between 0 and 1")
    return value


def add_calibrate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, metavar="PATH", help="RMGAP JSONL file (default: the embedded sample)")
    p.add_argument("--thresholds", default=None, metavar="PATH", help="the gate's thresholds file (default: built-in)")
    p.add_argument("--runs", type=_positive_int, default=200, help="model pairs per scenario (default 200)")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (the gate's sign-flip seed comes from the "
                   "thresholds)")
    p.add_argument("--tolerance", type=_fraction, default=None, help="override regression.tolerance")
    p.add_argument("--confidence", type=_fraction, default=None, help="override regression.confidence")
    p.add_argument("--n-boot", type=_positive_int, default=None, help="override regression.n_boot (sign flips)")
    p.add_argument("--rho", type=_fraction, nargs="+", default=None, metavar="R",
                   help="noise correlations between the two runs (default 0.5 0.9)")
    p.add_argument("--drop", type=_fraction, default=0.03, help="uniform BoN drop to detect (default 0.03; 0 skips)")
    p.add_argument("--cell-drop", type=_fraction, default=0.10, help="BoN drop in one cell (default 0.10; 0 skips)")
    p.add_argument("--follow-drop", type=_fraction, nargs="+", default=[0.15], metavar="F",
                   help="a model that follows users this share less, one scenario per value (default 0.15, about 3 "
                        "BoN points; 0 skips): the sensitivity units vs the BoN units")
    p.add_argument("--cell", default="All/Conciseness=terse", help="the cell that drops (default "
                   "All/Conciseness=terse)")
    p.add_argument("--model", default="consistent", choices=["consistent", "inconsistent", "heavy"],
                   help="simulated reward model preset (default consistent)")
    p.add_argument("--bon", type=_fraction, default=None, help="the model's expected BoN (default 0.45)")
    p.add_argument("--noise", default=None, choices=["normal", "logistic", "t3"], help="noise distribution")
    p.add_argument("--record-share", type=_fraction, default=None, help="noise variance shared by a record's prompts")
    p.add_argument("--group-share", type=_fraction, default=None, help="noise variance shared by a group's "
                   "paraphrases (higher: more consistent)")
    p.add_argument("--difficulty", type=float, default=None, help="sd of log signal across records")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmgap", description="RMGAP evaluation of reward models.")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="score a reward model on RMGAP and write the report files")
    add_scorer_arguments(ev)
    ev.add_argument("--data", default=None, metavar="PATH", help="RMGAP JSONL file (default: the embedded sample)")
    ev.add_argument("--out", required=True, metavar="DIR", help="where metrics.json, report.json, report.md, report.html and heatmap.png go")
    ev.add_argument("--bootstrap", type=_positive_int, default=None, help="bootstrap draws (default 1000)")
    ev.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ev.add_argument("--min-support", type=_positive_int, default=None, help="prompt groups a cell needs to "
                    "enter a preference gap (default: from thresholds defaults)")
    cmp_ = sub.add_parser("compare", help="compare two runs item by item (paired bootstrap)")
    cmp_.add_argument("base", help="baseline report.json (or its directory)")
    cmp_.add_argument("new", help="new report.json (or its directory)")
    cmp_.add_argument("--tolerance", type=float, default=None, help="allowed drop before a regression counts")
    cmp_.add_argument("--thresholds", default=None, metavar="PATH", help="the gate's thresholds file, so both "
                      "decide alike (default: built-in)")
    add_calibrate_arguments(sub.add_parser("calibrate", help="measure the regression gate on simulated model "
                                           "pairs: false-block and detection rates"))
    cache = sub.add_parser("cache", help="show or clear the score cache")
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--path", default=None, help="cache file (default: $RMGAP_CACHE or "
                       "~/.cache/rmgap-pytest/scores.sqlite)")
    which = cache.add_mutually_exclusive_group()
    which.add_argument("--fingerprint", default=None, help="clear: only this scorer's scores (see `rmgap cache info`)")
    which.add_argument("--all", action="store_true", help="clear: every score, without asking")
    syn = sub.add_parser("synth", help="write schema-valid synthetic records (for scale tests, benchmarks)")
    syn.add_argument("--records", type=_positive_int, required=True)
    syn.add_argument("--out", required=True, metavar="FILE")
    syn.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"eval": cmd_eval, "compare": cmd_compare, "synth": cmd_synth,
                "cache": cmd_cache, "calibrate": cmd_calibrate}[args.command](args)
    except RMGapError as exc:
        print(f"rmgap {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"rmgap {args.command}: interrupted; scores already computed are kept in the cache.",
              file=sys.stderr)
        return 130


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import DEFAULT_BOOT, evaluate
    from .report import terminal_summary
    from .results import write_run
    from .thresholds import DEFAULT_MIN_SUPPORT

    from .data import load_benchmark
    from .results import ensure_dir

    bench = load_benchmark(args.data)  # bad data fails first and leaves nothing behind
    ensure_dir(args.out)  # a bad --out fails now, not after an hour of scoring
    ev = evaluate(bench, args.rm_model, cache=cache_setting(args), n_boot=args.bootstrap or DEFAULT_BOOT,
                  seed=args.seed, min_support=args.min_support or DEFAULT_MIN_SUPPORT, **scorer_options(args))
    paths = write_run(ev, args.out)
    from .report import write_report_files

    paths.update(write_report_files(ev, args.out))
    import shutil

    print(terminal_summary(ev, files=paths, width=shutil.get_terminal_size().columns))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs, format_comparison

    result = compare_runs(args.base, args.new, thresholds=args.thresholds, tolerance=args.tolerance)
    print(format_comparison(result))
    return EXIT_REGRESSION if result.regressed else EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import run_from_args

    print(run_from_args(args))
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
    from .synth import write_synthetic

    path = write_synthetic(args.out, args.records, seed=args.seed)
    print(f"wrote {args.records} synthetic records to {path} (marked \"synthetic\": true; not RMGAP data)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
