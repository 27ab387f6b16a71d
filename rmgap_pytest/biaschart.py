"""The "why" chart: style bias and preference sensitivity with their intervals, one data function behind
the page's SVG (``_biaschart_svg``) and why.png (matplotlib, here).

Three panels of dot-and-interval rows (a forest plot), read from ``bias.bias_table``:

- **Style bias**: the five coefficients, SD of reward per level; left of zero leans towards a
  dimension's first level (casual, terse, ...), right towards its last (verbose, ...), and each row
  names both ends.
- **Sensitivity**: all users, then each domain, SD of reward; zero is a prompt-blind model.
- **Sensitivity by the level users want**: per (dimension, level) of the wanted response.

Colour is never the only cue: a filled dot means the 95% interval excludes zero, a hollow one that it
does not, every row prints its value, and the axis marks zero with a labelled line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import DIMENSIONS, DOMAINS
from .metrics import ALL

INK, MUTED, ZERO_LINE, BAR = "#1f2328", "#59636e", "#8c959f", "#3b1d6e"
NO_CHART = "no style bias or sensitivity could be estimated (the data has no records whose four users want four " \
           "different responses)"


@dataclass(frozen=True)
class Row:
    """One estimate: a dot at ``value`` and a bar from ``lo`` to ``hi``; ``ends``: what either side means."""

    label: str
    value: float
    lo: float
    hi: float
    support: int
    ends: tuple[str, str] | None = None  # bias: (first level, last level) of the dimension
    header: str | None = None  # the per-level panel: the dimension this row opens

    @property
    def excludes_zero(self) -> bool:
        return bool(self.lo > 0 or self.hi < 0)

    def text(self) -> str:
        """'+0.60 [+0.55, +0.64]'."""
        return f"{self.value:+.2f} [{self.lo:+.2f}, {self.hi:+.2f}]"


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    unit: str
    rows: list[Row]
    axis: tuple[float, float, float]  # (low end, high end, tick step), zero always inside


@dataclass(frozen=True)
class WhyChart:
    panels: list[Panel]

    @property
    def empty(self) -> bool:
        return not self.panels


def nice_axis(lo: float, hi: float, ticks: int = 4) -> tuple[float, float, float]:
    """(low, high, step): a round step giving about ``ticks`` intervals over [lo, hi] with zero inside."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = hi - lo or 1.0
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return math.floor(lo / step - 1e-9) * step, math.ceil(hi / step + 1e-9) * step, step


def _finite(r: Any) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(x) for x in (r.value, r.lo, r.hi))


def _panel(key: str, title: str, unit: str, rows: list[Row]) -> Panel | None:
    if not rows:
        return None
    return Panel(key, title, unit, rows, nice_axis(min(r.lo for r in rows), max(r.hi for r in rows)))


def why_chart(table: pd.DataFrame) -> WhyChart:
    """The chart's data from ``bias.bias_table`` (or report.json's ``bias`` rows as a DataFrame).

    Rows whose estimate or interval is not finite (not identified by the data) are left out; a
    panel without rows is left out; no panels at all: ``WhyChart.empty``.
    """
    if table is None or table.empty:
        return WhyChart([])
    t = table[table["domain"] == ALL]
    est = {(r.kind, r.dimension if isinstance(r.dimension, str) else None,
            r.level if isinstance(r.level, str) else None): r for r in t.itertuples(index=False) if _finite(r)}
    bias = [Row(dim.replace("_", " "), *_vals(est[("bias", dim, None)]),
                ends=(DIMENSIONS[dim][0].replace("_", " "), DIMENSIONS[dim][-1].replace("_", " ")))
            for dim in DIMENSIONS if ("bias", dim, None) in est]
    dom = {r.domain: r for r in table[(table["kind"] == "sensitivity") & table["dimension"].isna()]
           .itertuples(index=False) if _finite(r)}
    sens = [Row("All users" if d == ALL else d, *_vals(dom[d])) for d in (ALL, *DOMAINS) if d in dom]
    levels = []
    for dim, lvls in DIMENSIONS.items():
        first = True
        for lvl in lvls:
            r = est.get(("sensitivity", dim, lvl))
            if r is not None:
                levels.append(Row(lvl.replace("_", " "), *_vals(r), header=dim.replace("_", " ") if first else None))
                first = False
    panels = [_panel("bias", "Style bias: what it rewards whoever asks", "SD of reward per level", bias),
              _panel("sensitivity", "Sensitivity: how far it follows the user", "SD of reward", sens),
              _panel("levels", "Sensitivity by the level users want", "SD of reward", levels)]
    return WhyChart([p for p in panels if p is not None])


def _vals(r: Any) -> tuple[float, float, float, int]:
    return float(r.value), float(r.lo), float(r.hi), int(r.support)


def chart_rows(chart: WhyChart) -> list[list[str]]:
    """The chart as table rows (Estimate, Where, Value [95%], Unit, Users) for report.md and the page's fold."""
    kinds = {"bias": "Style bias", "sensitivity": "Sensitivity", "levels": "Sensitivity"}
    rows = []
    for p in chart.panels:
        header = None
        for r in p.rows:
            header = r.header or header
            where = f"{r.label} ({r.ends[0]} → {r.ends[1]})" if r.ends else f"{header}={r.label}" if header else r.label
            rows.append([kinds[p.key], where, r.text(), p.unit, str(r.support)])
    return rows


