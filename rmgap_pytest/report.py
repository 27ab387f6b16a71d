"""The generalization report: terminal summary, report.md, report.html, heatmap.png.

Every output renders the same small "views" (a header and rows of formatted
strings), so the terminal, the pull-request comment and the HTML page never
disagree on a number or its rounding. Views read ``Evaluation.table``, the
gate's ``checks`` and ``metrics.compare`` output; nothing here recomputes a
metric. The HTML page and the heatmap drawings live in ``_report_html``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .data import DOMAINS
from .evaluation import Evaluation
from .metrics import ALL, AVG, METRICS

CHANCE_BON = 0.25  # four responses: a random scorer picks the winner one time in four
N_WORST_CELLS = 8
N_GAPS = 5
N_TERMINAL_FAILS = 20  # more would scroll the verdict off a CI log's screen
N_TERMINAL_REGRESSIONS = 10
SYNTHETIC_WARNING = "synthetic data (schema-valid filler, not RMGAP): these numbers say nothing about the model"
NO_PROFILES = "none: no category-profile cell reaches min_support (or the data has no style profiles)"
CHECK_HEADER = ("Check", "Metric", "Value [95%]", "Threshold", "Support", "Reason")


class View(NamedTuple):
    """A table of formatted strings; ``align`` holds one 'l' or 'r' per column."""

    header: list[str]
    rows: list[list[str]]
    align: str


def num(x: Any) -> float:
    """None (JSON null), NaN and inf all read as 'not available'."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def fmt(x: Any, spec: str = ".3f") -> str:
    v = num(x)
    return "n/a" if math.isnan(v) else format(v, spec)


def fmt_ci(lo: Any, hi: Any) -> str:
    lo, hi = num(lo), num(hi)
    return "[n/a]" if math.isnan(lo) or math.isnan(hi) else f"[{lo:.2f}, {hi:.2f}]"


def fmt_est(value: Any, lo: Any, hi: Any) -> str:
    """'0.512 [0.47, 0.55]': the estimate always travels with its 95% interval."""
    return f"{fmt(value)} {fmt_ci(lo, hi)}"


def fmt_diff(diff: Any, lo: Any, hi: Any) -> str:
    return f"{fmt(diff, '+.3f')} {fmt_ci(lo, hi)}"


def label(kind: str, domain: Any, dimension: Any = None, level: Any = None) -> str:
    """Chat, Chat/Conciseness, Chat/Conciseness=terse: the names the checks' ids use."""
    return {"cell": f"{domain}/{dimension}={level}", "gap": f"{domain}/{dimension}"}.get(kind, str(domain))


def _row_label(row: pd.Series) -> str:
    return label(row["kind"], row["domain"], row.get("dimension"), row.get("level"))


def _int(x: Any) -> str:
    return fmt(x, ".0f")


def rows_of(ev: Evaluation, kind: str, metric: str | None = None) -> pd.DataFrame:
    t = ev.table
    return t[(t["kind"] == kind) & ((t["metric"] == metric) if metric else True)]


def min_support(ev: Evaluation) -> int:
    """The support a cell needs before it counts as 'worst' (the evaluation's own setting)."""
    return int(ev.meta.get("settings", {}).get("min_support", 1) or 1)


def ordered_domains(names: Sequence[str], tail: str) -> list[str]:
    return [d for d in (*DOMAINS, tail) if d in set(names)]


def _metrics_row(name: str, rows: pd.DataFrame) -> list[str]:
    """One unit (a domain, a cell): its three metrics with intervals, then its support."""
    by = rows.set_index("metric")
    ests = [fmt_est(*by.loc[m, ["value", "lo", "hi"]]) if m in by.index else "n/a" for m in METRICS]
    return [name, *ests, _int(by["support"].iloc[0])]


def domain_view(ev: Evaluation) -> View:
    d = rows_of(ev, "domain")
    rows = [_metrics_row(dom, d[d["domain"] == dom]) for dom in ordered_domains(d["domain"].tolist(), AVG)]
    return View(["Domain", *METRICS, "Groups"], rows, "lrrrr")


def worst_cells(ev: Evaluation, n: int = N_WORST_CELLS) -> pd.DataFrame:
    """Lowest BoN first; on ties the larger cell first, since it is the surer failure."""
    c = rows_of(ev, "cell", "BoN")
    c = c[(c["support"] >= min_support(ev)) & c["value"].notna()]
    return c.sort_values(["value", "support"], ascending=[True, False], kind="stable").head(n)


def worst_cells_view(ev: Evaluation, n: int = N_WORST_CELLS) -> View:
    rows = [[_row_label(r), fmt_est(r["value"], r["lo"], r["hi"]), _int(r["support"])]
            for _, r in worst_cells(ev, n).iterrows()]
    return View(["Cell", "BoN", "Groups"], rows, "lrr")


