"""``rmgap compare BASE NEW``: the gate's baseline comparison outside pytest.

Same statistics, same settings (the thresholds file's ``regression:`` section),
same verdicts as ``pytest --rmgap-baseline``: both call
``regression.compare_outcomes``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import BaselineError
from .regression import RegressionSettings, compare_outcomes
from .results import align, load_run, outcomes_from_run
from .thresholds import load_thresholds


@dataclass
class Comparison:
    base: dict[str, Any]
    new: dict[str, Any]
    table: pd.DataFrame  # regression.COMPARE_COLUMNS
    settings: RegressionSettings

    @property
    def tolerance(self) -> float:
        return self.settings.tolerance

    @property
    def gated(self) -> pd.DataFrame:
        """The units in the tested family (the pytest gate's regression items)."""
        return self.table[self.table["gated"].astype(bool)]

    @property
    def regressed(self) -> bool:
        return bool(self.table["regressed"].any())


def compare_runs(base: str | Path, new: str | Path, *, thresholds: str | Path | None = None,
                 tolerance: float | None = None, confidence: float | None = None,
                 n_boot: int | None = None) -> Comparison:
    """Compare two report.json files item by item; runs are self-contained, no data file needed.

    ``thresholds``: the file the gate uses (None: the defaults), so both decide alike;
    ``tolerance``, ``confidence`` and ``n_boot`` override its ``regression:`` values.
    """
    settings = load_thresholds(thresholds).regression_settings()
    given = dict(tolerance=tolerance, confidence=confidence, n_boot=n_boot)
    settings = replace(settings, **{k: v for k, v in given.items() if v is not None})
    b, n = load_run(base), load_run(new)
    if b["meta"]["data"]["sha256"] != n["meta"]["data"]["sha256"]:
        raise BaselineError(f"{b['path']} and {n['path']} were scored on different benchmark files "
                            f"({b['meta']['data']['path']} vs {n['meta']['data']['path']}). Fix: compare runs of "
                            "the same data.")
    cur = outcomes_from_run(n)
    table = compare_outcomes(align(outcomes_from_run(b), cur, b["path"]), cur, settings)
    return Comparison(b, n, table, settings)


def format_comparison(result: Comparison, max_cells: int = 20, fmt: str = "text") -> str:
    """Domain metrics side by side, then every regressed cell, each with its adjusted interval and MDE.

    ``fmt``: text (this), json (``comparison_json``) or md (``comparison_markdown``).
    """
    if fmt == "json":
        return comparison_json(result)
    if fmt == "md":
        return comparison_markdown(result, max_cells)
    s, t = result.settings, result.table
    lines = [f"baseline: {result.base['meta']['spec']} ({result.base['path']})",
             f"current:  {result.new['meta']['spec']} ({result.new['path']})",
             f"a unit regresses when its family-wise {s.confidence:.0%} interval (all "
             f"{int(t['gated'].sum())} gated units at once, step-down sign-flip max-T) lies below zero and it drops "
             f"by more than {s.tolerance:g}; mde = the smallest drop the unit can flag at this size", "",
             f"{'metric':<24}{'baseline':>9}{'current':>9}{'diff':>8}   {'adjusted interval':<18}{'mde':>7}  verdict"]
    for r in t[t["kind"] == "domain"].itertuples(index=False):
        lines.append(_line(f"{r.domain}/{r.metric}", r))
    why = t[t["kind"].isin(["bias", "sensitivity"])]
    if len(why):
        lines += ["", f"style bias and sensitivity, in SD of reward (tolerance {s.sd_tolerance:g}; a bias regresses "
                      "when it moves further from zero, docs/why.md):"]
        lines += [_line(f"{r.kind}/{r.dimension if r.kind == 'bias' else r.domain}", r)
                  for r in why.itertuples(index=False)]
    cells = t[(t["kind"] == "cell") & t["regressed"]]
    if len(cells):
        lines += ["", f"regressed cells (support >= {s.min_support} prompt groups):"]
        lines += [_line(f"{r.domain}/{r.dimension}={r.level}", r, r.metric)
                  for r in cells.head(max_cells).itertuples(index=False)]
        if len(cells) > max_cells:
            lines.append(f"... and {len(cells) - max_cells} more (see report.json)")
    n = int(t["regressed"].sum())
    lines += ["", f"{n} regression{'s' if n != 1 else ''}" if n else "no regressions"]
    return "\n".join(lines)


def _line(name: str, r: Any, metric: str = "") -> str:
    verdict = "REGRESSED" if r.regressed else ("ok" if r.gated else "not gated")
    interval = f"[{r.lo:+.3f}, {r.hi:+.3f}]"
    mde = "   n/a" if pd.isna(r.mde) else f"{r.mde:>7.3f}"
    if metric:
        return (f"{name:<44}{metric:<12}{r.baseline:>6.3f} -> {r.current:.3f} ({r.diff:+.3f}) "
                f"{interval} mde {mde.strip()} {verdict}")
    return f"{name:<24}{r.baseline:>9.3f}{r.current:>9.3f}{r.diff:>+8.3f}   {interval:<18}{mde:>7}  {verdict}"


def comparison_json(result: Comparison) -> str:
    """Every unit of the comparison as JSON (``rmgap compare --format json``)."""
    import json

    from .results import _clean

    doc = {"baseline": {"spec": result.base["meta"]["spec"], "path": result.base["path"]},
           "current": {"spec": result.new["meta"]["spec"], "path": result.new["path"]},
           "tolerance": result.settings.tolerance, "confidence": result.settings.confidence,
           "regressed": result.regressed, "units": result.table.to_dict(orient="records")}
    return json.dumps(_clean(doc), indent=1)


def comparison_markdown(result: Comparison, max_cells: int = 20) -> str:
    """A pull-request comment: the verdict, the domain metrics and the regressed cells (``--format md``)."""
    t, s = result.table, result.settings
    n = int(t["regressed"].sum())
    head = f"## {'❌ ' + str(n) + ' regression' + ('s' if n != 1 else '') if n else '✅ no regressions'}"
    lines = [head, "", f"`{result.base['meta']['spec']}` ({result.base['path']}) -> `{result.new['meta']['spec']}` "
             f"({result.new['path']}); family-wise {s.confidence:.0%} intervals, tolerance {s.tolerance:g}", "",
             "| metric | baseline | current | diff | adjusted interval | verdict |", "|---|---:|---:|---:|---|---|"]

    def row(name: str, r: Any) -> str:
        verdict = "**REGRESSED**" if r.regressed else ("ok" if r.gated else "not gated")
        return (f"| {name} | {r.baseline:.3f} | {r.current:.3f} | {r.diff:+.3f} | [{r.lo:+.3f}, {r.hi:+.3f}] | "
                f"{verdict} |")

    lines += [row(f"{r.domain}/{r.metric}", r) for r in t[t["kind"] == "domain"].itertuples(index=False)]
    cells = t[(t["kind"] == "cell") & t["regressed"]]
    lines += [row(f"{r.domain}/{r.dimension}={r.level} {r.metric}", r)
              for r in cells.head(max_cells).itertuples(index=False)]
    if len(cells) > max_cells:
        lines += ["", f"_... and {len(cells) - max_cells} more regressed cells (see report.json)._"]
    return "\n".join(lines) + "\n"
