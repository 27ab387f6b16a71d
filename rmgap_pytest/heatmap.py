"""The BoN heatmap: one grid and one palette behind the page's SVG and heatmap.png.

Rows are ``All`` first, then the domains; columns are the 25 (dimension, level)
profiles. A cell is drawn one of four ways, and never by colour alone:

- ``ok``: filled on a diverging scale anchored at chance, with its value and support;
- ``fail``: the same, outlined (black outside, white inside, visible on any fill);
- ``muted``: fewer prompt groups than ``min_support``: hatched grey, grey text, no
  scale colour, because the gate does not test it and its interval is too wide;
- ``empty``: no items.

Text colours are picked for WCAG AA contrast (4.5:1) on every fill the scale can
produce; ``contrast_ratio`` is the WCAG 2.x formula and the tests check it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import DIMENSIONS, DOMAINS
from .evaluation import Evaluation
from .metrics import ALL
from .views import CHANCE_BON, fmt_est, label, min_support, rows_of
from .words import users

# Diverging palette anchored at chance: red = worse than random, blue = better (ColorBrewer RdBu ends).
PALETTE = ("#b2182b", "#f7f7f7", "#2166ac")
DARK_INK, LIGHT_INK = "#000000", "#ffffff"  # pure black: with #222 some mid-scale fills drop below 4.5:1
MUTED_FILL, MUTED_HATCH, MUTED_INK = "#f3f3f3", "#c8c8c8", "#4d4d4d"
EMPTY_FILL = "#ffffff"
OUTLINE = "#000000"
STATUSES = ("ok", "fail", "muted", "empty")


@dataclass(frozen=True)
class Heatmap:
    """BoN per row (All, then domains) x (dimension, level) column; NaN where a cell has no items."""

    rows: list[str]
    columns: list[tuple[str, str]]
    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    support: np.ndarray
    status: np.ndarray  # one of STATUSES per cell
    min_support: int
    why: dict[tuple[int, int], str] = field(default_factory=dict)  # failing cells: what failed

    def name(self, i: int, j: int) -> str:
        return label("cell", self.rows[i], *self.columns[j])

    def tooltip(self, i: int, j: int) -> str:
        """'All/Conciseness=terse: users who want terse answers. BoN 0.148 [0.05, 0.26], 27 groups. FAILED: ...'."""
        dim, lvl = self.columns[j]
        head = f"{self.name(i, j)}: {users(self.rows[i], dim, lvl)}."
        status = self.status[i, j]
        if status == "empty":
            return f"{head} No items."
        text = f"{head} BoN {fmt_est(self.value[i, j], self.lo[i, j], self.hi[i, j])}, {self.support[i, j]} groups."
        if status == "muted":
            return f"{text} Not gated: fewer than {self.min_support} prompt groups."
        if status == "fail":
            return f"{text} FAILED: {self.why.get((i, j), 'a check failed')}."
        return text


def failing_cells(checks: pd.DataFrame | None, comparison: pd.DataFrame | None = None) -> dict[tuple, str]:
    """(domain, dimension, level) -> what failed, from the gate's checks (or the comparison without a gate)."""
    out: dict[tuple, str] = {}
    if checks is not None and len(checks):
        from .verdict import outcome_note

        failed = checks[(checks["status"] == "fail") & checks["kind"].isin(["cell", "regression"])]
        for r in failed.itertuples(index=False):
            if isinstance(r.level, str):
                what = f"{r.metric} {'dropped' if r.kind == 'regression' else outcome_note(r)}"
                key = (r.domain, r.dimension, r.level)
                out[key] = f"{out[key]}; {what}" if key in out else what
    elif comparison is not None and len(comparison):
        from .verdict import regressed

        for r in regressed(comparison).itertuples(index=False):
            if r.kind == "cell":
                out.setdefault((r.domain, r.dimension, r.level), f"{r.metric} regressed")
    return out


