"""report.html, one self-contained page built from ``report``'s views, and the heatmap drawings.

Self-contained on purpose: the file is uploaded as a CI artifact and opened
offline, so the CSS is inline, the heatmap is an inline SVG drawn here, and
nothing is fetched (no scripts, fonts or CDNs). Every piece of text passes
through ``html.escape``; only markup built in this module is trusted. The
same heatmap grid and palette also give heatmap.png (matplotlib, Agg).
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import report as R
from .data import DIMENSIONS
from .evaluation import Evaluation
from .metrics import ALL

# Diverging palette anchored at chance: red = worse than random, blue = better; the SVG and the PNG share it.
PALETTE = ("#b2182b", "#f7f7f7", "#2166ac")
STATUS_ORDER = {"fail": 0, "skip": 1, "pass": 2}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0;background:#fff}
main{max-width:1440px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
p.note{color:#57606a;margin:4px 0 10px}
.verdict{font-size:17px;font-weight:600;padding:10px 14px;border-radius:6px;margin:10px 0}
.verdict.fail{background:#ffebe9;border:1px solid #ff8182}.verdict.pass{background:#dafbe1;border:1px solid #4ac26b}
.verdict.info{background:#ddf4ff;border:1px solid #54aeff}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px;margin:8px 0}
table{border-collapse:collapse;margin:4px 0 8px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:4px 10px;vertical-align:top}th{background:#f6f8fa;text-align:left}
td.r{text-align:right;white-space:nowrap}td.l{text-align:left}
tr.fail td{background:#fff5f5}tr.skip td{color:#6e7781}
td.status-fail{color:#cf222e;font-weight:600}td.status-pass{color:#1a7f37}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:6px 0}
dl.meta dt{color:#57606a}dl.meta dd{margin:0;word-break:break-all}
.bar{position:relative;width:260px;height:14px;background:#f0f3f6;border-radius:3px}
.bar .fill{position:absolute;left:0;top:2px;height:10px;background:#8c6bb1;border-radius:2px}
.bar .ci{position:absolute;top:6px;height:2px;background:#2d1d45}
svg.heatmap{width:100%;max-width:1400px;height:auto}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
details summary{cursor:pointer;font-weight:600;margin:6px 0}
"""

CELL_W, CELL_H, LEFT, TOP = 52, 42, 84, 30  # heatmap geometry in SVG user units


class Raw(str):
    """Markup built in this module: placed into the page without escaping."""


def esc(x: Any) -> str:
    return x if isinstance(x, Raw) else _html.escape(str(x), quote=True)


