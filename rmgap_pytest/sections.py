"""The report's sections, in reading order, each a small function of one ``ReportInput``.

A section returns a ``Section`` of neutral blocks (paragraphs, tables, folds,
page-only markup) or None when it has nothing to say; the terminal, report.md
and report.html each render the same list (``report.py``, ``_report_html.py``).
Adding a section is a function plus one line in ``SECTIONS``:

    def style_bias(inp: ReportInput) -> Section | None:
        return Section("style-bias", "Style bias", [Table(my_view(inp.ev))])

    SECTIONS.insert(SECTIONS.index(gaps_section), style_bias)

``@shown_in("markdown", "html")`` keeps a section out of the other outputs without
calling it (the heatmap is not built for the terminal); a block with ``only=`` set
appears in that output alone.

Order follows issue 14: the verdict, then the picture, then the details;
failures grouped by kind and sorted by how far past the threshold they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

import pandas as pd

from . import verdict as V
from .data import DIMENSIONS
from .evaluation import Evaluation
from .judging import judge_lines
from .metrics import ALL
from .views import (CHANCE_BON, N_GAPS, NO_PROFILES, SYNTHETIC_WARNING, View, blindness_view, subset_warning,
                    cells_view, domain_view, gaps, gaps_view, min_support, scoring_lines, worst_cells_view)

OUTPUTS = frozenset({"terminal", "markdown", "html"})
OPEN_ROWS = 10  # rows of a long table shown before the rest folds (report.md, report.html)
TERMINAL_ROWS = 3  # rows per failure group in the terminal summary (the FAILURES entries hold the rest)


@dataclass
class ReportInput:
    ev: Evaluation
    checks: pd.DataFrame | None = None  # gate.CHECK_COLUMNS, as shown (waived checks removed)
    comparison: pd.DataFrame | None = None  # metrics.compare
    files: dict[str, Path] | None = None


@dataclass
class Para:
    text: str
    kind: str = ""  # "verdict", "warn", "note" or "" (a plain paragraph)
    only: str | None = None  # shown by this output alone


@dataclass
class Table:
    """A table; past ``open`` rows the rest folds (<details>) in report.md/html and is cut in the terminal."""

    view: View
    caption: str = ""
    open: int | None = None
    terminal: int | None = None  # rows the terminal shows (None: as ``open``; 0: none)
    lines: list[tuple[list[str], str]] | None = None  # the terminal's own lines: (wordings, longest first; an
    # extra shown when it fits)
    classes: list[str] | None = None  # report.html: one class per row
    more: str = "rows"
    more_lines: str = ""  # what ``lines`` count, when not ``more`` ("checks": one line per check)
    bars: list[tuple[Any, Any, Any]] | None = None  # report.html: (value, lo, hi) per row, drawn after column 2
    only: str | None = None  # shown by this output alone


@dataclass
class Fold:
    """Collapsed content: <details> in report.md/html, left out of the terminal."""

    summary: str
    blocks: list["Block"]


@dataclass
class Html:
    """Markup only the page shows (the heatmap SVG, bars); built and escaped by ``_report_html``."""

    markup: str


Block = Union[Para, Table, Fold, Html]


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Block]
    note: str = ""
    outputs: frozenset[str] = field(default=OUTPUTS)
    optional: bool = False  # the terminal leaves it out (naming it) when the summary would grow too long


def shown_in(*outputs: str) -> Callable[[Callable], Callable]:
    """Mark a section function with the outputs that show it; the others do not even call it."""
    def mark(fn: Callable) -> Callable:
        fn.outputs = frozenset(outputs)  # type: ignore[attr-defined]
        return fn
    return mark


def verdict_section(inp: ReportInput) -> Section:
    blocks: list[Block] = []
    if inp.checks is not None and len(inp.checks):
        n = V.check_counts(inp.checks)
        blocks.append(Para(f"Gate: {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped ({n['total']} checks)",
                           only="terminal"))
    blocks.append(Para(V.verdict_paragraph(inp.ev, inp.checks, inp.comparison), "verdict"))
    if inp.ev.meta.get("data", {}).get("synthetic"):
        blocks.append(Para(f"WARNING: {SYNTHETIC_WARNING}", "warn"))
    subset = inp.ev.meta.get("data", {}).get("subset")
    if subset:
        blocks.append(Para(f"WARNING: SUBSET: {subset_warning(subset)}", "warn"))
    if inp.ev.bias is not None and not inp.ev.bias.empty:  # the "why" in a line or three; the page draws it
        from .findings import findings

        why = findings(inp.ev.bias, brief=True)
        if why:
            blocks.append(Para(f"Why: {'; '.join(why)}. (docs/why.md)", only="terminal"))
    return Section("verdict", "", blocks)


@shown_in("markdown", "html")
def heatmap_section(inp: ReportInput) -> Section:
    """The page draws every domain's cells; report.md, which cannot carry a picture, the All row as a grid."""
    from ._heatmap_svg import heatmap_html
    from .heatmap import heatmap_grid

    hm = heatmap_grid(inp.ev, inp.checks, inp.comparison)
    blocks: list[Block] = []
    if hm.rows:
        blocks.append(Para(f"Best-of-N accuracy per domain and the profile level users want; n = prompt groups "
                           f"(users). Hover or tap a cell for its interval. Cells under {hm.min_support} groups are "
                           "hatched and not gated; failing cells are outlined.", "note", only="html"))
    blocks.append(Html(heatmap_html(hm)))
    grid = all_users_view(hm)
    if grid is not None:
        blocks.append(Table(grid, only="markdown"))
        blocks.append(Para(f"BoN of users in every domain, by the level they want (1 = least, 5 = most); chance is "
                           f"{CHANCE_BON}. ❌ a check failed; in italics with n: fewer than {hm.min_support} prompt "
                           "groups, not gated. Every domain's cells: heatmap.png and report.html.", "note",
                           only="markdown"))
    else:
        blocks.append(Para(NO_PROFILES, "note", only="markdown"))
    return Section("heatmap", "Who the model serves", blocks)