# ---- why.png -------------------------------------------------------------------------------------------------

ROW_IN = 0.3  # inches per row of why.png; a bias row is taller, for the names of its two ends
_BIAS_ROW = 1.6


def _layout(panel: Panel) -> tuple[list[float], list[float], float]:
    """Row centres and header centres in row units (0 at the top, growing down), and the panel's height."""
    step = _BIAS_ROW if panel.key == "bias" else 1.0
    rows, headers, y = [], [], 0.5
    for r in panel.rows:
        if r.header is not None:
            headers.append(y)
            y += 1.0
        rows.append(y + (step - 1) / 2)
        y += step
    return rows, headers, y


def draw_png(chart: WhyChart, title: str) -> Any:
    """The matplotlib Figure (Agg canvas, pyplot untouched) that ``write_png`` saves: bias and sensitivity on
    the left, the per-level sensitivity on the right, rows of equal height everywhere."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    left = [p for p in chart.panels if p.key != "levels"]
    right = [p for p in chart.panels if p.key == "levels"]
    pad_top, pad_axis, pad_bottom = 0.9, 1.05, 0.7  # inches: title, panel title + x axis, legend
    column = [sum(_layout(p)[2] * ROW_IN + pad_axis for p in col) for col in (left, right)]
    width, height = 14.0, max(4.0, pad_top + max(column) + pad_bottom)
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    if chart.empty:
        ax = fig.add_axes((0, 0, 1, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, f"No chart: {NO_CHART}", ha="center", va="center", fontsize=12, wrap=True)
        fig.suptitle(title, fontsize=13)
        return fig
    for x0, col in ((0.0, left), (0.5, right)):
        top = height - pad_top
        for panel in col:
            h = _layout(panel)[2] * ROW_IN
            ax = fig.add_axes(((x0 + 0.15) , (top - 0.45 - h) / height, 0.22, h / height))
            _draw_panel(ax, panel)
            top -= h + pad_axis
    fig.legend(handles=[Line2D([], [], marker="o", color=BAR, markerfacecolor=INK, linestyle="-", markersize=8,
                               label="95% interval excludes 0 (filled)"),
                        Line2D([], [], marker="o", color=BAR, markerfacecolor="white", linestyle="-", markersize=8,
                               label="95% interval includes 0 (hollow)")],
               loc="lower center", ncol=2, frameon=False, fontsize=11)
    fig.suptitle(title, fontsize=14, y=1 - 0.35 / height)
    return fig


def _draw_panel(ax: Any, panel: Panel) -> None:
    """One panel: bars and caps as one collection, dots as two (filled, hollow), then the texts."""
    from matplotlib.collections import LineCollection

    lo, hi, step = panel.axis
    ys, heads, total = _layout(panel)
    segs = [[(r.lo, y), (r.hi, y)] for r, y in zip(panel.rows, ys)]
    segs += [[(x, y - 0.2), (x, y + 0.2)] for r, y in zip(panel.rows, ys) for x in (r.lo, r.hi)]
    ax.add_collection(LineCollection(segs, colors=BAR, linewidths=[2] * len(panel.rows) + [1.2] * 2 * len(panel.rows)))
    for filled in (True, False):
        pts = [(r.value, y) for r, y in zip(panel.rows, ys) if r.excludes_zero == filled]
        if pts:
            ax.scatter(*zip(*pts), s=64, facecolors=INK if filled else "white", edgecolors=INK, linewidths=1.5,
                       zorder=3)
    for r, y in zip(panel.rows, ys):
        ax.text(1.03, y, r.text(), transform=ax.get_yaxis_transform(), fontsize=10, va="center", ha="left",
                color=INK, family="monospace")
        if r.ends:
            ax.text(lo, y - 0.55, f"← {r.ends[0]}", fontsize=9, color=MUTED, ha="left", va="center")
            ax.text(hi, y - 0.55, f"{r.ends[1]} →", fontsize=9, color=MUTED, ha="right", va="center")
    for r, y in zip([r for r in panel.rows if r.header is not None], heads):
        ax.text(-0.03, y, r.header, transform=ax.get_yaxis_transform(), fontsize=10.5, fontweight="bold",
                va="center", ha="right", color=INK)
    ax.axvline(0, color=ZERO_LINE, linestyle="--", linewidth=1.2, zorder=1)
    ax.set_xlim(lo, hi)
    ax.set_ylim(total, 0)
    ax.set_yticks(ys, [r.label for r in panel.rows], fontsize=10.5)
    ax.set_xticks(np.arange(lo, hi + step / 2, step))
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(f"{panel.unit} (0 = no effect)", fontsize=10.5)
    ax.set_title(panel.title, fontsize=12, loc="left", x=-0.55)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def write_png(chart: WhyChart, path: str | Path, title: str) -> Path:
    fig = draw_png(chart, title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def why_png(table: pd.DataFrame, path: str | Path, spec: str = "") -> Path:
    """why.png of a ``bias_table`` (``Evaluation.bias``)."""
    return write_png(why_chart(table), path, "Why: style bias and preference sensitivity" + (f" of {spec}" if spec else ""))
