"""The page's "why" chart: one small inline SVG per panel of ``biaschart.why_chart``.

Hand-written SVG, as the heatmap: text stays text, each row carries a ``<title>`` with its full
reading, and the file stays small. Each panel is drawn 360 units wide and shown at most
440 px wide, side by side on a wide screen and one under the other on a phone, where it is
drawn at about its own size (a 390 px screen leaves 366 px), so the text stays 12-14 px.
The first two panels give each row two lines (the name and its value with interval, then the
bar); the per-level panel one line (name, bar, value), the interval in its tooltip.
"""

from __future__ import annotations

import html as _html
from typing import Any

from .biaschart import BAR, INK, MUTED, NO_CHART, ZERO_LINE, Panel, Row, WhyChart

W = 360  # viewBox width of a panel
PAD = 6
MONO = 'font-family="ui-monospace,SFMono-Regular,Menlo,Consolas,monospace"'


def esc(x: Any) -> str:
    return _html.escape(str(x), quote=True)


def _x(panel: Panel, v: float, x0: float, x1: float) -> float:
    lo, hi, _ = panel.axis
    return x0 + (min(max(v, lo), hi) - lo) / (hi - lo) * (x1 - x0)


def _mark(panel: Panel, r: Row, y: float, x0: float, x1: float) -> str:
    """The interval bar with end caps and the dot: filled when the interval excludes zero, hollow when not."""
    a, b, v = (_x(panel, t, x0, x1) for t in (r.lo, r.hi, r.value))
    fill = INK if r.excludes_zero else "#ffffff"
    return (f'<line x1="{a:.1f}" y1="{y:.1f}" x2="{b:.1f}" y2="{y:.1f}" stroke="{BAR}" stroke-width="2.5"/>'
            f'<path d="M{a:.1f} {y - 5:.1f}v10M{b:.1f} {y - 5:.1f}v10" stroke="{BAR}" stroke-width="1.5"/>'
            f'<circle cx="{v:.1f}" cy="{y:.1f}" r="5.5" fill="{fill}" stroke="{INK}" stroke-width="2"/>')


def _tooltip(panel: Panel, r: Row) -> str:
    who = "users" if panel.key != "bias" else "users (their unwanted answers)"
    lead = f"{r.header + ' = ' if r.header else ''}{r.label}"
    towards = f", negative towards {r.ends[0]}, positive towards {r.ends[1]}" if r.ends else ""
    verdict = "the 95% interval excludes 0" if r.excludes_zero else "the 95% interval includes 0"
    return f"{lead}: {r.text()} {panel.unit}{towards}; {verdict}; {r.support} {who}"


def _axis(panel: Panel, y: float, x0: float, x1: float, top: float) -> list[str]:
    """The zero line through every row, ticks and the unit below."""
    lo, hi, step = panel.axis
    z = _x(panel, 0.0, x0, x1)
    out = [f'<line x1="{z:.1f}" y1="{top:.1f}" x2="{z:.1f}" y2="{y:.1f}" stroke="{ZERO_LINE}" stroke-width="1.2" '
           f'stroke-dasharray="4 3"/>',
           f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="{MUTED}" stroke-width="1"/>']
    n = round((hi - lo) / step)
    for k in range(n + 1):
        v = lo + k * step
        x = _x(panel, v, x0, x1)
        out.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + 4:.1f}" stroke="{MUTED}"/>'
                   f'<text x="{x:.1f}" y="{y + 17:.1f}" text-anchor="middle" font-size="12">{v:+g}</text>'
                   .replace(">+0<", ">0<"))
    out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{y + 34:.1f}" text-anchor="middle" font-size="12" '
               f'fill="{MUTED}">{esc(panel.unit)}; dashed line: 0, no effect</text>')
    return out


def panel_svg(panel: Panel) -> str:
    """One panel as a self-contained <svg>."""
    compact = panel.key == "levels"
    x0, x1 = (118.0, 296.0) if compact else (20.0, W - 24.0)
    parts = [f'<text x="{PAD}" y="18" font-size="15" font-weight="600">{esc(panel.title)}</text>']
    y = 34.0
    top = y
    for r in panel.rows:
        if r.header is not None:
            parts.append(f'<text x="{PAD}" y="{y + 16:.1f}" font-size="13.5" font-weight="600">{esc(r.header)}</text>')
            y += 22
        rows = [f'<title>{esc(_tooltip(panel, r))}</title>']
        if compact:
            mid = y + 13
            rows += [f'<text x="{PAD + 10}" y="{mid + 4.5:.1f}" font-size="13">{esc(r.label)}</text>',
                     _mark(panel, r, mid, x0, x1),
                     f'<text x="{W - PAD}" y="{mid + 4.5:.1f}" text-anchor="end" font-size="12.5" {MONO}>'
                     f'{r.value:+.2f}</text>']
            y += 26
        else:
            rows += [f'<text x="{PAD}" y="{y + 16:.1f}" font-size="14" font-weight="{700 if r.label == "All users" else 400}">'
                     f'{esc(r.label)}</text>',
                     f'<text x="{W - PAD}" y="{y + 16:.1f}" text-anchor="end" font-size="13" {MONO}>{esc(r.text())}</text>',
                     _mark(panel, r, y + 32, x0, x1)]
            if r.ends:
                rows += [f'<text x="{x0}" y="{y + 52:.1f}" font-size="11.5" fill="{MUTED}">← {esc(r.ends[0])}</text>',
                         f'<text x="{x1}" y="{y + 52:.1f}" text-anchor="end" font-size="11.5" fill="{MUTED}">'
                         f'{esc(r.ends[1])} →</text>']
            y += 64 if r.ends else 46
        parts.append(f'<g class="why-row">{"".join(rows)}</g>')
    parts += _axis(panel, y + 4, x0, x1, top)
    height = y + 48
    label = f"{panel.title}, in {panel.unit}: " + "; ".join(f"{r.label} {r.text()}" for r in panel.rows[:12])
    return (f'<svg class="why-panel" viewBox="0 0 {W} {height:.0f}" role="img" aria-label="{esc(label)}">'
            f'{"".join(parts)}</svg>')


def chart_html(chart: WhyChart) -> str:
    """Every panel, then a legend that says what the marks mean in words."""
    if chart.empty:
        return f'<p class="note">No chart: {esc(NO_CHART)}.</p>'
    legend = (f'<p class="why-key"><svg viewBox="0 0 14 14" aria-hidden="true"><circle cx="7" cy="7" r="5" fill="{INK}"/>'
              f'</svg> filled: the 95% interval excludes 0 <svg viewBox="0 0 14 14" aria-hidden="true"><circle cx="7" '
              f'cy="7" r="5" fill="#ffffff" stroke="{INK}" stroke-width="2"/></svg> hollow: it includes 0 (no '
              'measurable effect); bars: 95% intervals; hover or tap a row for its reading.</p>')
    return f'<div class="why-chart">{"".join(panel_svg(p) for p in chart.panels)}</div>{legend}'