def all_users_view(hm: Any) -> View | None:
    """The heatmap's All row as a dimension x level grid, for report.md."""
    if ALL not in hm.rows:
        return None
    i = hm.rows.index(ALL)
    rows = []
    for dim, levels in DIMENSIONS.items():
        row = [dim.replace("_", " ")]
        for lvl in levels:
            j = hm.columns.index((dim, lvl))
            value, status = hm.value[i, j], hm.status[i, j]
            name = lvl.replace("_", " ")
            if status == "empty":
                row.append(f"{name} –")
            elif status == "muted":
                row.append(f"_{name} {value:.2f} (n={hm.support[i, j]})_")
            else:
                row.append(f"{name} **{value:.2f}**" + (" ❌" if status == "fail" else ""))
        rows.append(row)
    return View(["Dimension", "1", "2", "3", "4", "5"], rows, "llllll")


@shown_in("markdown", "html")
def why_section(inp: ReportInput) -> Section | None:
    """Why it fails: the one or two strongest findings in words, the chart, the numbers (docs/why.md)."""
    from ._biaschart_svg import chart_html
    from .biaschart import chart_rows, why_chart
    from .findings import findings

    table = inp.ev.bias
    if table is None or table.empty:
        return None
    words = findings(table)
    chart = why_chart(table)
    blocks: list[Block] = [Para(f"{w[0].upper()}{w[1:]}.") for w in words]
    blocks.append(Html(chart_html(chart)))
    rows = chart_rows(chart)
    if rows:
        view = View(["Estimate", "Where", "Value [95%]", "Unit", "Users"], rows, "llrlr", flex=(1,))
        main = sum("=" not in r[1] for r in rows)  # the per-level rows fold away
        blocks.append(Table(view, open=main, more="per-level sensitivities"))
    note = ("Style bias: how the reward moves per level of a response's style, among answers the user did not "
            "ask for. Sensitivity: how much more a response scores when the user who wants it asks, than when a "
            "user who wants neither of two answers asks; 0 = the model ignores the prompt. Both in SD of reward "
            "within a prompt; 95% intervals from the record bootstrap. The chart: why.png.")
    return Section("why", "Why: style bias and preference sensitivity", blocks, note=note)


