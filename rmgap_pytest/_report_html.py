"""report.html: one self-contained page rendering ``sections.SECTIONS``.

Self-contained on purpose: the file is uploaded as a CI artifact and opened
offline, so the CSS is inline, the heatmap is inline SVG (``_heatmap_svg``),
and nothing is fetched (no scripts, fonts or CDNs). Every piece of text passes
through ``html.escape``; only ``Html`` blocks, built by this package, go in raw.

Responsive without scripts: tables scroll inside their own box, the heatmap
turns on its side below 760 px, and print styles drop the scroll boxes. Text
colours meet WCAG AA (4.5:1) on their backgrounds; ``TEXT_PAIRS`` lists every
pair the CSS uses and the tests check each one.
"""

from __future__ import annotations

import html as _html
from typing import Any

import pandas as pd

from .evaluation import Evaluation
from .sections import Fold, Html, Para, ReportInput, Section, Table, sections_for, shows
from .verdict import status_of, verdict
from .views import View, num

# Colour tokens; TEXT_PAIRS are the (text, background) pairs the CSS below puts together.
C = {"ink": "#1f2328", "muted": "#59636e", "bg": "#ffffff", "rule": "#d0d7de", "head": "#f6f8fa",
     "fail_bg": "#ffebe9", "fail_edge": "#cf222e", "fail_ink": "#b42318", "pass_bg": "#dafbe1", "pass_edge": "#1a7f37",
     "info_bg": "#ddf4ff", "info_edge": "#0969da", "warn_bg": "#fff8c5", "warn_edge": "#9a6700", "row_fail": "#fff5f5",
     "link": "#0550ae", "bar": "#8250df", "bar_ci": "#3b1d6e", "bar_bg": "#eef1f4"}
TEXT_PAIRS = [("ink", "bg"), ("muted", "bg"), ("ink", "head"), ("ink", "fail_bg"), ("ink", "pass_bg"),
              ("ink", "info_bg"), ("ink", "warn_bg"), ("ink", "row_fail"), ("fail_ink", "row_fail"),
              ("fail_ink", "bg"), ("muted", "row_fail"), ("link", "bg"), ("muted", "head")]

CSS = """
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:%(ink)s;background:%(bg)s;margin:0}
main{max-width:1480px;margin:0 auto;padding:16px 28px 56px}
h1{font-size:22px;margin:0 0 8px;overflow-wrap:anywhere}
h2{font-size:18px;margin:26px 0 6px;border-bottom:1px solid %(rule)s;padding-bottom:4px}
h3{font-size:15px;margin:14px 0 4px}
p{margin:6px 0}p.note{color:%(muted)s;margin:2px 0 8px;font-size:14px}
a{color:%(link)s}
.verdict{font-size:16px;padding:10px 14px;border-radius:6px;margin:8px 0;border:1px solid;border-left-width:6px}
.verdict.fail{background:%(fail_bg)s;border-color:%(fail_edge)s}
.verdict.pass{background:%(pass_bg)s;border-color:%(pass_edge)s}
.verdict.info{background:%(info_bg)s;border-color:%(info_edge)s}
.verdict b{letter-spacing:.02em}
.warn{background:%(warn_bg)s;border:1px solid %(warn_edge)s;padding:6px 12px;border-radius:6px;margin:8px 0}
.scroll{overflow-x:auto;max-width:100%%;-webkit-overflow-scrolling:touch;margin:4px 0 10px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:14px}
th,td{border:1px solid %(rule)s;padding:4px 9px;vertical-align:top;white-space:nowrap}
th{background:%(head)s;text-align:left}
td.r{text-align:right}td.t{white-space:normal;min-width:16em;max-width:34em}
tr.fail td{background:%(row_fail)s}tr.fail td:first-child{border-left:4px solid %(fail_edge)s}
tr.skip td,tr.muted td{color:%(muted)s}
td.status-fail{color:%(fail_ink)s;font-weight:700}
details{margin:4px 0 10px}details>summary{cursor:pointer;font-weight:600;margin:6px 0}
.bar{position:relative;width:220px;height:14px;background:%(bar_bg)s;border-radius:3px}
.bar .fill{position:absolute;left:0;top:2px;height:10px;background:%(bar)s;border-radius:2px}
.bar .ci{position:absolute;top:6px;height:2px;background:%(bar_ci)s}
.hm-wrap{margin:4px 0}svg.defs{position:absolute;width:0;height:0;overflow:hidden}
svg.heatmap{display:block;width:100%%;height:auto}svg.heatmap.wide{max-width:1440px}
svg.heatmap.tall{display:none;max-width:420px}
svg.heatmap text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;fill:%(ink)s}
svg.heatmap a.hm text{fill:inherit}
svg.heatmap a.hm:focus{outline:none}svg.heatmap a.hm:focus-visible rect.bg,svg.heatmap a.hm:hover rect.bg{stroke:%(info_edge)s;stroke-width:3}
.tip{display:none}
.tip:target{display:block;position:fixed;left:8px;right:8px;bottom:8px;max-width:760px;margin:0 auto;z-index:10;
  background:%(bg)s;border:2px solid %(ink)s;border-radius:8px;padding:10px 40px 10px 14px;box-shadow:0 4px 16px #0004}
.tip a.close{position:absolute;right:12px;top:4px;font-size:22px;text-decoration:none;color:%(ink)s}
.legend{display:flex;flex-wrap:wrap;gap:6px 22px;align-items:flex-start;margin:6px 0 4px;font-size:13px}
.legend .scale{width:300px;max-width:100%%}.legend .grad{height:12px;border:1px solid #8c959f}
.legend .ticks{position:relative;height:16px}.legend .ticks span{position:absolute;transform:translateX(-50%%)}
.legend .ticks span:first-child{transform:none}.legend .ticks span:last-child{transform:translateX(-100%%)}
.legend .cap{color:%(muted)s}.legend .key{display:inline-flex;align-items:center;gap:6px}
.legend svg.swatch{width:26px;height:18px;flex:none}
.why-chart{display:flex;flex-wrap:wrap;gap:8px 28px;align-items:flex-start;margin:6px 0}
svg.why-panel{display:block;flex:1 1 340px;max-width:440px;height:auto}
svg.why-panel text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;fill:%(ink)s}
svg.why-panel g.why-row:hover{outline:none}svg.why-panel g.why-row:hover text{font-weight:700}
.why-key{font-size:13px;color:%(muted)s}.why-key svg{width:13px;height:13px;vertical-align:-1px;margin:0 2px 0 8px}
@media (max-width:760px){
  main{padding:10px 12px 40px}h1{font-size:19px}
  svg.heatmap.wide{display:none}svg.heatmap.tall{display:block}
  th,td{padding:3px 6px}table{font-size:13px}
}
@media print{
  main{max-width:none;padding:0}.scroll{overflow:visible}
  svg.heatmap.wide{display:block!important}svg.heatmap.tall{display:none!important}
  details::details-content{content-visibility:visible;display:contents}
  tr,svg.heatmap,.legend{break-inside:avoid}h2{break-after:avoid}
  a{color:inherit;text-decoration:none}.tip{display:none!important}
}
""" % C


