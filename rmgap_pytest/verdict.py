"""What the gate decided, told for a reader: the verdict, failures by kind, regressions with what they can see.

Reads the gate's checks (``gate.CHECK_COLUMNS``) and the baseline comparison
(``metrics.compare``: one row per unit and metric; ``lo``/``hi`` are the
interval the decision uses, family-wise adjusted where the comparison says so
with a ``gated`` column; ``mde`` is the smallest drop the unit could be called a
regression at this data size). Older comparisons without ``mde`` or ``gated``
still render: ``mde`` is then unknown and every row counts as gated.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .evaluation import Evaluation
from .metrics import ALL, AVG
from .views import View, fmt, fmt_ci, fmt_diff, fmt_est, fmt_int, gaps, label, min_support, num, rows_of, worst_cells
from .words import DIMENSION_NOUNS, users, who

# Failures are grouped by what failed, in this order; avg checks read as domains.
GROUPS: tuple[tuple[str, str], ...] = (("regression", "Regressions"), ("domain", "Domains"), ("cell", "Cells"),
                                       ("gap", "Preference gaps"), ("blindness", "Prompt blindness"),
                                       ("bias", "Style biases"), ("sensitivity", "Sensitivity floors"))
CHECK_HEADER = ["Check", "Metric", "Value [95%]", "Threshold", "Past by", "Groups", "Who", "Reason"]
CHECK_ALIGN = "llrlrrll"


def group_of(kind: Any) -> str:
    return "domain" if kind == "avg" else str(kind)


# ---- one check row ------------------------------------------------------------------------------------------

def excess(value: Any, threshold: Any, direction: Any) -> float:
    """How far past its threshold a value is (> 0: failed by that much); inf when there is no value."""
    v, t = num(value), num(threshold)
    if math.isnan(t):
        return -math.inf
    if math.isnan(v):
        return math.inf
    return t - v if direction == "min" else v - t


def bound_word(kind: Any, direction: Any) -> str:
    if kind == "regression":
        return "tolerance"
    return "floor" if direction == "min" else "ceiling"


def straddles(value: Any, lo: Any, hi: Any, threshold: Any, direction: Any) -> bool:
    """A failed floor (ceiling) whose 95% interval still reaches it: the data cannot tell the two apart."""
    v, lo, hi, t = num(value), num(lo), num(hi), num(threshold)
    if any(math.isnan(x) for x in (v, lo, hi, t)):
        return False
    return hi >= t if direction == "min" else lo <= t


def outcome_note(r: Any) -> str:
    """Why a failed row failed, in words; floors decide on the point estimate, so say when it is borderline."""
    if r.kind == "regression":
        return str(r.reason or "")
    if math.isnan(num(r.value)):
        return str(r.reason or "no value")
    word = bound_word(r.kind, r.direction)
    if straddles(r.value, r.lo, r.hi, r.threshold, r.direction):
        return f"not distinguishable from the {word} at this support"
    side = "below the floor" if r.direction == "min" else "above the ceiling"
    extra = str(r.reason or "")
    return f"{side}; {extra.split(': ', 1)[-1]}" if extra and extra not in (side, "below the floor") else side


def row_line(r: Any) -> str:
    """'BoN 0.240 [0.19, 0.30] vs floor 0.250: not distinguishable from the floor at this support'."""
    return row_texts(r)[0]


def row_texts(r: Any) -> list[str]:
    """One failed row in words, longest first; the shorter forms keep every number and drop only words."""
    name = f"{r.metric} change" if r.kind == "regression" else str(r.metric)
    word = bound_word(r.kind, r.direction)
    bound = fmt(r.threshold, "+.3f") if r.kind == "regression" else fmt(r.threshold)
    est = fmt_est(r.value, r.lo, r.hi)
    if r.kind == "regression":  # the interval the decision used is the family-wise one: say so
        est = f"{fmt(r.value, '+.3f')} [family-wise {fmt_ci(r.lo, r.hi)[1:]}"
    full = f"{name} {est} vs {word} {bound}: {outcome_note(r)}"
    if r.kind == "regression":
        moved = "moved away from zero" if r.metric == "Style bias" else "dropped"
        short = f"{name} {est}: {moved} more than the tolerance {fmt(abs(num(r.threshold)))}"
    elif math.isnan(num(r.value)):
        short = f"{name}: no value ({word} {bound})"
    elif straddles(r.value, r.lo, r.hi, r.threshold, r.direction):
        short = f"{name} {est}: not distinguishable from the {word} {bound}"
    else:
        short = f"{name} {est}: {'below the floor' if r.direction == 'min' else 'above the ceiling'} {bound}"
    tiny = f"{name} {est} {'<' if r.direction == 'min' else '>'} {bound}"  # the terminal's one-line lists
    if r.kind != "regression" and straddles(r.value, r.lo, r.hi, r.threshold, r.direction):
        tiny += ", not distinguishable"
    return [full, short, tiny]


def check_who(r: Any) -> str:
    return who(r.kind, r.domain, r.dimension, r.level)


# ---- the failures, grouped and sorted ----------------------------------------------------------------------

class FailureGroup(NamedTuple):
    key: str
    title: str
    rows: pd.DataFrame  # failed check rows, most severe first, with an ``excess`` column


def failures(checks: pd.DataFrame) -> pd.DataFrame:
    """Failed rows with ``group`` and ``excess``, most severe first (ties keep the gate's order)."""
    failed = checks[checks["status"] == "fail"].copy()
    failed["group"] = [group_of(k) for k in failed["kind"]]
    failed["excess"] = [excess(r.value, r.threshold, r.direction) for r in failed.itertuples(index=False)]
    order = {k: i for i, (k, _) in enumerate(GROUPS)}
    failed["_g"] = failed["group"].map(order).fillna(len(order))
    failed["_c"] = failed.groupby("id", sort=False)["excess"].transform("max")  # a check's rows stay together
    failed["_i"] = pd.factorize(failed["id"])[0]
    keys = ["_g", "_c", "_i", "excess"]
    return failed.sort_values(keys, ascending=[True, False, True, False], kind="stable").drop(columns=keys[:3])


def failure_groups(checks: pd.DataFrame | None) -> list[FailureGroup]:
    if checks is None or not len(checks):
        return []
    failed = failures(checks)
    return [FailureGroup(k, title, failed[failed["group"] == k]) for k, title in GROUPS if (failed["group"] == k).any()]


def check_row(r: Any) -> list[str]:
    op = ">=" if r.direction == "min" else "<="
    past = excess(r.value, r.threshold, r.direction) if r.status == "fail" else math.nan
    past = "no value" if past == math.inf else fmt(past, "+.3f") if math.isfinite(past) else ""
    reason = outcome_note(r) if r.status == "fail" else str(r.reason or "")
    bound = "" if math.isnan(num(r.threshold)) else f"{op} {fmt(r.threshold)}"
    return [str(r.id), _str_or_none(r.metric) or "", fmt_est(r.value, r.lo, r.hi), bound, past,
            fmt_int(r.support), check_who(r), reason]


def checks_view(rows: pd.DataFrame) -> View:
    """One row per (check, metric): value with interval, threshold, how far past it, who, why."""
    return View(CHECK_HEADER, [check_row(r) for r in rows.itertuples(index=False)], CHECK_ALIGN, flex=(6, 7))


def check_counts(checks: pd.DataFrame) -> dict[str, int]:
    """Per check (one pytest item), not per metric row: as ``gate.check_status``, fail if any row failed,
    skip if every row skipped, else pass."""
    per_check: dict[str, str] = {}
    for cid, s in zip(checks["id"].to_numpy(), checks["status"].to_numpy()):
        both = (per_check.get(cid), s)
        per_check[cid] = "fail" if "fail" in both else "pass" if "pass" in both else "skip"
    values = list(per_check.values())
    return {k: values.count(k) for k in ("pass", "fail", "skip")} | {"total": len(values)}


# ---- baseline comparison -----------------------------------------------------------------------------------

def with_family_columns(comparison: pd.DataFrame) -> pd.DataFrame:
    """``mde`` (unknown when missing) and ``gated`` (True when missing), so any comparison table renders."""
    c = comparison
    if "mde" not in c.columns or "gated" not in c.columns:
        c = c.copy()
        if "mde" not in c.columns:
            c["mde"] = np.nan
        if "gated" not in c.columns:
            c["gated"] = True
    return c


def regression_id(r: Any) -> str:
    from .regression import regression_item_id

    return regression_item_id(r.kind, r.domain, _str_or_none(r.dimension), _str_or_none(r.level), r.metric)


def _str_or_none(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def regressed(comparison: pd.DataFrame) -> pd.DataFrame:
    c = with_family_columns(comparison)
    hit = c[c["regressed"].astype(bool) & c["gated"].astype(bool)]
    return hit.sort_values("diff", kind="stable")


def regressions_view(comparison: pd.DataFrame, n: int | None = None) -> View:
    r = regressed(comparison)
    r = r if n is None else r.head(n)
    rows = [[regression_id(x), str(x.metric), fmt(x.baseline), fmt(x.current), fmt_diff(x.diff, x.lo, x.hi),
             fmt(x.mde), fmt_int(x.support), who("regression", x.domain, x.dimension, x.level)]
            for x in r.itertuples(index=False)]
    return View(["Check", "Metric", "Baseline", "Current", "Diff [adjusted]", "MDE", "Groups", "Who"], rows,
                "llrrrrrl", flex=(7,))


def baseline_avg_view(comparison: pd.DataFrame) -> View:
    """The headline change: the Avg of each metric, whether or not it regressed, with what it could see."""
    c = with_family_columns(comparison)
    a = c[(c["kind"] == "domain") & (c["domain"] == AVG)]
    rows = [[str(x.metric), fmt(x.baseline), fmt(x.current), fmt_diff(x.diff, x.lo, x.hi), fmt(x.mde),
             "yes" if x.regressed and x.gated else "no"] for x in a.itertuples(index=False)]
    return View(["Avg", "Baseline", "Current", "Diff [adjusted]", "MDE", "Regressed"], rows, "lrrrrl")


def mde_summary(comparison: pd.DataFrame) -> str:
    """What the comparison can see: the smallest drop it could call a regression, for Avg BoN and for cells."""
    c = with_family_columns(comparison)
    c = c[c["gated"].astype(bool)]
    mde = pd.to_numeric(c["mde"], errors="coerce")
    if mde.isna().all():
        return "Smallest detectable drop (MDE): unknown (this comparison does not report it)."
    avg = mde[(c["kind"] == "domain") & (c["domain"] == AVG) & (c["metric"] == "BoN")].dropna()
    cells = mde[(c["kind"] == "cell") & (c["metric"] == "BoN")].dropna()
    parts = [f"Avg BoN {avg.iloc[0]:.3f}"] if len(avg) else []
    if len(cells):
        parts.append(f"a cell's BoN {cells.min():.3f} to {cells.max():.3f} (median {cells.median():.3f}), "
                     "larger for smaller cells")
    return "Smallest drop this run could call a regression (MDE): " + "; ".join(parts) + "."


# ---- the verdict ---------------------------------------------------------------------------------------------

def verdict(checks: pd.DataFrame | None, comparison: pd.DataFrame | None = None) -> str:
    """One line a reviewer reads first; the gate's checks decide it, else the baseline comparison."""
    if checks is not None and len(checks):
        c = check_counts(checks)
        skipped = f" ({c['skip']} skipped)" if c["skip"] else ""
        if c["fail"]:
            return f"❌ {c['fail']} of {c['total']} gate checks failed{skipped}"
        return f"✅ all {c['pass']} gate checks passed{skipped}"
    if comparison is not None and len(regressed(comparison)):
        return f"❌ {len(regressed(comparison))} metrics regressed against the baseline"
    return "ℹ️ report only: no gate checks ran"


def status_of(checks: pd.DataFrame | None, comparison: pd.DataFrame | None = None) -> str:
    """fail, pass or info: the page's colour and the first word of the verdict."""
    v = verdict(checks, comparison)
    return "fail" if v.startswith("❌") else "pass" if v.startswith("✅") else "info"


def _count_by_group(checks: pd.DataFrame) -> str:
    failed = failures(checks).drop_duplicates("id")
    one = {"regression": "regression", "domain": "domain", "cell": "cell", "gap": "preference gap",
           "bias": "style bias", "sensitivity": "sensitivity floor"}
    counts = [(k, title, int((failed["group"] == k).sum())) for k, title in GROUPS]
    parts = [f"{n} {one.get(k, title.lower()) if n == 1 else title.lower()}" for k, title, n in counts if n]
    return ", ".join(parts)


def _worst_users(ev: Evaluation, n: int = 3) -> str:
    """The lowest-BoN gated cells across all domains (per domain when the data has no All cells)."""
    cells = worst_cells(ev, None)
    cells = cells[cells["domain"] == ALL] if (cells["domain"] == ALL).any() else cells
    picked = list(cells.head(n).itertuples(index=False))
    if not picked:
        return ""
    r = picked[0]
    first = (f"Worst served: {users(r.domain, r.dimension, r.level)} ({label('cell', r.domain, r.dimension, r.level)}"
             f", BoN {fmt_est(r.value, r.lo, r.hi)}, {fmt_int(r.support)} groups)")
    rest = [f"{users(x.domain, x.dimension, x.level)} (BoN {fmt(x.value)})" for x in picked[1:]]
    return first + (f", then {' and '.join(rest)}" if rest else "") + "."


def _largest_gap(ev: Evaluation) -> str:
    g = gaps(ev, 1)
    if not len(g):
        return ""
    r = next(g.itertuples(index=False))
    noun = DIMENSION_NOUNS.get(str(r.dimension), str(r.dimension))
    where = "across domains" if r.domain == ALL else f"in {r.domain}"
    best, _, worst = str(r.level).partition(" vs ")
    return (f"Largest gap: BoN {fmt_est(r.value, r.lo, r.hi)} {where}, by the {noun} users want "
            f"({best.replace('_', ' ')} vs {worst.replace('_', ' ')}).")


def _regressions(comparison: pd.DataFrame | None) -> str:
    if comparison is None:
        return ""
    hit = regressed(comparison)
    if not len(hit):
        return "No regressions against the baseline."
    r = next(hit.itertuples(index=False))
    where = label(r.kind, r.domain, r.dimension, r.level)
    return (f"{len(hit)} metric{'s' if len(hit) != 1 else ''} regressed against the baseline; the largest drop: "
            f"{where} {r.metric} {fmt_diff(r.diff, r.lo, r.hi)}.")


def verdict_paragraph(ev: Evaluation, checks: pd.DataFrame | None = None,
                      comparison: pd.DataFrame | None = None) -> str:
    """The first thing every output says: passed or failed, who is failed worst, the largest gap, regressions."""
    parts: list[str] = []
    if checks is not None and len(checks):
        c = check_counts(checks)
        if c["fail"]:
            borderline = sum(straddles(r.value, r.lo, r.hi, r.threshold, r.direction)
                             for r in checks[(checks["status"] == "fail") & (checks["kind"] != "regression")]
                             .itertuples(index=False))
            n_rows = int(((checks["status"] == "fail") & (checks["kind"] != "regression")).sum())
            parts.append(f"FAILED: {c['fail']} of {c['total']} checks failed ({_count_by_group(checks)}).")
            if borderline:
                parts.append(f"{borderline} of the {n_rows} failing values are not distinguishable from their "
                             "threshold at this support (the 95% interval reaches it).")
        else:
            parts.append(f"PASSED: all {c['pass']} checks passed.")
        if c["skip"]:
            parts.append(f"{c['skip']} checks skipped (cells with fewer than {min_support(ev)} prompt groups).")
    elif comparison is not None and len(regressed(comparison)):
        parts.append("FAILED against the baseline.")
    else:
        parts.append("Report only: no gate checks ran.")
    parts += [_worst_users(ev), _largest_gap(ev), _regressions(comparison)]
    if not len(rows_of(ev, "cell")):
        parts.append("The data has no style profiles, so there are no cells or gaps.")
    return " ".join(p for p in parts if p)
