"""Run files: ``metrics.json`` (reference shape) and ``report.json`` (everything else).

``report.json`` is also the baseline format: it keeps the per-item outcomes,
so a later run can be compared item by item (``metrics.compare``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .findings import findings
from .data import DIMENSIONS
from .errors import BaselineError, OutputError
from .evaluation import Evaluation

REPORT_VERSION = 1
# Per-item columns a later comparison needs; the rest is rebuilt from the data file.
OUTCOME_COLUMNS = ["record_id", "domain", "group", "prompt", "winner", "winner_idx", *DIMENSIONS, "wins", "bon",
                   "invalid", "ranking", "top", "margin", "s0", "s1", "s2", "s3"]
_KEY = ["record_id", "group", "prompt"]


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null (invalid scores are counted separately)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    return value


def report_dict(ev: Evaluation, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**_head(ev, extra), "outcomes": {"columns": OUTCOME_COLUMNS, "rows": outcome_rows(ev.outcomes)}}


def _head(ev: Evaluation, extra: dict[str, Any] | None) -> dict[str, Any]:
    return _clean({"version": REPORT_VERSION, "meta": ev.meta, "counts": ev.counts, "reference": ev.reference,
                   "metrics": ev.table.to_dict(orient="records"),
                   "bias": ev.bias.to_dict(orient="records"),  # bias.bias_table: style bias and preference sensitivity
                   "findings": findings(ev.bias), **(extra or {})})


def outcome_rows(out: pd.DataFrame) -> list[list[Any]]:
    """Per item, the OUTCOME_COLUMNS as JSON-ready Python values (NaN/inf -> null), column by column.

    Vectorised per column: cleaning 13,164 x 22 values one by one cost most of report.json's time.
    """
    cols = []
    for c in OUTCOME_COLUMNS:
        v = out[c].to_numpy()
        obj = v.astype(object)  # numpy ints, floats, bools -> Python objects json knows
        bad = pd.isna(v) if v.dtype.kind not in "fc" else ~np.isfinite(v)
        obj[np.asarray(bad, bool)] = None
        cols.append(obj)
    return [list(row) for row in zip(*cols)] if cols and len(out) else []


def run_json(ev: Evaluation, extra: dict[str, Any] | None = None) -> str:
    """report.json's text: the run indented for reading, then one outcome row per line (same JSON as
    ``json.dumps(report_dict(...))``; one value per line made the file 4x larger and slower to write)."""
    head = json.dumps(_head(ev, extra), indent=1)
    rows = ",\n".join(json.dumps(r, separators=(",", ":")) for r in outcome_rows(ev.outcomes))
    columns = json.dumps(OUTCOME_COLUMNS)
    return f'{head[:-2]},\n "outcomes": {{\n  "columns": {columns},\n  "rows": [\n{rows}\n]}}\n}}\n'


def ensure_dir(path: str | Path, what: str = "report directory") -> Path:
    """Create ``path`` now, so a bad location is an error before any scoring, not after."""
    d = Path(path).expanduser()
    if d.exists() and not d.is_dir():
        raise OutputError(f"{d}: the {what} is an existing file. Fix: pass a directory path "
                          "(it is created when missing).")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{d}: cannot create the {what} ({exc.strerror}). Fix: pass a writable path.") from None
    return d


def ensure_parent(path: str | Path, what: str = "baseline file") -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutputError(f"{p}: the {what} is a directory. Fix: pass a file path such as baselines/rm.json.")
    ensure_dir(p.parent, f"{what}'s directory")
    return p


def write_run(ev: Evaluation, out_dir: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write metrics.json and report.json; returns their paths."""
    d = ensure_dir(out_dir)
    paths = {"metrics": d / "metrics.json", "report": d / "report.json"}
    paths["metrics"].write_text(json.dumps(_clean(ev.reference), indent=2) + "\n")
    paths["report"].write_text(run_json(ev, extra))
    return paths


def save_baseline(ev: Evaluation, path: str | Path) -> Path:
    """A baseline is a report.json written to the given path."""
    p = ensure_parent(path)
    p.write_text(run_json(ev))
    return p


def load_run(path: str | Path) -> dict[str, Any]:
    """Read a report.json / baseline file, with errors a user can act on."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.exists():
        raise BaselineError(f"{p}: the run file does not exist. Fix: point at a report.json written by "
                            "`rmgap eval --out DIR` or `pytest --rmgap-report=DIR`, or create a baseline with "
                            "--rmgap-update-baseline.")
    try:
        run = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{p}: not a valid report.json ({exc}). Fix: regenerate it with "
                            "--rmgap-update-baseline.") from None
    if not isinstance(run, dict) or "outcomes" not in run or "meta" not in run:
        raise BaselineError(f"{p}: not an rmgap report (no 'meta'/'outcomes'). Fix: use a report.json "
                            "written by rmgap-pytest.")
    if run.get("version") != REPORT_VERSION:
        raise BaselineError(f"{p}: report version {run.get('version')!r}, this rmgap-pytest reads "
                            f"{REPORT_VERSION}. Fix: regenerate the baseline with --rmgap-update-baseline.")
    run["path"] = str(p)
    data = run["meta"].get("data") if isinstance(run["meta"], dict) else None
    if not isinstance(data, dict) or "sha256" not in data or "spec" not in run["meta"]:
        raise BaselineError(f"{p}: its 'meta' lacks the model spec or the data file's sha256. Fix: regenerate "
                            "it with --rmgap-update-baseline.")
    outcomes_from_run(run)  # every column a comparison needs, checked now rather than mid-run
    return run


def outcomes_from_run(run: dict[str, Any]) -> pd.DataFrame:
    """A stored run's outcome table, as ``metrics.outcome_table`` built it."""
    try:
        out = pd.DataFrame(run["outcomes"]["rows"], columns=run["outcomes"]["columns"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"{run.get('path', 'run')}: its 'outcomes' table is malformed ({exc}). Fix: "
                            "regenerate it with this version of rmgap-pytest.") from None
    missing = [c for c in OUTCOME_COLUMNS if c not in out.columns]
    if missing:
        raise BaselineError(f"{run.get('path', 'run')}: its outcomes lack {', '.join(missing)}. Fix: regenerate "
                            "it with this version of rmgap-pytest.")
    out.insert(0, "item", np.arange(len(out)))
    for col, kind in (("wins", np.int64), ("winner_idx", np.int64), ("bon", bool), ("invalid", bool)):
        out[col] = out[col].astype(kind)
    for col in ("margin", "s0", "s1", "s2", "s3"):
        out[col] = out[col].astype(np.float64)  # None (non-finite) -> NaN
    return out


def align(base: pd.DataFrame, current: pd.DataFrame, where: str = "baseline") -> pd.DataFrame:
    """``base`` reordered to ``current``'s items; both runs must cover the same items."""
    b = base.set_index(_KEY)
    if len(base) != len(current) or b.index.has_duplicates:
        raise BaselineError(f"{where}: {len(base)} items vs {len(current)} in the current run. Fix: compare runs "
                            "of the same benchmark file.")
    try:
        aligned = b.loc[pd.MultiIndex.from_frame(current[_KEY])].reset_index()
    except KeyError:
        raise BaselineError(f"{where}: its items differ from the current run's. Fix: compare runs of the same "
                            "benchmark file.") from None
    aligned["item"] = current["item"].to_numpy()
    return aligned[current.columns.intersection(aligned.columns)]