def gaps_view(ev: Evaluation, n: int | None = N_GAPS) -> View:
    g = rows_of(ev, "gap").sort_values("value", ascending=False, kind="stable")
    g = g if n is None else g.head(n)
    rows = [[_row_label(r), fmt_est(r["value"], r["lo"], r["hi"]), str(r["level"]), _int(r["support"])]
            for _, r in g.iterrows()]
    return View(["Dimension", "BoN gap", "Best vs worst level", "Min groups"], rows, "lrlr")


def blindness_view(ev: Evaluation) -> View:
    b = rows_of(ev, "blindness").set_index("domain")
    rows = [[dom, fmt_est(*b.loc[dom, ["value", "lo", "hi"]]), _int(b.loc[dom, "support"])]
            for dom in ordered_domains(b.index.tolist(), ALL)]
    return View(["Domain", "Prompt blindness", "Records"], rows, "lrr")


def regressions_view(comparison: pd.DataFrame, n: int | None = None) -> View:
    r = comparison[comparison["regressed"].astype(bool)].sort_values("diff", kind="stable")
    r = r if n is None else r.head(n)
    rows = [[_row_label(x), str(x["metric"]), fmt(x["baseline"]), fmt(x["current"]),
             fmt_diff(x["diff"], x["lo"], x["hi"])] for _, x in r.iterrows()]
    return View(["Where", "Metric", "Baseline", "Current", "Diff [95%]"], rows, "llrrr")


def baseline_avg_view(comparison: pd.DataFrame) -> View:
    """The headline change: the Avg of each metric, whether or not it regressed."""
    a = comparison[(comparison["kind"] == "domain") & (comparison["domain"] == AVG)]
    rows = [[str(x["metric"]), fmt(x["baseline"]), fmt(x["current"]), fmt_diff(x["diff"], x["lo"], x["hi"])]
            for _, x in a.iterrows()]
    return View(["Avg", "Baseline", "Current", "Diff [95%]"], rows, "lrrr")


def _threshold(row: pd.Series) -> str:
    op = ">=" if row.get("direction") == "min" else "<="
    return f"{op} {fmt(row.get('threshold'))}"


def check_row(r: pd.Series) -> list[str]:
    """id, metric, value [interval], threshold, support, reason: one check as the reports show it."""
    return [str(r["id"]), str(r["metric"]), fmt_est(r["value"], r["lo"], r["hi"]), _threshold(r),
            _int(r.get("support")), str(r.get("reason") or "")]


def failed_checks_view(checks: pd.DataFrame) -> View:
    rows = [check_row(r) for _, r in checks[checks["status"] == "fail"].iterrows()]
    return View(list(CHECK_HEADER), rows, "llrlrl")


def cells_view(ev: Evaluation) -> View:
    """Every cell, one row each with its three metrics, in domain and level order."""
    c = rows_of(ev, "cell")
    rows = [_metrics_row(label("cell", *key), sub)
            for key, sub in c.groupby(["domain", "dimension", "level"], sort=False)]
    return View(["Cell", *METRICS, "Groups"], rows, "lrrrr")


def check_counts(checks: pd.DataFrame) -> dict[str, int]:
    """Per check (one pytest item), not per metric row: a check fails when any of its metrics fails."""
    from .gate import check_status

    per_check = [check_status(rows) for _, rows in checks.groupby("id", sort=False)]
    return {k: per_check.count(k) for k in ("pass", "fail", "skip")} | {"total": len(per_check)}


def verdict(checks: pd.DataFrame | None, comparison: pd.DataFrame | None = None) -> str:
    """One line a reviewer reads first; the gate's checks decide it, else the baseline comparison."""
    if checks is not None and len(checks):
        c = check_counts(checks)
        skipped = f" ({c['skip']} skipped)" if c["skip"] else ""
        if c["fail"]:
            return f"❌ {c['fail']} of {c['total']} gate checks failed{skipped}"
        return f"✅ all {c['pass']} gate checks passed{skipped}"
    if comparison is not None and comparison["regressed"].astype(bool).any():
        return f"❌ {int(comparison['regressed'].astype(bool).sum())} metrics regressed against the baseline"
    return "ℹ️ report only: no gate checks ran"


