"""Run history: every run's report kept in one directory, like pytest-benchmark's saved runs.

``pytest --rmgap-history=DIR`` keeps each run as ``DIR/<id>.json`` (its
report.json) and appends one line to ``DIR/index.jsonl``: the run's id, time,
model spec, fingerprint, data sha256, git commit, the gate's outcome and the
reference metrics. The index is append-only (one short line per event, so
concurrent runs do not overwrite each other), and ``rmgap history`` reads only it.

A run is **accepted** when its gate passed (no check failed, nothing regressed)
on the whole data file (not a ``--rmgap-limit`` subset), or when someone marks
it with ``rmgap history accept ID`` (an ``accept`` line in the index).
``--rmgap-baseline=last`` compares with the newest accepted run on the same data.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BaselineError, RMGapError
from .metrics import AVG, METRICS

if TYPE_CHECKING:
    import pandas as pd

    from .evaluation import Evaluation

__all__ = ["INDEX", "HistoryError", "accept", "export_rows", "last_accepted", "plot_trend", "read_runs",
           "record_run", "trend"]

INDEX = "index.jsonl"


class HistoryError(RMGapError):
    """The history directory or a run in it cannot be used as asked."""


def record_run(directory: str | Path, ev: "Evaluation", checks: "pd.DataFrame", comparison: "pd.DataFrame | None",
               passed: bool) -> dict[str, Any]:
    """Keep one run: its report.json as ``DIR/<id>.json`` and its line in ``DIR/index.jsonl``; returns the line."""
    from .results import run_json

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = ev.meta
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base_id = f"{stamp}-{_model_tag(meta.get('fingerprint'))}"
    run_id, n = base_id, 1
    while (d / f"{run_id}.json").exists():
        n += 1
        run_id = f"{base_id}-{n}"
    subset = meta.get("data", {}).get("subset")
    why = "" if passed and not subset else ("a --rmgap-limit subset" if subset else "the gate did not pass")
    git = meta.get("git") or {}
    entry = {"event": "run", "id": run_id, "file": f"{run_id}.json", "time": meta.get("time"),
             "spec": meta.get("spec"), "fingerprint": meta.get("fingerprint"),
             "data_sha256": meta.get("data", {}).get("sha256"), "data": meta.get("data", {}).get("path"),
             "subset": subset, "commit": git.get("commit"), "dirty": git.get("dirty"),
             "gate": "passed" if passed else "failed", "accepted": not why, "why": why,
             "metrics": _finite(ev.reference)}
    extra = {"checks": checks.to_dict(orient="records"),
             "comparison": None if comparison is None else comparison.to_dict(orient="records"), "history": entry}
    (d / entry["file"]).write_text(run_json(ev, extra), encoding="utf-8")
    with (d / INDEX).open("a", encoding="utf-8") as fh:  # one write per line: appends do not interleave
        fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
    return entry


def _model_tag(fingerprint: str | None) -> str:
    """Eight hex digits naming the model in a run id and file name: a model's fingerprint is sha256 hex already
    (its first eight, as ``rmgap cache info`` lists it); others ("builtin:length:v1") are hashed, since their
    text has characters file names must not and their first eight would not tell two builtins apart."""
    if not fingerprint:
        return "uncached"
    if re.fullmatch(r"[0-9a-f]{8,}", fingerprint):
        return fingerprint[:8]
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:8]


def read_runs(directory: str | Path) -> list[dict[str, Any]]:
    """The runs in the index, oldest first, with ``accepted`` as the accept lines left it."""
    d = Path(directory)
    index = d / INDEX
    if not index.is_file():
        raise HistoryError(f"{d}: no run history here (no {INDEX}). Fix: run the gate with --rmgap-history={d} "
                           "first, or pass the directory your runs are kept in (--dir, or RMGAP_HISTORY).")
    runs: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(index.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise HistoryError(f"{index}, line {n}: not valid JSON. Fix: delete that line (each line is one "
                               "run or one accept).") from None
        if event.get("event") == "run":
            runs[event["id"]] = event
        elif event.get("event") == "accept" and event.get("id") in runs:
            runs[event["id"]].update(accepted=True, why="", accepted_by=event.get("note", "rmgap history accept"))
    return list(runs.values())


def accept(directory: str | Path, run_id: str, note: str = "") -> dict[str, Any]:
    """Mark a run accepted (``rmgap history accept ID``): ``--rmgap-baseline=last`` may then pick it."""
    runs = {r["id"]: r for r in read_runs(directory)}
    matches = [r for i, r in runs.items() if i == run_id or i.startswith(run_id)]
    if len(matches) != 1:
        from .errors import did_you_mean

        what = "no run" if not matches else f"{len(matches)} runs"
        raise HistoryError(f"{directory}: {what} with id {run_id!r}.{did_you_mean(run_id, runs)} Fix: pass an id "
                           "(or a unique start of one) that `rmgap history list` shows.")
    run = matches[0]
    with (Path(directory) / INDEX).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"event": "accept", "id": run["id"], "time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime()),
                             "note": note or "rmgap history accept"}, separators=(",", ":")) + "\n")
    run.update(accepted=True, why="")
    return run


def last_accepted(directory: str | Path | None, data_sha256: str) -> dict[str, Any] | None:
    """The newest accepted run on the same data, loaded as a baseline (``results.load_run``); None if none."""
    from .results import load_run

    if directory is None or not (Path(directory) / INDEX).is_file():
        return None
    for run in reversed(read_runs(directory)):
        if run.get("accepted") and run.get("data_sha256") == data_sha256:
            path = Path(directory) / run["file"]
            try:
                return load_run(path)
            except BaselineError as exc:
                raise HistoryError(f"the last accepted run {run['id']} cannot be read: {exc}") from None
    return None


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return None if isinstance(value, float) and not math.isfinite(value) else value


def parse_metric(name: str) -> tuple[str, str]:
    """``"Avg/BoN"`` -> ("Avg", "BoN"); ``"BoN"`` -> ("Avg", "BoN"); ``"All/Conciseness=terse/BoN"`` -> a cell."""
    scope, _, metric = name.rpartition("/")
    scope = scope or AVG
    if metric not in METRICS:
        from .errors import did_you_mean

        raise HistoryError(f"metric {name!r}: {metric!r} is not one of {', '.join(METRICS)}.{did_you_mean(metric, METRICS)} "
                           "Fix: write SCOPE/METRIC, e.g. Avg/BoN, Chat/Pair or All/Conciseness=terse/BoN.")
    return scope, metric


def trend(directory: str | Path, name: str = "Avg/BoN") -> list[tuple[dict[str, Any], float | None]]:
    """``(run, value)`` for one metric over every run, oldest first (None where the run lacks it)."""
    scope, metric = parse_metric(name)
    out = []
    for run in read_runs(directory):
        if "=" not in scope:
            value = (run.get("metrics") or {}).get(metric, {}).get(scope)
        else:  # a cell: only the run's own file has it
            value = _cell_value(Path(directory) / run["file"], scope, metric)
        out.append((run, value))
    return out


def _cell_value(path: Path, cell: str, metric: str) -> float | None:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["metrics"]
    except (OSError, ValueError, KeyError):
        return None
    domain, _, rest = cell.partition("/")
    dimension, _, level = rest.partition("=")
    for r in rows:
        if (r.get("kind"), r.get("domain"), r.get("dimension"), r.get("level"), r.get("metric")) == \
                ("cell", domain, dimension, level, metric):
            return r.get("value")
    return None


def export_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per run (for CSV): the index fields and every reference metric as ``METRIC/DOMAIN``."""
    rows = []
    for r in runs:
        row = {k: r.get(k) for k in ("id", "time", "spec", "fingerprint", "commit", "dirty", "data_sha256", "gate",
                                     "accepted")}
        row["subset"] = f"{r['subset']['records']} of {r['subset']['of']}" if r.get("subset") else ""
        for metric, by_domain in (r.get("metrics") or {}).items():
            for domain, value in by_domain.items():
                row[f"{metric}/{domain}"] = value
        rows.append(row)
    return rows


