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

from .errors import BaselineError
from .evaluate import Evaluation

REPORT_VERSION = 1
# Per-item columns a later comparison needs; the rest is rebuilt from the data file.
OUTCOME_COLUMNS = ["record_id", "group", "prompt", "winner", "wins", "bon", "invalid", "ranking", "top",
                   "s0", "s1", "s2", "s3"]


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
    out = ev.outcomes
    return _clean({
        "version": REPORT_VERSION,
        "meta": ev.meta,
        "counts": ev.counts,
        "reference": ev.reference,
        "metrics": ev.table.to_dict(orient="records"),
        **(extra or {}),
        "outcomes": {"columns": OUTCOME_COLUMNS, "rows": out[OUTCOME_COLUMNS].to_numpy().tolist()},
    })


def write_run(ev: Evaluation, out_dir: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write metrics.json and report.json; returns their paths."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": d / "metrics.json", "report": d / "report.json"}
    paths["metrics"].write_text(json.dumps(_clean(ev.reference), indent=2) + "\n")
    paths["report"].write_text(json.dumps(report_dict(ev, extra), indent=1) + "\n")
    return paths


def save_baseline(ev: Evaluation, path: str | Path) -> Path:
    """A baseline is a report.json written to the given path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(report_dict(ev), indent=1) + "\n")
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
    return run


def outcomes_from_run(run: dict[str, Any], items: pd.DataFrame) -> pd.DataFrame:
    """Rebuild a stored run's outcome table aligned with ``items`` (the current data's item table)."""
    stored = pd.DataFrame(run["outcomes"]["rows"], columns=run["outcomes"]["columns"])
    key = ["record_id", "group", "prompt"]
    merged = items.merge(stored.drop(columns=["winner"]), on=key, how="left", validate="one_to_one")
    if merged["wins"].isna().any() or len(stored) != len(items):
        raise BaselineError(f"{run.get('path', 'baseline')}: its items do not match the current data. "
                            "Fix: compare runs on the same benchmark file.")
    merged["wins"] = merged["wins"].astype(np.int64)
    merged["bon"] = merged["bon"].astype(bool)
    merged["invalid"] = merged["invalid"].astype(bool)
    for j in range(4):
        merged[f"s{j}"] = merged[f"s{j}"].astype(np.float64)  # None (non-finite) -> NaN
    return merged