def _clip(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def text_table(view: View, width: int = 100, indent: str = "  ") -> list[str]:
    table = [view.header, *view.rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(view.header))]
    return [_clip(indent + "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                                     for c, w, a in zip(r, widths, view.align)).rstrip(), width) for r in table]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(view: View) -> list[str]:
    rule = ["---:" if a == "r" else ":---" for a in view.align]
    return ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in (view.header, rule, *view.rows)]


def _section(title: str, view: View, width: int, empty: str) -> list[str]:
    return ["", _clip(title, width), *(text_table(view, width) if view.rows else [f"  ({empty})"])]


def data_line(ev: Evaluation) -> str:
    data = ev.meta.get("data", {})
    name = Path(str(data.get("path", "?"))).name
    sha = str(data.get("sha256") or "")[:12]
    return (f"{name} (sha256 {sha}), {ev.counts.get('records', 0)} records, "
            f"{ev.counts.get('items', len(ev.outcomes))} items")


def scoring_lines(ev: Evaluation) -> list[str]:
    """What the scorer did, and the two silent failure modes it must never hide: invalid and truncated."""
    c = ev.counts
    secs = ev.meta.get("scoring_seconds")
    took = f" in {secs:.1f}s" if isinstance(secs, (int, float)) else ""
    return [f"Scoring: {c.get('pairs_scored', 0)} pairs scored{took}, {c.get('cache_hits', 0)} cache hits "
            f"(of {c.get('pairs', 0)} pairs)",
            f"Invalid items: {c.get('invalid_items', 0)} (counted wrong); truncated pairs: "
            f"{c.get('truncated_pairs', 0)}", *(f"Note: {n}" for n in ev.meta.get("notes", []))]


def _more(n: int, what: str) -> list[str]:
    return [f"  ... and {n} more {what} (see report.md)"] if n > 0 else []


def _baseline_lines(comparison: pd.DataFrame, width: int) -> list[str]:
    reg = regressions_view(comparison)
    lines = ["", f"Against the baseline: {len(reg.rows) or 'no'} regressions",
             *text_table(baseline_avg_view(comparison), width)]
    if reg.rows:
        lines += text_table(reg._replace(rows=reg.rows[:N_TERMINAL_REGRESSIONS]), width)
    return lines + _more(len(reg.rows) - N_TERMINAL_REGRESSIONS, "regressions")


def _gate_lines(checks: pd.DataFrame, width: int) -> list[str]:
    c = check_counts(checks)
    lines = ["", f"Gate: {c['pass']} passed, {c['fail']} failed, {c['skip']} skipped ({c['total']} checks)"]
    failed = failed_checks_view(checks)
    if not failed.rows:
        return lines
    # The reason is free text of any length: it follows its row when it fits, else goes on a line of its own.
    table = text_table(View(failed.header[:4], [r[:4] for r in failed.rows[:N_TERMINAL_FAILS]], "llrl"), width)
    lines.append(table[0])
    for line, row in zip(table[1:], failed.rows):
        both = f"{line}  {row[-1]}"
        lines += [both] if len(both) <= width else [line, _clip(f"      {row[-1]}", width)]
    return lines + _more(len(failed.rows) - N_TERMINAL_FAILS, "failed checks")


def terminal_summary(ev: Evaluation, checks: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None,
                     files: dict[str, Path] | None = None, width: int = 100) -> str:
    """Plain text for pytest's terminal summary and ``rmgap eval``; every line fits ``width``."""
    lines = [_clip(f"RMGAP {ev.meta.get('spec', '?')} on {data_line(ev)}", width)]
    if ev.meta.get("data", {}).get("synthetic"):
        lines.append(_clip(f"WARNING: {SYNTHETIC_WARNING}", width))
    lines += _section("Domains: value [95% bootstrap interval]", domain_view(ev), width, "no items")
    lines += _section(f"Worst cells (lowest BoN among cells with >= {min_support(ev)} groups; chance is {CHANCE_BON})",
                      worst_cells_view(ev), width, NO_PROFILES)
    lines += _section("Largest preference gaps (BoN of the best minus the worst level)", gaps_view(ev), width,
                      NO_PROFILES)
    lines += _section("Prompt blindness (one response tops all 12 prompts of a record)", blindness_view(ev), width,
                      "no records")
    if comparison is not None:
        lines += _baseline_lines(comparison, width)
    if checks is not None:
        lines += _gate_lines(checks, width)
    lines += ["", *(_clip(x, width) for x in scoring_lines(ev))]
    if files:
        lines += ["Report files:", *(f"  {name:<9} {path}" for name, path in files.items())]
    return "\n".join(lines)


def _md_section(title: str, view: View, empty: str) -> list[str]:
    return ["", f"### {title}", "", *(md_table(view) if view.rows else [f"_{empty}_"])]


def markdown(ev: Evaluation, checks: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None) -> str:
    """report.md: short enough for a pull-request comment, the full cell table folded away."""
    lines = [f"## {verdict(checks, comparison)}", "",
             f"**RMGAP** `{ev.meta.get('spec', '?')}` on {data_line(ev)}, {ev.meta.get('time', '')}"]
    if ev.meta.get("data", {}).get("synthetic"):
        lines += ["", f"> ⚠️ {SYNTHETIC_WARNING}"]
    lines += _md_section("Domains: value [95% interval]", domain_view(ev), "no items")
    if checks is not None:
        lines += _md_section("Failed checks", failed_checks_view(checks), "none")
    if comparison is not None:
        lines += _md_section("Against the baseline", baseline_avg_view(comparison), "nothing compared")
        lines += _md_section("Regressions", regressions_view(comparison), "no regressions")
    lines += _md_section(f"Worst cells (lowest BoN, chance {CHANCE_BON})", worst_cells_view(ev), NO_PROFILES)
    lines += _md_section("Largest preference gaps", gaps_view(ev), NO_PROFILES)
    lines += _md_section("Prompt blindness", blindness_view(ev), "no records")
    cells = cells_view(ev)
    if cells.rows:
        lines += ["", f"<details><summary>All {len(cells.rows)} cells</summary>", "", *md_table(cells), "",
                  "</details>"]
    return "\n".join([*lines, "", *(f"{x}  " for x in scoring_lines(ev)), ""])  # two spaces: a Markdown line break


def html(ev: Evaluation, checks: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None) -> str:
    """report.html: one self-contained file (inline CSS and SVG, nothing fetched)."""
    from ._report_html import render  # imported late: it builds on this module's views

    return render(ev, checks, comparison)


def heatmap_png(ev: Evaluation, path: str | Path) -> Path:
    """The BoN heatmap as a PNG (about 1600x600), colours anchored at chance."""
    from ._report_html import heatmap_png as draw  # matplotlib loads only when a PNG is asked for

    return draw(ev, path)


def worst_records(ev: Evaluation, mask: Any = None, n: int = 3) -> list[dict[str, Any]]:
    """Per record, its most wrong item within ``mask``; the ``n`` most wrong records first.

    Only wrong items (not best-of-N) count. Invalid items come first: a NaN
    score is always wrong and usually a scorer bug a reader should see before
    anything else. ``group``/``prompt`` are 0-based positions as in the
    outcome table; ``top`` is what the model preferred instead: the highest
    ranked loser (the outcome's own ``top`` is the winner when it only tied
    for first); ``margin`` is that loser's score minus the winner's (NaN for
    invalid items, so callers can format it without a special case).
    """
    out = ev.outcomes
    sel = np.ones(len(out), bool) if mask is None else np.asarray(mask, dtype=bool)
    if sel.shape != (len(out),):
        raise ValueError(f"mask has shape {sel.shape}; expected one boolean per outcome row ({len(out)})")
    wrong = out[sel & ~out["bon"].to_numpy(bool)]
    key = np.where(wrong["invalid"].to_numpy(bool), np.inf, wrong["margin"].to_numpy(np.float64))
    order = np.lexsort((np.arange(len(wrong)), -key))
    picked = wrong.iloc[order].drop_duplicates("record_id").head(n)
    return [_record_dict(r) for _, r in picked.iterrows()]


def _record_dict(r: pd.Series) -> dict[str, Any]:
    return {"record_id": str(r["record_id"]), "domain": str(r["domain"]), "group": int(r["group"]),
            "prompt": int(r["prompt"]), "winner": str(r["winner"]),
            "top": next((k for k in str(r["ranking"]).split(">") if k != r["winner"]), ""),
            "margin": num(r["margin"]), "invalid": bool(r["invalid"])}


def describe_record(rec: dict[str, Any]) -> str:
    """One line for a failure message; group and prompt counted from 1 as a reader counts them."""
    where = f"{rec['record_id']} (group {rec['group'] + 1}, prompt {rec['prompt'] + 1})"
    if rec["invalid"]:
        return f"{where}: invalid score (NaN/inf), counted wrong"
    return f"{where}: right answer {rec['winner']}, model preferred {rec['top']} by {rec['margin']:.4g}"


def write_report_files(ev: Evaluation, out_dir: str | Path, checks: pd.DataFrame | None = None,
                       comparison: pd.DataFrame | None = None) -> dict[str, Path]:
    """report.md, report.html and heatmap.png (results.write_run writes the JSON files)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": d / "report.md", "html": d / "report.html", "heatmap": d / "heatmap.png"}
    paths["markdown"].write_text(markdown(ev, checks, comparison), encoding="utf-8")
    paths["html"].write_text(html(ev, checks, comparison), encoding="utf-8")
    heatmap_png(ev, paths["heatmap"])
    return paths