def plot_trend(directory: str | Path, names: list[str], out: str | Path) -> Path:
    """A PNG of the metrics over the runs; accepted runs drawn filled, others hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=120)
    for name in names:
        points = [(i, v, run.get("accepted")) for i, (run, v) in enumerate(trend(directory, name)) if v is not None]
        if not points:
            continue
        xs, ys, acc = zip(*points)
        line, = ax.plot(xs, ys, label=name, linewidth=1.5)
        ax.scatter([x for x, a in zip(xs, acc) if a], [y for y, a in zip(ys, acc) if a], color=line.get_color(), s=22)
        ax.scatter([x for x, a in zip(xs, acc) if not a], [y for y, a in zip(ys, acc) if not a], s=22,
                   facecolors="white", edgecolors=line.get_color())
    runs = read_runs(directory)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([str(r.get("time") or r["id"])[:10] for r in runs], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("value")
    ax.set_title(f"RMGAP history: {Path(directory).name} (filled: accepted runs)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out)
    fig.savefig(path)
    plt.close(fig)
    return path


def format_runs(runs: list[dict[str, Any]]) -> str:
    """``rmgap history list``: one line per run, newest last."""
    lines = [f"{'id':<27} {'gate':<7} {'acc':<4} {'Avg BoN':>7} {'Avg Pair':>8}  {'commit':<9} spec"]
    for r in runs:
        m = r.get("metrics") or {}
        bon, pair = m.get("BoN", {}).get(AVG), m.get("Pair", {}).get(AVG)
        sub = f"  [subset {r['subset']['records']} of {r['subset']['of']}]" if r.get("subset") else ""
        commit = (r.get("commit") or "-")[:8] + ("+" if r.get("dirty") else "")
        lines.append(f"{r['id']:<27} {r.get('gate', '?'):<7} {'yes' if r.get('accepted') else 'no':<4} "
                     f"{_num(bon):>7} {_num(pair):>8}  {commit:<9} {r.get('spec')}{sub}")
    if not runs:
        lines.append("(no runs yet)")
    return "\n".join(lines)


def format_trend(points: list[tuple[dict[str, Any], float | None]], name: str) -> str:
    """``rmgap history trend``: the metric per run with a bar, and the change against the previous run."""
    lines = [f"{name} over {len(points)} runs (* accepted)"]
    prev = None
    for run, value in points:
        bar = "#" * int(round((value or 0) * 40))
        delta = "" if value is None or prev is None else f" ({value - prev:+.3f})"
        lines.append(f"{run['id']:<27}{'*' if run.get('accepted') else ' '} {_num(value):>6}{delta:<10} {bar}")
        prev = value if value is not None else prev
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run_command(args: Any) -> str:
    """``rmgap history ACTION`` (cli.py defines the arguments); returns what to print."""
    if not args.dir:
        raise HistoryError("no history directory given. Fix: pass --dir DIR (the directory given to "
                           "--rmgap-history), or set RMGAP_HISTORY.")
    names = args.metric or ["Avg/BoN"]
    if args.action == "accept":
        if not args.run:
            raise HistoryError("rmgap history accept needs a run id. Fix: rmgap history accept ID (ids: rmgap "
                               "history list).")
        run = accept(args.dir, args.run)
        return f"accepted {run['id']} ({run.get('spec')}): --rmgap-baseline=last now compares with it or a newer one"
    if args.action == "trend":
        return "\n\n".join(format_trend(trend(args.dir, n), n) for n in names)
    if args.action == "plot":
        path = plot_trend(args.dir, names, args.out or "rmgap-trend.png")
        return f"wrote {path}"
    runs = read_runs(args.dir)
    if args.action == "export":
        text = _export_text(runs, args.format)
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
            return f"wrote {len(runs)} runs to {args.out}"
        return text.rstrip("\n")
    return format_runs(runs)


def _export_text(runs: list[dict[str, Any]], fmt: str) -> str:
    rows = export_rows(runs)
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    import csv
    import io

    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
