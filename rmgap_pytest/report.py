"""The generalization report: terminal summary, report.md, report.html, heatmap.png and why.png.

All three text outputs render the same list of sections (``sections.SECTIONS``)
built from the same views, so they never disagree on a number. The terminal
summary fits the terminal's width; report.md stays under a pull-request
comment's limit for any run; report.html is one self-contained page
(``_report_html``); heatmap.png is drawn with Pillow (``heatmap``, ``_heatmap_png``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .evaluation import Evaluation
from .failures import describe_record, worst_records
from .biaschart import why_png
from .heatmap import heatmap_png
from .sections import SECTIONS, Fold, Para, ReportInput, Section, Table, sections_for, shows
from .verdict import check_counts, failure_groups, verdict
from .views import (CHANCE_BON, NO_PROFILES, SYNTHETIC_WARNING, View, clip, data_line, domain_view, md_table,
                    rows_of, text_table, worst_cells, wrap)

MARKDOWN_LIMIT = 65_000  # GitHub's pull-request comment limit is 65,536 characters
DEFAULT_WIDTH = 100
TERMINAL_LINES = 50  # the summary's length before optional tables give way (-v shows them all)
FULL_REPORT = "report.html (every check and cell, the heatmap) and report.json, next to this file"


# ---- terminal ------------------------------------------------------------------------------------------------

def _text_table(t: Table, width: int, verbose: int = 0) -> list[str]:
    shown = t.open if t.terminal is None else t.terminal
    if verbose > 0 and shown is not None:  # -v: as many rows as report.md shows openly; -vv: every row
        shown = None if verbose > 1 else max(shown, t.open or shown)
    total = len(t.view.rows) if t.lines is None else len(t.lines)
    n = total if shown is None else min(shown, total)
    out = [clip(f"  {t.caption}", width)] if t.caption else []
    if t.lines is not None:
        out += [_fit_line(texts, extra, width - 4) for texts, extra in t.lines[:n]]
    elif n:
        out += text_table(t.view._replace(rows=t.view.rows[:n]), width, indent="    " if t.caption else "  ")
    rest = total - n
    what = t.more_lines if t.lines is not None and t.more_lines else t.more
    return out + ([clip(f"    ... and {rest} more {what} (report.md has them all)", width)] if rest > 0 else [])


def _fit_line(texts: list[str], extra: str, width: int) -> str:
    """The longest wording that fits (with ``extra`` when that fits too), indented; clipped as a last resort."""
    text = next((t for t in texts if len(t) <= width), texts[-1])
    return clip(f"    {text}" + (extra if len(text) + len(extra) <= width else ""), width + 4)


def _text_section(s: Section, width: int, verbose: int = 0) -> list[str]:
    lines = ["", clip(s.title, width)] if s.title else [""]
    for b in s.blocks:
        if not shows(b, "terminal"):
            continue
        if isinstance(b, Para):
            lines += [clip(b.text, width)] if b.text.startswith("  ") else wrap(b.text, width)
        elif isinstance(b, Table):
            lines += _text_table(b, width, verbose)
    return lines


def terminal_summary(ev: Evaluation, checks: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None,
                     files: dict[str, Path] | None = None, width: int = DEFAULT_WIDTH, verbose: int = 0) -> str:
    """Plain text for pytest's terminal summary and ``rmgap eval``; every line fits ``width`` columns.

    ``verbose`` (pytest's verbosity: -v is 1, -q is -1) shows more rows of the long tables when
    positive; -q reads as the default.
    """
    width = max(int(width), 40)
    inp = ReportInput(ev, checks, comparison, files)
    parts = [(s, _text_section(s, width, verbose)) for s in sections_for("terminal", inp)]
    lines = wrap(f"RMGAP {ev.meta.get('spec', '?')} on {data_line(ev)}", width)
    budget = TERMINAL_LINES - len(lines) - sum(len(p) for s, p in parts if not s.optional)
    left_out = []
    for s, part in parts:
        if s.optional and verbose <= 0 and len(part) > budget:
            left_out.append(s.title.split(" (")[0].lower())
            continue
        budget -= len(part) if s.optional else 0
        lines += part
    if left_out:
        lines += ["", *wrap(f"Also in report.md (or with -v): {', '.join(left_out)}.", width)]
    return "\n".join(lines)


# ---- report.md -----------------------------------------------------------------------------------------------

def _md_table(t: Table, compact: bool) -> list[str]:
    out = [f"**{t.caption}**", ""] if t.caption else []
    n = len(t.view.rows) if t.open is None else min(t.open, len(t.view.rows))
    out += md_table(t.view._replace(rows=t.view.rows[:n]))
    rest = t.view.rows[n:]
    if rest and compact:
        out += ["", f"_... and {len(rest)} more {t.more}: see report.html._"]
    elif rest:
        out += ["", f"<details><summary>{len(rest)} more {t.more}</summary>", "", *md_table(t.view._replace(rows=rest)),
                "", "</details>"]
    return out


def _md_blocks(blocks: list, compact: bool) -> list[str]:
    out: list[str] = []
    for b in blocks:
        if not shows(b, "markdown"):
            continue
        if isinstance(b, Para):
            out += ["", f"> ⚠️ {b.text}" if b.kind == "warn" else f"_{b.text}_" if b.kind == "note" else b.text]
        elif isinstance(b, Table):
            out += ["", *_md_table(b, compact)]
        elif isinstance(b, Fold):
            out += ["", f"_{b.summary}: see report.html._"] if compact else \
                ["", f"<details><summary>{b.summary}</summary>", *_md_blocks(b.blocks, compact), "", "</details>"]
    return out


def _md_section(s: Section, compact: bool) -> list[str]:
    head = ["", f"### {s.title}"] if s.title else []
    note = ["", f"_{s.note}_"] if s.note else []
    return [*head, *note, *_md_blocks(s.blocks, compact)]


def markdown(ev: Evaluation, checks: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None,
             limit: int = MARKDOWN_LIMIT) -> str:
    """report.md: a pull-request comment; under ``limit`` characters for any run, pointing at the full report.

    Long tables fold into <details>; when the whole still exceeds ``limit``, folded
    rows give way to a pointer, then whole trailing sections, then (a spec or note
    of absurd length) the text is cut.
    """
    inp = ReportInput(ev, checks, comparison)
    head = [f"## {verdict(checks, comparison)}", "",
            f"**RMGAP** `{ev.meta.get('spec', '?')}` on {data_line(ev)}, {ev.meta.get('time', '')}"]
    tail = ["", "---", f"Full report: {FULL_REPORT}.", ""]
    sections = sections_for("markdown", inp)
    for compact in (False, True):
        body = [line for s in sections for line in _md_section(s, compact)]
        text = "\n".join([*head, *body, *tail])
        if len(text) <= limit:
            return text
    kept: list[str] = []
    omitted = [s.title or s.key for s in sections]
    for s in sections:  # compact and still too long: keep whole sections while they fit
        part = _md_section(s, True)
        trial = "\n".join([*head, *kept, *part, *tail]) + f"\n_Left out for size: {', '.join(omitted)}._"
        if len(trial) > limit:
            break
        kept += part
        omitted.remove(s.title or s.key)
    note = [f"_Left out for size: {', '.join(omitted)}._"] if omitted else []
    text = "\n".join([*head, *kept, *note, *tail])
    if len(text) > limit:
        cut = f"\n\n_... cut at {limit} characters. Full report: {FULL_REPORT}._\n"
        text = text[: limit - len(cut)] + cut
    return text


# ---- files ---------------------------------------------------------------------------------------------------

def html(ev: Evaluation, checks: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None) -> str:
    """report.html: one self-contained file (inline CSS and SVG, nothing fetched)."""
    from ._report_html import render  # imported late: it builds on this module's sections

    return render(ev, checks, comparison)


def write_report_files(ev: Evaluation, out_dir: str | Path, checks: pd.DataFrame | None = None,
                       comparison: pd.DataFrame | None = None) -> dict[str, Path]:
    """report.md, report.html, heatmap.png and why.png (results.write_run writes the JSON files)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": d / "report.md", "html": d / "report.html", "heatmap": d / "heatmap.png",
             "why": d / "why.png"}
    paths["markdown"].write_text(markdown(ev, checks, comparison), encoding="utf-8")
    paths["html"].write_text(html(ev, checks, comparison), encoding="utf-8")
    heatmap_png(ev, paths["heatmap"], checks, comparison)
    why_png(ev.bias, paths["why"], str(ev.meta.get("spec", "")))
    return paths


# The public surface; the names re-exported from the modules behind it are kept for existing callers.
__all__ = ["CHANCE_BON", "MARKDOWN_LIMIT", "NO_PROFILES", "SECTIONS", "SYNTHETIC_WARNING", "Section", "View",
           "check_counts", "describe_record", "domain_view", "failure_groups", "heatmap_png", "html", "markdown",
           "rows_of", "terminal_summary", "verdict", "worst_cells", "worst_records", "write_report_files"]
