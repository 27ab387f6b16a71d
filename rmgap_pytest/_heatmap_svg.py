"""The page's heatmap: inline SVG, wide (domains as rows) and tall (transposed, for phones).

Hand-written SVG rather than matplotlib's SVG backend on purpose: each cell is
a link (``<a href="#cell-...">``) to a note with its interval that CSS shows on
tap (``tips``), with a ``<title>`` tooltip for mouse users;
text stays text (selectable, scalable); and the file stays small. The grid,
the statuses and the colours come from ``heatmap``, which also draws
heatmap.png, so the two always agree. CSS in ``_report_html`` shows the wide
drawing above 760 px and the tall one below.
"""

from __future__ import annotations

import html as _html
from typing import Any

import numpy as np

from .data import DIMENSIONS
from .heatmap import (EMPTY_FILL, LIGHT_INK, MUTED_FILL, MUTED_HATCH, MUTED_INK, OUTLINE, Heatmap, cell_colours,
                      colour)
from .metrics import ALL
from .views import CHANCE_BON, NO_PROFILES, cell_anchor

N_LEVELS = len(next(iter(DIMENSIONS.values())))
GUTTER = 8  # space between dimension groups, and between All and the domains
# Defined once, in an always-rendered SVG: a pattern inside a display:none drawing (the wide one on a
# phone) paints nothing, and repeating the id in each drawing makes every reference find the first one.
DEFS = (f'<svg class="defs" width="0" height="0" aria-hidden="true" focusable="false"><defs>'
        f'<pattern id="rmgap-hatch" width="7" height="7" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="7" height="7" fill="{MUTED_FILL}"/>'
        f'<line x1="0" y1="0" x2="0" y2="7" stroke="{MUTED_HATCH}" stroke-width="2.5"/></pattern></defs></svg>')


def esc(x: Any) -> str:
    return _html.escape(str(x), quote=True)


def _cell(hm: Heatmap, i: int, j: int, x: float, y: float, w: float, h: float, big: int, small: int) -> str:
    """One cell: a link to its table row, a tooltip, the fill, the value and support, an outline if failing."""
    dim, lvl = hm.columns[j]
    status = hm.status[i, j]
    fill, text = cell_colours(hm, i, j)
    paint = "url(#rmgap-hatch)" if status == "muted" else fill
    edge = ' stroke="#8c959f" stroke-dasharray="3 3"' if status == "empty" else ""
    parts = [f'<a href="#{cell_anchor(hm.rows[i], dim, lvl)}" class="hm {status}" data-cell="{esc(hm.name(i, j))}">'
             f'<title>{esc(hm.tooltip(i, j))}</title>'
             f'<rect class="bg" x="{x:.0f}" y="{y:.0f}" width="{w - 2:.0f}" height="{h - 2:.0f}" fill="{paint}"{edge}/>']
    cx = x + (w - 2) / 2
    if status == "empty":
        parts.append(f'<text x="{cx:.0f}" y="{y + h / 2 + 4:.0f}" text-anchor="middle" font-size="{big}" '
                     f'fill="{MUTED_INK}">–</text>')
    else:
        weight = ' font-weight="700"' if status == "fail" else ""
        parts.append(f'<text x="{cx:.0f}" y="{y + h / 2 - 3:.0f}" text-anchor="middle" font-size="{big}" '
                     f'fill="{text}"{weight}>{hm.value[i, j]:.2f}</text>'
                     f'<text x="{cx:.0f}" y="{y + h / 2 + small - 1:.0f}" text-anchor="middle" '
                     f'font-size="{small - (1 if hm.support[i, j] >= 1000 else 0)}" '  # "n=1119" inside the outline
                     f'fill="{text}">n={hm.support[i, j]}</text>')
    if status == "fail":  # black outside, white inside: visible on the darkest and the lightest fill
        parts.append(f'<rect class="outline" x="{x + 1.5:.1f}" y="{y + 1.5:.1f}" width="{w - 5:.0f}" '
                     f'height="{h - 5:.0f}" fill="none" stroke="{OUTLINE}" stroke-width="3"/>'
                     f'<rect x="{x + 4:.0f}" y="{y + 4:.0f}" width="{w - 10:.0f}" height="{h - 10:.0f}" fill="none" '
                     f'stroke="{LIGHT_INK}" stroke-width="1.2"/>')
    return "".join(parts) + "</a>"


