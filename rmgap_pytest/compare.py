"""``rmgap compare BASE NEW``: the gate's baseline comparison outside pytest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import BaselineError
from .metrics import compare
from .results import align, load_run, outcomes_from_run
from .thresholds import DEFAULTS


@dataclass
class Comparison:
    base: dict[str, Any]
    new: dict[str, Any]
    table: pd.DataFrame  # metrics.COMPARE_COLUMNS
    tolerance: float
    min_support: int = DEFAULTS["min_support"]

    @property
    def gated(self) -> pd.DataFrame:
        """Domain rows, and cells with enough prompt groups to gate on (as the pytest gate)."""
        t = self.table
        return t[(t["kind"] == "domain") | (t["support"] >= self.min_support)]

    @property
    def regressed(self) -> bool:
        return bool(self.gated["regressed"].any())


def compare_runs(base: str | Path, new: str | Path, *, tolerance: float | None = None,
                 confidence: float | None = None, n_boot: int | None = None) -> Comparison:
    """Compare two report.json files item by item; runs are self-contained, no data file needed."""
    b, n = load_run(base), load_run(new)
    if b["meta"]["data"]["sha256"] != n["meta"]["data"]["sha256"]:
        raise BaselineError(f"{b['path']} and {n['path']} were scored on different benchmark files "
                            f"({b['meta']['data']['path']} vs {n['meta']['data']['path']}). Fix: compare runs of "
                            "the same data.")
    reg = DEFAULTS["regression"]
    tol = reg["tolerance"] if tolerance is None else tolerance
    cur = outcomes_from_run(n)
    table = compare(align(outcomes_from_run(b), cur, b["path"]), cur, tolerance=tol,
                    confidence=confidence or reg["confidence"], n_boot=n_boot or reg["n_boot"], seed=reg["seed"])
    return Comparison(b, n, table, tol)


def format_comparison(result: Comparison) -> str:
    """Domain metrics side by side, then every regressed metric (cells included)."""
    t = result.table
    lines = [f"baseline: {result.base['meta']['spec']} ({result.base['path']})",
             f"current:  {result.new['meta']['spec']} ({result.new['path']})",
             f"tolerance {result.tolerance:g}; a regression drops by more than that with a 95% paired-bootstrap "
             "interval below zero", "",
             f"{'metric':<22}{'baseline':>9}{'current':>9}{'diff':>8}   {'95% interval':<17} verdict"]
    dom = t[t["kind"] == "domain"]
    for r in dom.itertuples(index=False):
        lines.append(_line(f"{r.domain}/{r.metric}", r))
    g = result.gated
    cells = g[(g["kind"] == "cell") & g["regressed"]]
    if len(cells):
        lines += ["", f"regressed cells (support >= {result.min_support} prompt groups):"]
        lines += [_line(f"{r.domain}/{r.dimension}={r.level}", r, r.metric) for r in cells.head(20).itertuples(index=False)]
        if len(cells) > 20:
            lines.append(f"... and {len(cells) - 20} more (see report.json)")
    n = int(g["regressed"].sum())
    lines += ["", f"{n} regression{'s' if n != 1 else ''}" if n else "no regressions"]
    return "\n".join(lines)


def _line(name: str, r: Any, metric: str = "") -> str:
    verdict = "REGRESSED" if r.regressed else "ok"
    if metric:
        return (f"{name:<38}{metric:<12}{r.baseline:>6.3f} -> {r.current:.3f} ({r.diff:+.3f}) "
                f"[{r.lo:+.3f}, {r.hi:+.3f}] {verdict}")
    return (f"{name:<22}{r.baseline:>9.3f}{r.current:>9.3f}{r.diff:>+8.3f}   [{r.lo:+.3f}, {r.hi:+.3f}]"
            f"{'':<2} {verdict}")