def failures_section(inp: ReportInput) -> Section | None:
    groups = V.failure_groups(inp.checks)
    if not groups:
        return None
    n = V.check_counts(inp.checks)
    blocks: list[Block] = []
    for g in groups:
        view = V.checks_view(g.rows)
        worst = g.rows.drop_duplicates("id")  # the check's most severe row: the terminal shows one line per check
        lines = [([f"{r.id}  {t}" for t in V.row_texts(r)[1:]] + [f"{r.id}  {V.row_texts(r)[-1].split(', not')[0]}"],
                  f"  ({V.check_who(r)})") for r in worst.itertuples(index=False)]
        blocks.append(Table(view, f"{g.title}: {len(worst)} failed", open=OPEN_ROWS, terminal=TERMINAL_ROWS,
                            lines=lines, classes=["fail"] * len(view.rows), more="failing values",
                            more_lines="failed checks"))
    note = ("Grouped by kind; within a group the worst first (Past by: how far past the threshold). Floors and "
            "ceilings are decided on the point estimate; the reason says when the 95% interval still reaches "
            "the threshold.")
    return Section("failures", f"Failed checks ({n['fail']} of {n['total']}), worst first", blocks, note=note)


def baseline_section(inp: ReportInput) -> Section | None:
    c = inp.comparison
    if c is None:
        return None
    reg = V.regressions_view(c)
    blocks: list[Block] = [Table(V.baseline_avg_view(c)), Para(V.mde_summary(c), "note")]
    if reg.rows:
        lines = [([f"{row[0]}  {row[1]} {row[4]}  MDE {row[5]}"], f"  ({row[7]})") for row in reg.rows]
        blocks.append(Table(reg, f"Regressed metrics: {len(reg.rows)}", open=OPEN_ROWS, terminal=5, lines=lines,
                            classes=["fail"] * len(reg.rows), more="regressions"))
    else:
        blocks.append(Para("No regressions."))
    note = ("A regression drops by more than the tolerance with its adjusted interval (the one the decision "
            "uses) entirely below zero. MDE: the smallest drop that unit could be called a regression at this "
            "data size.")
    return Section("baseline", "Against the baseline", blocks, note=note)


def domains_section(inp: ReportInput) -> Section:
    view = domain_view(inp.ev)
    return Section("domains", "Domains: value [95% interval]", [Table(view)] if view.rows else [Para("no items")],
                   note="95% percentile-bootstrap intervals over records; Groups = prompt groups (users).")


@shown_in("terminal", "markdown")
def worst_cells_section(inp: ReportInput) -> Section:
    view = worst_cells_view(inp.ev)
    title = f"Worst cells (lowest BoN among cells with >= {min_support(inp.ev)} groups; chance is {CHANCE_BON})"
    return Section("worst-cells", title, [Table(view)] if view.rows else [Para(NO_PROFILES)], optional=True)


def gaps_section(inp: ReportInput) -> Section:
    view = gaps_view(inp.ev, n=None)
    bars = [(r.value, r.lo, r.hi) for r in gaps(inp.ev, None).itertuples(index=False)]
    return Section("gaps", "Largest preference gaps (BoN of the best minus the worst level)",
                   [Table(view, open=N_GAPS, bars=bars, more="gaps")] if view.rows else [Para(NO_PROFILES)],
                   note="A large gap: some users are served and others not.", optional=True)


def blindness_section(inp: ReportInput) -> Section:
    view = blindness_view(inp.ev)
    return Section("blindness", "Prompt blindness (one response tops all 12 prompts of a record)",
                   [Table(view)] if view.rows else [Para("no records")],
                   note="The share of records where the model ignored what each user asked for.", optional=True)


