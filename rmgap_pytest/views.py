"""Report views: the tables every output shows, as rows of formatted strings.

The terminal, report.md and report.html render the same views, so they never
disagree on a number or its rounding. Views read ``Evaluation.table`` (and the
gate's checks, see ``verdict``); nothing here recomputes a metric. Rows are
built with ``itertuples`` and dict lookups, not per-row pandas indexing: the
views must cost next to nothing at any data size (issue 11).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from .data import DOMAINS
from .evaluation import Evaluation
from .metrics import ALL, AVG, METRICS, key_part
from .words import gap_words, users, who

CHANCE_BON = 0.25  # four responses: a random scorer picks the winner one time in four
N_WORST_CELLS = 8
N_GAPS = 5
SYNTHETIC_WARNING = "synthetic data (schema-valid filler, not RMGAP): these numbers say nothing about the model"
NO_PROFILES = "none: no category-profile cell reaches min_support (or the data has no style profiles)"
ELLIPSIS = "…"


class View(NamedTuple):
    """A table of formatted strings; ``align`` holds one 'l' or 'r' per column.

    ``flex`` names the columns (by index) that may be clipped to fit a narrow
    terminal: free text such as "who" or a reason, never a number.
    """

    header: list[str]
    rows: list[list[str]]
    align: str
    flex: tuple[int, ...] = ()


# ---- numbers -------------------------------------------------------------------------------------------------

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


def fmt_int(x: Any) -> str:
    return fmt(x, ".0f")


def label(kind: str, domain: Any, dimension: Any = None, level: Any = None) -> str:
    """Chat, Chat/Conciseness, Chat/Conciseness=terse: the names the checks' ids use."""
    return {"cell": f"{domain}/{dimension}={level}", "gap": f"{domain}/{dimension}"}.get(kind, str(domain))


# ---- selections ----------------------------------------------------------------------------------------------

def rows_of(ev: Evaluation, kind: str, metric: str | None = None) -> pd.DataFrame:
    t = ev.table
    return t[(t["kind"] == kind) & ((t["metric"] == metric) if metric else True)]


def min_support(ev: Evaluation) -> int:
    """The support a cell needs to be gated (the evaluation's own setting)."""
    return int(ev.meta.get("settings", {}).get("min_support", 1) or 1)


def ordered_domains(names: Sequence[str], tail: str) -> list[str]:
    return [d for d in (*DOMAINS, tail) if d in set(names)]


def _metric_rows(rows: pd.DataFrame) -> dict[tuple, dict[str, Any]]:
    """(kind, domain, dimension, level) -> {metric: (value, lo, hi), 'support': n}: one pass over the table."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows.itertuples(index=False):
        # key_part: else after a pickle (xdist) a domain's Pair, BoN and Consistency fall into separate entries
        key = tuple(key_part(v) for v in (r.kind, r.domain, r.dimension, r.level))
        entry = out.setdefault(key, {"support": r.support})
        entry[r.metric] = (r.value, r.lo, r.hi)
    return out


def _metrics_cells(entry: dict[str, Any]) -> list[str]:
    return [fmt_est(*entry[m]) if m in entry else "n/a" for m in METRICS]


# ---- views ---------------------------------------------------------------------------------------------------

def domain_view(ev: Evaluation) -> View:
    by = {k[1]: v for k, v in _metric_rows(rows_of(ev, "domain")).items()}
    rows = [[dom, *_metrics_cells(by[dom]), fmt_int(by[dom]["support"])]
            for dom in ordered_domains(list(by), AVG)]
    return View(["Domain", *METRICS, "Groups"], rows, "lrrrr")


def worst_cells(ev: Evaluation, n: int | None = N_WORST_CELLS) -> pd.DataFrame:
    """Lowest BoN among gated cells; on ties the larger cell first, since it is the surer failure."""
    c = rows_of(ev, "cell", "BoN")
    c = c[(c["support"] >= min_support(ev)) & c["value"].notna()]
    c = c.sort_values(["value", "support"], ascending=[True, False], kind="stable")
    return c if n is None else c.head(n)


def worst_cells_view(ev: Evaluation, n: int | None = N_WORST_CELLS) -> View:
    rows = [[label("cell", r.domain, r.dimension, r.level), fmt_est(r.value, r.lo, r.hi), fmt_int(r.support),
             users(r.domain, r.dimension, r.level)] for r in worst_cells(ev, n).itertuples(index=False)]
    return View(["Cell", "BoN", "Groups", "Who"], rows, "lrrl", flex=(3,))


def gaps(ev: Evaluation, n: int | None = N_GAPS) -> pd.DataFrame:
    g = rows_of(ev, "gap").sort_values("value", ascending=False, kind="stable")
    return g if n is None else g.head(n)


def gaps_view(ev: Evaluation, n: int | None = N_GAPS) -> View:
    rows = [[label("gap", r.domain, r.dimension), fmt_est(r.value, r.lo, r.hi), str(r.level), fmt_int(r.support),
             gap_words(r.domain, r.dimension, r.level)] for r in gaps(ev, n).itertuples(index=False)]
    return View(["Dimension", "BoN gap", "Best vs worst level", "Min groups", "Who"], rows, "lrlrl", flex=(4, 2))


def blindness_view(ev: Evaluation) -> View:
    by = {r.domain: r for r in rows_of(ev, "blindness").itertuples(index=False)}
    rows = [[dom, fmt_est(by[dom].value, by[dom].lo, by[dom].hi), fmt_int(by[dom].support)]
            for dom in ordered_domains(list(by), ALL)]
    return View(["Domain", "Prompt blindness", "Records"], rows, "lrr")


def cell_anchor(domain: Any, dimension: Any, level: Any) -> str:
    """The HTML id of a cell's row in the cells table (the heatmap links to it)."""
    return f"cell-{domain}-{dimension}-{level}".replace("_", "-").lower()