def table(view: R.View, row_classes: Iterable[str] | None = None, status_col: int | None = None) -> str:
    if not view.rows:
        return '<p class="note">(none)</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in view.header)
    classes = list(row_classes) if row_classes is not None else [""] * len(view.rows)
    body = []
    for row, cls in zip(view.rows, classes):
        tds = []
        for j, (cell, a) in enumerate(zip(row, view.align)):
            extra = f" status-{esc(cell)}" if j == status_col else ""
            tds.append(f'<td class="{a}{extra}">{esc(cell)}</td>')
        attr = f' class="{esc(cls)}"' if cls else ""
        body.append(f"<tr{attr}>{''.join(tds)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# ---- colours -----------------------------------------------------------------------------------------------

def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def colour(value: float) -> str:
    """The PNG's diverging scale: PALETTE[0] at 0, PALETTE[1] at chance, PALETTE[2] at 1."""
    v = min(max(value, 0.0), 1.0)
    if v <= R.CHANCE_BON:
        a, b, t = PALETTE[0], PALETTE[1], v / R.CHANCE_BON
    else:
        a, b, t = PALETTE[1], PALETTE[2], (v - R.CHANCE_BON) / (1 - R.CHANCE_BON)
    mix = [round(x + (y - x) * t) for x, y in zip(_rgb(a), _rgb(b))]
    return "#%02x%02x%02x" % tuple(mix)


def _ink(fill: str) -> str:
    r, g, b = _rgb(fill)
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 128 else "#222222"


# ---- heatmap: data, SVG (for the page) and PNG (for the file) ----------------------------------------------

@dataclass(frozen=True)
class Heatmap:
    """BoN per domain row x (dimension, level) column; NaN where a cell has no support."""

    rows: list[str]
    columns: list[tuple[str, str]]
    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    support: np.ndarray


def heatmap_grid(ev: Evaluation) -> Heatmap:
    cells = R.rows_of(ev, "cell", "BoN")
    rows = R.ordered_domains(cells["domain"].tolist(), ALL)
    columns = [(dim, lvl) for dim, levels in DIMENSIONS.items() for lvl in levels]
    shape = (len(rows), len(columns))
    grid = {k: np.full(shape, np.nan) for k in ("value", "lo", "hi")}
    support = np.zeros(shape, dtype=np.int64)
    col_of = {c: j for j, c in enumerate(columns)}
    for _, r in cells.iterrows():
        i, j = rows.index(r["domain"]), col_of[(r["dimension"], r["level"])]
        for k in grid:
            grid[k][i, j] = R.num(r[k])
        support[i, j] = int(r["support"])
    return Heatmap(rows, columns, grid["value"], grid["lo"], grid["hi"], support)


def heatmap_svg(hm: Heatmap) -> str:
    if not hm.rows:
        return f'<p class="note">No heatmap: {esc(R.NO_PROFILES)}.</p>'
    n_levels = len(next(iter(DIMENSIONS.values())))
    gutter = 6  # white space between dimension groups, as in the PNG
    xs = [LEFT + j * CELL_W + (j // n_levels) * gutter for j in range(len(hm.columns))]
    width = xs[-1] + CELL_W + 10
    ys = [TOP + i * CELL_H + (gutter if row == ALL else 0) for i, row in enumerate(hm.rows)]  # All set apart
    grid_bottom = ys[-1] + CELL_H
    height = grid_bottom + 135  # room for the rotated level names and the legend
    parts = [f'<svg class="heatmap" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="BoN heatmap by domain and profile level">']
    for k, dim in enumerate(DIMENSIONS):
        cx = xs[k * n_levels] + n_levels * CELL_W / 2
        parts.append(f'<text x="{cx:.0f}" y="{TOP - 10}" text-anchor="middle" font-size="14" '
                     f'font-weight="600">{esc(dim.replace("_", " "))}</text>')
    for i, (row, y) in enumerate(zip(hm.rows, ys)):
        parts.append(f'<text x="{LEFT - 8}" y="{y + CELL_H / 2 + 5:.0f}" text-anchor="end" font-size="13" '
                     f'font-weight="{600 if row == ALL else 400}">{esc(row)}</text>')
        parts += [_heat_cell(hm, i, j, xs[j], y) for j in range(len(hm.columns))]
    for j, (_, lvl) in enumerate(hm.columns):
        x, y = xs[j] + CELL_W / 2, grid_bottom + 8
        parts.append(f'<text x="{x:.0f}" y="{y}" font-size="11" text-anchor="end" '
                     f'transform="rotate(-40 {x:.0f} {y})">{esc(lvl.replace("_", " "))}</text>')
    parts.append(_legend(LEFT, height - 26))
    parts.append("</svg>")
    return "".join(parts)


def _heat_cell(hm: Heatmap, i: int, j: int, x: float, y: float) -> str:
    value, support = hm.value[i, j], int(hm.support[i, j])
    dim, lvl = hm.columns[j]
    name = R.label("cell", hm.rows[i], dim, lvl)
    if support == 0 or math.isnan(value):
        return (f'<rect data-cell="{esc(name)}" x="{x}" y="{y}" width="{CELL_W - 1}" height="{CELL_H - 1}" '
                f'fill="#eeeeee"><title>{esc(name)}: no support</title></rect>')
    fill = colour(value)
    tip = f"{name}: BoN {R.fmt_est(value, hm.lo[i, j], hm.hi[i, j])}, {support} groups"
    ink = _ink(fill)
    return (f'<g><title>{esc(tip)}</title>'
            f'<rect data-cell="{esc(name)}" x="{x}" y="{y}" width="{CELL_W - 1}" height="{CELL_H - 1}" '
            f'fill="{fill}"/>'
            f'<text x="{x + CELL_W / 2:.0f}" y="{y + 18}" text-anchor="middle" font-size="13" '
            f'fill="{ink}">{value:.2f}</text>'
            f'<text x="{x + CELL_W / 2:.0f}" y="{y + 33}" text-anchor="middle" font-size="10" '
            f'fill="{ink}">n={support}</text></g>')


def _legend(x: float, y: float) -> str:
    w = 300
    stops = "".join(f'<stop offset="{v:.2f}" stop-color="{colour(v)}"/>' for v in (0, R.CHANCE_BON, 0.5, 0.75, 1))
    ticks = "".join(f'<text x="{x + w * v:.0f}" y="{y + 24}" font-size="11" text-anchor="middle">{v:g}</text>'
                    for v in (0, R.CHANCE_BON, 0.5, 0.75, 1))
    return (f'<defs><linearGradient id="rmgap-scale">{stops}</linearGradient></defs>'
            f'<rect x="{x}" y="{y}" width="{w}" height="12" fill="url(#rmgap-scale)" stroke="#999"/>{ticks}'
            f'<text x="{x + w + 12}" y="{y + 11}" font-size="12">BoN (0.25 = chance; grey = no support)</text>')


def heatmap_png(ev: Evaluation, path: str | Path) -> Path:
    """See ``report.heatmap_png``."""
    # Figure + FigureCanvasAgg render with Agg without switching pyplot's global backend under the user.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm
    from matplotlib.figure import Figure

    hm = heatmap_grid(ev)
    fig = Figure(figsize=(16, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if not hm.rows:
        ax.axis("off")
        ax.text(0.5, 0.5, f"No heatmap: {R.NO_PROFILES}", ha="center", va="center", fontsize=14)
    else:
        cmap = LinearSegmentedColormap.from_list("rmgap", PALETTE).with_extremes(bad="#e6e6e6")
        norm = TwoSlopeNorm(vcenter=R.CHANCE_BON, vmin=0.0, vmax=1.0)
        im = ax.imshow(np.ma.masked_invalid(hm.value), cmap=cmap, norm=norm, aspect="auto")
        _annotate(ax, hm, cmap, norm)
        _label_axes(ax, hm)
        bar = fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01, ticks=[0, R.CHANCE_BON, 0.5, 0.75, 1])
        bar.set_label("BoN (0.25 = chance)")
    ax.set_title(f"BoN by domain and the winner's profile level: {ev.meta.get('spec', '')}", fontsize=13, pad=34)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def _annotate(ax: Any, hm: Heatmap, cmap: Any, norm: Any) -> None:
    for i in range(len(hm.rows)):
        for j in range(len(hm.columns)):
            if hm.support[i, j] == 0 or math.isnan(hm.value[i, j]):
                continue
            r, g, b, _ = cmap(norm(hm.value[i, j]))
            ink = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "#222222"
            ax.text(j, i, f"{hm.value[i, j]:.2f}\nn={hm.support[i, j]}", ha="center", va="center", fontsize=8.5,
                    color=ink)


def _label_axes(ax: Any, hm: Heatmap) -> None:
    n_levels = len(next(iter(DIMENSIONS.values())))
    ax.set_yticks(range(len(hm.rows)), hm.rows, fontsize=11)
    ax.set_xticks(range(len(hm.columns)), [lvl.replace("_", " ") for _, lvl in hm.columns], rotation=35,
                  ha="right", fontsize=9)
    for k in range(1, len(DIMENSIONS)):  # white gutters between the dimension groups
        ax.axvline(k * n_levels - 0.5, color="white", linewidth=4)
    if ALL in hm.rows and len(hm.rows) > 1:
        ax.axhline(hm.rows.index(ALL) - 0.5, color="white", linewidth=4)
    top = ax.secondary_xaxis("top")
    top.set_xticks([k * n_levels + (n_levels - 1) / 2 for k in range(len(DIMENSIONS))],
                   [d.replace("_", " ") for d in DIMENSIONS], fontsize=11, fontweight="bold")
    top.tick_params(length=0)
    ax.tick_params(length=0)


# ---- sections ----------------------------------------------------------------------------------------------

def _gap_bars(ev: Evaluation) -> str:
    """The gaps as a table whose bar shows the gap and its interval on one 0..1 scale."""
    view = R.gaps_view(ev, n=None)
    gaps = R.rows_of(ev, "gap").sort_values("value", ascending=False, kind="stable")
    bars = [Raw(_bar(r["value"], r["lo"], r["hi"])) for _, r in gaps.iterrows()]
    rows = [[*row[:2], bar, *row[2:]] for row, bar in zip(view.rows, bars)]
    return table(R.View([*view.header[:2], "", *view.header[2:]], rows, view.align[:2] + "l" + view.align[2:]))


def _bar(value: Any, lo: Any, hi: Any) -> str:
    def pct(x: Any) -> float:
        v = R.num(x)
        return 0.0 if math.isnan(v) else min(max(v, 0.0), 1.0) * 100

    ci = "" if math.isnan(R.num(lo)) or math.isnan(R.num(hi)) else (
        f'<span class="ci" style="left:{pct(lo):.1f}%;width:{max(pct(hi) - pct(lo), 0.5):.1f}%"></span>')
    return f'<div class="bar"><span class="fill" style="width:{pct(value):.1f}%"></span>{ci}</div>'


def _meta(ev: Evaluation) -> str:
    m, data = ev.meta, ev.meta.get("data", {})
    size = f"{ev.counts.get('records', 0)} records, {ev.counts.get('items', 0)} items"
    items = [("Model", m.get("spec")), ("Fingerprint", m.get("fingerprint")), ("Data", data.get("path")),
             ("sha256", data.get("sha256")), ("Size", size),
             ("Time", m.get("time")), ("Settings", _kv(m.get("settings", {}))),
             ("Versions", _kv({"rmgap-pytest": m.get("rmgap_pytest"), "python": m.get("python"),
                               **m.get("versions", {})})),
             *(tuple(line.split(": ", 1)) for line in R.scoring_lines(ev))]
    return '<dl class="meta">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items
                                          if v not in (None, "")) + "</dl>"


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items() if v is not None)


def _section(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{esc(note)}</p>' if note else ""
    return f"<section><h2>{esc(title)}</h2>{note_html}{body}</section>"


def all_checks_view(checks: pd.DataFrame) -> R.View:
    """Failures first, then skips, so the table reads top-down by urgency."""
    c = checks.iloc[np.argsort(checks["status"].map(STATUS_ORDER).fillna(3).to_numpy(), kind="stable")]
    rows = [[str(r["status"]), *R.check_row(r)] for _, r in c.iterrows()]
    return R.View(["Status", *R.CHECK_HEADER], rows, "lllrlrl")


def _failed_section(checks: pd.DataFrame | None) -> list[str]:
    if checks is None:
        return []
    failed = R.failed_checks_view(checks)
    return [_section("Failed checks", table(failed, ["fail"] * len(failed.rows)))]


def _all_checks_section(checks: pd.DataFrame | None) -> list[str]:
    if checks is None:
        return []
    every, c = all_checks_view(checks), R.check_counts(checks)
    summary = f"{c['total']} checks: {c['pass']} passed, {c['fail']} failed, {c['skip']} skipped"
    return [_section("All checks", f"<details><summary>{esc(summary)}</summary>"
                     f"{table(every, [r[0] for r in every.rows], status_col=0)}</details>")]


def _baseline_section(comparison: pd.DataFrame | None) -> list[str]:
    if comparison is None:
        return []
    reg = R.regressions_view(comparison)
    return [_section("Against the baseline", table(R.baseline_avg_view(comparison)) + table(reg),
                     "A regression: the drop exceeds the tolerance and its paired 95% interval lies below zero.")]


def render(ev: Evaluation, checks: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None) -> str:
    """The page reads top-down by urgency: verdict, what failed, then the picture, then every detail."""
    v = R.verdict(checks, comparison)
    kind = "fail" if v.startswith("❌") else "pass" if v.startswith("✅") else "info"
    # The page's colour says pass/fail; a word instead of the emoji renders on machines without emoji fonts.
    v = {"fail": "FAILED: ", "pass": "PASSED: ", "info": ""}[kind] + v.split(" ", 1)[1]
    synthetic = ev.meta.get("data", {}).get("synthetic")
    cells = R.cells_view(ev)
    body = [
        f"<h1>RMGAP report: {esc(ev.meta.get('spec', '?'))}</h1>", f'<p class="verdict {kind}">{esc(v)}</p>',
        f'<div class="warn">⚠️ {esc(R.SYNTHETIC_WARNING)}</div>' if synthetic else "",
        _section("Run", _meta(ev)),
        _section("Domains", table(R.domain_view(ev)), "Value [95% bootstrap interval over records]; "
                 "Groups = prompt groups (users)."),
        *_failed_section(checks), *_baseline_section(comparison),
        _section("BoN heatmap", heatmap_svg(heatmap_grid(ev)), "Best-of-N accuracy per domain and winner's "
                 "profile level; n = prompt groups. Hover a cell for its interval."),
        _section("Preference gaps", _gap_bars(ev), "BoN of the best minus the worst level of a dimension; "
                 "a large gap means some users are served and others not."),
        _section("Prompt blindness", table(R.blindness_view(ev)), "Share of records whose top-scored "
                 "response is the same for all 12 prompts: the model ignored what the user asked."),
        *_all_checks_section(checks),
        _section("All cells", f"<details><summary>{len(cells.rows)} cells</summary>{table(cells)}</details>"
                 if cells.rows else f'<p class="note">{esc(R.NO_PROFILES)}</p>'),
    ]
    title = esc(f"RMGAP report: {ev.meta.get('spec', '?')}")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body><main>{''.join(body)}</main></body></html>\n")