@shown_in("html")
def all_checks_section(inp: ReportInput) -> Section | None:
    if inp.checks is None or not len(inp.checks):
        return None
    order = {"fail": 0, "skip": 1, "pass": 2}
    c = inp.checks.iloc[inp.checks["status"].map(order).fillna(3).argsort(kind="stable")]
    view = V.checks_view(c)
    view = view._replace(header=["Status", *view.header], rows=[[s, *r] for s, r in zip(c["status"], view.rows)],
                         align="l" + view.align, flex=tuple(j + 1 for j in view.flex))
    n = V.check_counts(inp.checks)
    summary = f"{n['total']} checks: {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped"
    return Section("checks", "All checks", [Fold(summary, [Table(view, classes=list(c["status"]))])])


@shown_in("markdown", "html")
def all_cells_section(inp: ReportInput) -> Section:
    view = cells_view(inp.ev)
    if not view.rows:
        return Section("cells", "All cells", [Para(NO_PROFILES)])
    small = {r for r, row in enumerate(view.rows) if int(row[4]) < min_support(inp.ev)} if view.rows else set()
    classes = ["muted" if r in small else "" for r in range(len(view.rows))]
    return Section("cells", "All cells", [Fold(f"All {len(view.rows)} cells", [Table(view, classes=classes)])],
                   note="Every cell's Pair, BoN and Consistency with 95% intervals; the heatmap links here.")


@shown_in("html")
def run_section(inp: ReportInput) -> Section:
    """Everything needed to reproduce the run (the page only; report.json holds it for machines)."""
    m, data = inp.ev.meta, inp.ev.meta.get("data", {})
    size = f"{inp.ev.counts.get('records', 0)} records, {inp.ev.counts.get('items', 0)} items"
    versions = {"rmgap-pytest": m.get("rmgap_pytest"), "python": m.get("python"), **m.get("versions", {})}
    facts = [("Model", m.get("spec")), ("Fingerprint", m.get("fingerprint")), ("Data", data.get("path")),
             ("sha256", data.get("sha256")), ("Size", size), ("Thresholds", m.get("thresholds")),
             ("Time", m.get("time")), ("Settings", _kv(m.get("settings", {}))), ("Versions", _kv(versions)),
             *(tuple(line.split(": ", 1)) for line in scoring_lines(inp.ev))]
    rows = [[str(k), str(v)] for k, v in facts if v not in (None, "")]
    return Section("run", "Run", [Table(View(["", ""], rows, "ll", flex=(1,)))])


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items() if v is not None)


@shown_in("terminal", "markdown")
def scoring_section(inp: ReportInput) -> Section:
    return Section("scoring", "", [Para(line) for line in scoring_lines(inp.ev)])


def judge_section(inp: ReportInput) -> Section | None:
    """LLM judges: retries and unreadable answers (with excerpts), tokens, positions ranked first, ties."""
    lines = judge_lines(inp.ev.counts, inp.ev.meta.get("scorer_meta") or {})
    return Section("judge", "LLM judge", [Para(line) for line in lines]) if lines else None


@shown_in("terminal")
def files_section(inp: ReportInput) -> Section | None:
    if not inp.files:
        return None
    paths = dict(inp.files)
    page = paths.pop("html", None)
    lines = [f"Report: {page}" + (f" (and {', '.join(p.name for p in paths.values() if p.parent == page.parent)})"
                                  if page else "")] if page else []
    lines += [f"{name}: {p}" for name, p in paths.items() if page is None or p.parent != page.parent]
    return Section("files", "", [Para(line) for line in lines])


SECTIONS: list[Callable[[ReportInput], Section | None]] = [
    verdict_section, heatmap_section, why_section, failures_section, baseline_section, domains_section,
    worst_cells_section, gaps_section, blindness_section, all_checks_section, all_cells_section, run_section,
    scoring_section, judge_section, files_section,
]


def shows(block: Block, output: str) -> bool:
    """Whether ``output`` renders ``block``: page markup only on the page, ``only`` blocks only there."""
    if isinstance(block, Html):
        return output == "html"
    return getattr(block, "only", None) in (None, output)


def sections_for(output: str, inp: ReportInput) -> list[Section]:
    """The sections ``output`` shows, in order."""
    out = []
    for make in SECTIONS:
        if output not in getattr(make, "outputs", OUTPUTS):
            continue
        s = make(inp)
        if s is not None and output in s.outputs:
            out.append(s)
    return out