def heatmap_grid(ev: Evaluation, checks: pd.DataFrame | None = None,
                 comparison: pd.DataFrame | None = None) -> Heatmap:
    cells = rows_of(ev, "cell", "BoN")
    present = set(cells["domain"])
    rows = [d for d in (ALL, *DOMAINS) if d in present]
    columns = [(dim, lvl) for dim, levels in DIMENSIONS.items() for lvl in levels]
    shape = (len(rows), len(columns))
    grid = {k: np.full(shape, np.nan) for k in ("value", "lo", "hi")}
    support = np.zeros(shape, dtype=np.int64)
    row_of = {r: i for i, r in enumerate(rows)}
    col_of = {c: j for j, c in enumerate(columns)}
    i = np.array([row_of[d] for d in cells["domain"]], dtype=np.int64)
    j = np.array([col_of[(a, b)] for a, b in zip(cells["dimension"], cells["level"])], dtype=np.int64)
    for k in grid:
        grid[k][i, j] = pd.to_numeric(cells[k], errors="coerce").to_numpy(np.float64)
    support[i, j] = cells["support"].to_numpy(np.int64)
    floor = min_support(ev)
    status = np.where(np.isnan(grid["value"]) | (support == 0), "empty", np.where(support < floor, "muted", "ok"))
    status = status.astype("<U5")
    why = {}
    for (dom, dim, lvl), what in failing_cells(checks, comparison).items():
        if dom in row_of and (dim, lvl) in col_of and status[row_of[dom], col_of[(dim, lvl)]] == "ok":
            status[row_of[dom], col_of[(dim, lvl)]] = "fail"
            why[(row_of[dom], col_of[(dim, lvl)])] = what
    return Heatmap(rows, columns, grid["value"], grid["lo"], grid["hi"], support, status, floor, why)


# ---- colours -------------------------------------------------------------------------------------------------

def rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def colour(value: float) -> str:
    """The diverging scale: PALETTE[0] at 0, PALETTE[1] at chance, PALETTE[2] at 1 (linear in sRGB)."""
    v = min(max(value, 0.0), 1.0)
    if v <= CHANCE_BON:
        a, b, t = PALETTE[0], PALETTE[1], v / CHANCE_BON
    else:
        a, b, t = PALETTE[1], PALETTE[2], (v - CHANCE_BON) / (1 - CHANCE_BON)
    mix = [round(x + (y - x) * t) for x, y in zip(rgb(a), rgb(b))]
    return "#%02x%02x%02x" % tuple(mix)


def luminance(hex_colour: str) -> float:
    """WCAG 2.x relative luminance of an sRGB colour."""
    def lin(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2.x contrast ratio, 1 to 21; AA asks 4.5 for text, 3 for large text and graphics."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def ink(fill: str) -> str:
    """Black or white text, whichever contrasts more with ``fill`` (always >= 4.58:1)."""
    return DARK_INK if contrast_ratio(fill, DARK_INK) >= contrast_ratio(fill, LIGHT_INK) else LIGHT_INK


def cell_colours(hm: Heatmap, i: int, j: int) -> tuple[str, str]:
    """(fill, text colour) of one cell; muted cells' hatch is drawn over MUTED_FILL."""
    status = hm.status[i, j]
    if status == "empty":
        return EMPTY_FILL, MUTED_INK
    if status == "muted":
        return MUTED_FILL, MUTED_INK
    fill = colour(float(hm.value[i, j]))
    return fill, ink(fill)


# ---- heatmap.png ---------------------------------------------------------------------------------------------

def draw_png(hm: Heatmap, title: str) -> Any:
    """The picture ``write_png`` saves, drawn with Pillow (``_heatmap_png``): (PIL RGB image, its
    ``Layout``, which maps cell coordinates to pixels)."""
    from ._heatmap_png import draw

    return draw(hm, title)


def write_png(hm: Heatmap, path: str | Path, title: str) -> Path:
    """heatmap.png, 1600x640 px."""
    from ._heatmap_png import write

    return write(hm, path, title)


def heatmap_png(ev: Evaluation, path: str | Path, checks: pd.DataFrame | None = None,
                comparison: pd.DataFrame | None = None) -> Path:
    """The BoN heatmap of ``ev`` as a PNG; failing cells outlined when the gate's checks are given."""
    title = f"BoN by domain and the profile users want: {ev.meta.get('spec', '')}"
    return write_png(heatmap_grid(ev, checks, comparison), path, title)