def cells_view(ev: Evaluation) -> View:
    """Every cell, one row each with its three metrics, in domain and level order."""
    by = _metric_rows(rows_of(ev, "cell"))
    rows = [[label("cell", *key[1:]), *_metrics_cells(entry), fmt_int(entry["support"]), who(*key)]
            for key, entry in by.items()]
    return View(["Cell", *METRICS, "Groups", "Who"], rows, "lrrrrl", flex=(5,))


# ---- text layout ---------------------------------------------------------------------------------------------

def clip(line: str, width: int) -> str:
    return line if len(line) <= width else line[: max(width - 1, 0)] + ELLIPSIS


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    """A paragraph wrapped at ``width`` (a terminal's, or a readable 100 when wider)."""
    return textwrap.wrap(text, width=max(width, 20), initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False) or [""]


def text_table(view: View, width: int = 100, indent: str = "  ") -> list[str]:
    """Aligned columns that fit ``width``: flexible text columns are clipped first, numbers never."""
    table = [view.header, *view.rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(view.header))]
    keep = list(range(len(widths)))
    over = len(indent) + sum(widths) + 2 * (len(widths) - 1) - width
    for j in sorted(view.flex, key=lambda j: -widths[j]):
        if over <= 0:
            break
        if widths[j] - over >= max(12, 0.6 * widths[j]):  # clipped, it still says something
            widths[j] -= over
            over = 0
        else:  # a stub such as "users wh…" says nothing: leave the column out
            keep.remove(j)
            over -= widths[j] + 2
    lines = []
    for r in table:
        cells = [clip(r[j], widths[j]).ljust(widths[j]) if view.align[j] == "l" else clip(r[j], widths[j]).rjust(widths[j])
                 for j in keep]
        lines.append(clip((indent + "  ".join(cells)).rstrip(), width))
    return lines


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(view: View) -> list[str]:
    rule = ["---:" if a == "r" else ":---" for a in view.align]
    return ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in (view.header, rule, *view.rows)]


# ---- run facts -----------------------------------------------------------------------------------------------

def subset_warning(subset: dict) -> str:
    """``--rmgap-limit``: the run scored a subset; say so wherever the verdict is."""
    return (f"only {subset['records']} of {subset['of']} records were scored (--rmgap-limit, a seeded subset "
            "with every domain): a smoke check, not a verdict on the model; intervals are wide and a baseline "
            "of the whole file is never compared with it")


def data_line(ev: Evaluation) -> str:
    data = ev.meta.get("data", {})
    name = Path(str(data.get("path", "?"))).name
    sha = str(data.get("sha256") or "")[:12]
    return (f"{name} (sha256 {sha}), {ev.counts.get('records', 0)} records, "
            f"{ev.counts.get('items', len(ev.outcomes))} items")


def scoring_lines(ev: Evaluation) -> list[str]:
    """What the scorer did, and the two silent failure modes it must never hide: invalid and truncated."""
    from .counts import scoring_lines as counted  # the wording lives with the counts

    return [*counted(ev.counts, ev.meta.get("scoring_seconds")), *(f"Note: {n}" for n in ev.meta.get("notes", []))]