def wide_svg(hm: Heatmap) -> str:
    """Domains as rows (All on top), the 25 profile levels as columns: for screens wider than a phone."""
    cw, ch, left, top = 52, 48, 86, 34
    xs = [left + j * cw + (j // N_LEVELS) * GUTTER for j in range(len(hm.columns))]
    ys = [top + i * ch + (GUTTER if hm.rows[0] == ALL and i > 0 else 0) for i in range(len(hm.rows))]
    width, bottom = xs[-1] + cw + 4, ys[-1] + ch
    height = bottom + 96  # rotated level names
    parts = [f'<svg class="heatmap wide" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="BoN heatmap: domains by the profile level users want">']
    for k, dim in enumerate(DIMENSIONS):
        cx = xs[k * N_LEVELS] + N_LEVELS * cw / 2
        parts.append(f'<text x="{cx:.0f}" y="{top - 12}" text-anchor="middle" font-size="15" font-weight="600">'
                     f'{esc(dim.replace("_", " "))}</text>')
    for i, (row, y) in enumerate(zip(hm.rows, ys)):
        parts.append(f'<text x="{left - 8}" y="{y + ch / 2 + 5:.0f}" text-anchor="end" font-size="14" '
                     f'font-weight="{700 if row == ALL else 400}">{esc(row)}</text>')
        parts += [_cell(hm, i, j, xs[j], y, cw, ch, 14, 11) for j in range(len(hm.columns))]
    for j, (_, lvl) in enumerate(hm.columns):
        x, y = xs[j] + cw / 2, bottom + 10
        parts.append(f'<text x="{x:.0f}" y="{y:.0f}" font-size="12" text-anchor="end" '
                     f'transform="rotate(-40 {x:.0f} {y:.0f})">{esc(lvl.replace("_", " "))}</text>')
    return "".join(parts) + "</svg>"


def tall_svg(hm: Heatmap) -> str:
    """Transposed: levels as rows under their dimension, All and the domains as columns; legible at 390 px."""
    cw, ch, left, top, head = 54, 44, 122, 50, 24
    xs = [left + i * cw + (GUTTER if hm.rows[0] == ALL and i > 0 else 0) for i in range(len(hm.rows))]
    width = xs[-1] + cw + 16  # the last rotated column name reaches past its column
    parts, y = [], top
    for i, (row, x) in enumerate(zip(hm.rows, xs)):
        tx, ty = x + cw / 2 - 6, top - 6  # rotated: "Reasoning" is wider than a column
        parts.append(f'<text x="{tx:.0f}" y="{ty}" font-size="12" transform="rotate(-30 {tx:.0f} {ty})" '
                     f'font-weight="{700 if row == ALL else 400}">{esc(row)}</text>')
    for k, (dim, levels) in enumerate(DIMENSIONS.items()):
        parts.append(f'<text x="4" y="{y + head - 7}" font-size="14" font-weight="600">'
                     f'{esc(dim.replace("_", " "))}</text>')
        y += head
        for n, lvl in enumerate(levels):
            j = k * N_LEVELS + n
            parts.append(f'<text x="{left - 6}" y="{y + ch / 2 + 4:.0f}" text-anchor="end" font-size="13">'
                         f'{esc(lvl.replace("_", " "))}</text>')
            parts += [_cell(hm, i, j, x, y, cw, ch, 14, 11) for i, x in enumerate(xs)]
            y += ch
        y += GUTTER
    return (f'<svg class="heatmap tall" viewBox="0 0 {width} {y}" role="img" aria-label="BoN heatmap: the '
            f'profile level users want by domain">{"".join(parts)}</svg>')


def tips(hm: Heatmap) -> str:
    """One hidden note per cell, shown by CSS ``:target`` when its cell is tapped: the tap target a touch
    screen needs (no hover there), without a script. Fixed at the bottom of the screen, so showing one
    does not scroll the page; the x link goes to an id that does not exist, which hides it again."""
    notes = [f'<p class="tip" id="{cell_anchor(hm.rows[i], *hm.columns[j])}"><a class="close" href="#_" '
             f'aria-label="close">×</a>{esc(hm.tooltip(i, j))}</p>'
             for i, j in zip(*np.nonzero(hm.status != "empty"))]
    return f'<div class="tips">{"".join(notes)}</div>'


def legend(hm: Heatmap) -> str:
    """The colour scale and the three non-colour cues, as HTML (it reflows on a phone)."""
    stops = ", ".join(f"{colour(v)} {v * 100:.0f}%" for v in (0, CHANCE_BON, 0.5, 0.75, 1))
    ticks = "".join(f'<span style="left:{v * 100:.0f}%">{v:g}</span>' for v in (0, CHANCE_BON, 0.5, 0.75, 1))

    def swatch(inner: str) -> str:
        return f'<svg class="swatch" viewBox="0 0 26 18" aria-hidden="true">{inner}</svg>'

    hatched = swatch('<rect width="26" height="18" fill="url(#rmgap-hatch)"/>')
    outlined = swatch(f'<rect width="26" height="18" fill="{colour(0.1)}"/><rect x="1.5" y="1.5" width="23" '
                      f'height="15" fill="none" stroke="{OUTLINE}" stroke-width="3"/><rect x="4" y="4" width="18" '
                      f'height="10" fill="none" stroke="{LIGHT_INK}" stroke-width="1.2"/>')
    empty = swatch(f'<rect x="1" y="1" width="24" height="16" fill="{EMPTY_FILL}" stroke="#8c959f" '
                   'stroke-dasharray="3 3"/>')
    return (f'<div class="legend"><div class="scale"><div class="grad" style="background:linear-gradient(to right, '
            f'{stops})"></div><div class="ticks">{ticks}</div><div class="cap">BoN; 0.25 = chance (a coin flip '
            f'among four)</div></div>'
            f'<span class="key">{outlined} outlined, bold: a check failed</span>'
            f'<span class="key">{hatched} hatched, grey: fewer than {hm.min_support} prompt groups, not gated'
            f'</span><span class="key">{empty} no items</span></div>')


def heatmap_html(hm: Heatmap) -> str:
    if not hm.rows:
        return f'<p class="note">No heatmap: {esc(NO_PROFILES)}.</p>'
    return f'<div class="hm-wrap">{DEFS}{wide_svg(hm)}{tall_svg(hm)}</div>{legend(hm)}{tips(hm)}'