def esc(x: Any) -> str:
    return _html.escape(str(x), quote=True)


def _bar(value: Any, lo: Any, hi: Any) -> str:
    def pct(x: Any) -> float:
        v = num(x)
        return 0.0 if v != v else min(max(v, 0.0), 1.0) * 100

    ci = "" if num(lo) != num(lo) or num(hi) != num(hi) else (
        f'<span class="ci" style="left:{pct(lo):.1f}%;width:{max(pct(hi) - pct(lo), 0.5):.1f}%"></span>')
    return (f'<div class="bar" role="img" aria-label="{esc(f"{num(value):.2f}")}"><span class="fill" '
            f'style="width:{pct(value):.1f}%"></span>{ci}</div>')


def table(view: View, classes: list[str] | None = None, bars: list[tuple] | None = None,
          status_col: int | None = None) -> str:
    if not view.rows:
        return '<p class="note">(none)</p>'
    header = list(view.header)
    if bars is not None:
        header.insert(2, "")
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for r, row in enumerate(view.rows):
        tds = [f'<td class="{"t" if j in view.flex else a}{" status-" + esc(c) if j == status_col else ""}">'
               f'{esc(c)}</td>' for j, (c, a) in enumerate(zip(row, view.align))]
        if bars is not None:
            tds.insert(2, f'<td class="l">{_bar(*bars[r])}</td>')
        cls = f' class="{esc(classes[r])}"' if classes and classes[r] else ""
        body.append(f"<tr{cls}>{''.join(tds)}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _table_block(t: Table) -> str:
    n = len(t.view.rows) if t.open is None else min(t.open, len(t.view.rows))
    cut = slice(0, n)
    status_col = 0 if t.view.header and t.view.header[0] == "Status" else None

    def part(s: slice) -> str:
        return table(t.view._replace(rows=t.view.rows[s]), t.classes[s] if t.classes else None,
                     t.bars[s] if t.bars else None, status_col)

    out = f"<h3>{esc(t.caption)}</h3>" if t.caption else ""
    out += part(cut)
    rest = len(t.view.rows) - n
    if rest > 0:
        out += f"<details><summary>{rest} more {esc(t.more)}</summary>{part(slice(n, None))}</details>"
    return out


def _blocks(blocks: list, status: str) -> str:
    out = []
    for b in blocks:
        if not shows(b, "html"):
            continue
        if isinstance(b, Html):
            out.append(b.markup)
        elif isinstance(b, Para):
            if b.kind == "verdict":
                word, _, rest = b.text.partition(": ")
                text = f"<b>{esc(word)}:</b> {esc(rest)}" if rest else esc(b.text)
                out.append(f'<p class="verdict {status}">{text}</p>')
            else:
                cls = {"warn": ' class="warn"', "note": ' class="note"'}.get(b.kind, "")
                out.append(f"<p{cls}>{esc(b.text)}</p>")
        elif isinstance(b, Table):
            out.append(_table_block(b))
        elif isinstance(b, Fold):
            out.append(f"<details><summary>{esc(b.summary)}</summary>{_blocks(b.blocks, status)}</details>")
    return "".join(out)


def section_html(s: Section, status: str) -> str:
    head = f"<h2>{esc(s.title)}</h2>" if s.title else ""
    note = f'<p class="note">{esc(s.note)}</p>' if s.note else ""
    return f'<section id="{esc(s.key)}">{head}{note}{_blocks(s.blocks, status)}</section>'


def render(ev: Evaluation, checks: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None) -> str:
    """The page reads top-down: the verdict, the heatmap, what failed, then every detail."""
    status = status_of(checks, comparison)
    inp = ReportInput(ev, checks, comparison)
    body = "".join(section_html(s, status) for s in sections_for("html", inp))
    title = esc(f"RMGAP report: {ev.meta.get('spec', '?')}")
    # The tab title carries the verdict in words: an emoji may not render on a machine without emoji fonts.
    word = {"fail": "FAILED", "pass": "PASSED", "info": "report"}[status]
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{word}: {title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body><main><h1>{title}</h1>{body}</main></body></html>\n")


__all__ = ["CSS", "C", "TEXT_PAIRS", "render", "table", "verdict"]
