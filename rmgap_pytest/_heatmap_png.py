"""heatmap.png: the heatmap drawn with Pillow, 1600 x 640 px.

Pillow rather than matplotlib: at release size matplotlib's import and its text layout
cost about 0.9 s of CPU of a 3.3 s ``rmgap eval --rm-model builtin:length`` (issue 11);
this drawing costs well under 0.2 s (``benchmarks/bench_pipeline.py``, docs/performance.md).
The grid, statuses and colours come from ``heatmap``, as the page's SVG does, so the
two always agree. The font is the one Pillow ships (``ImageFont.load_default``), so
the picture looks the same on every machine; bold is drawn with a stroke of the text's
own colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .data import DIMENSIONS
from .metrics import ALL
from .views import CHANCE_BON, NO_PROFILES

WIDTH, HEIGHT = 1600, 640
GRID = (120, 96, 1496, 480)  # left, top, right, bottom of the cells, px
BAR = (1512, 96, 1531, 480)  # the colour bar
GUTTER = 6  # white lines between dimension groups and below All, px
N_LEVELS = len(next(iter(DIMENSIONS.values())))


@dataclass(frozen=True)
class Layout:
    """Where the cells lie: column j is centred at x = j, row i at y = i (cells span +-0.5)."""

    left: float
    top: float
    cell_w: float
    cell_h: float

    def pixel(self, x: float, y: float) -> tuple[float, float]:
        """(column, row) in the picture of the point (x, y) in cell units; y grows downwards."""
        return self.left + (x + 0.5) * self.cell_w, self.top + (y + 0.5) * self.cell_h

    def box(self, i: int, j: int, inset: float = 0.0) -> tuple[float, float, float, float]:
        x0, y0 = self.pixel(j - 0.5 + inset, i - 0.5 + inset)
        x1, y1 = self.pixel(j + 0.5 - inset, i + 0.5 - inset)
        return x0, y0, x1, y1


@lru_cache(maxsize=None)
def font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size)


def text(draw: Any, xy: tuple[float, float], s: str, size: int, fill: str = "#000000", anchor: str = "mm",
         bold: bool = False, align: str = "center") -> None:
    draw.text(xy, s, fill=fill, font=font(size), anchor=anchor, align=align, spacing=2,
              stroke_width=0.5 if bold else 0, stroke_fill=fill)


def rotated(img: Any, xy: tuple[float, float], s: str, size: int, degrees: float, anchor: str = "rt") -> None:
    """``s`` in black, rotated counter-clockwise; ``xy`` is its bounding box's top right corner
    (``anchor="rt"``, a slanted axis label) or its centre (``"mm"``)."""
    from PIL import Image, ImageDraw

    f = font(size)
    _, _, w, h = f.getbbox(s)
    label = Image.new("L", (w + 2, h + 2), 0)
    ImageDraw.Draw(label).text((1, 1), s, fill=255, font=f)
    label = label.rotate(degrees, resample=Image.BICUBIC, expand=True)
    x, y = xy
    corner = (x - label.width, y) if anchor == "rt" else (x - label.width / 2, y - label.height / 2)
    img.paste("#000000", (round(corner[0]), round(corner[1])), label)


def hatch(draw: Any, box: tuple[float, float, float, float], fill: str, line: str, step: int = 7) -> None:
    """A box filled with ``fill`` and crossed by 45-degree lines: the mark of an untested cell."""
    x0, y0, x1, y1 = (round(v) for v in box)
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    h = y1 - y0
    for k in range(-h, x1 - x0, step):  # lines x - x0 = k + (y1 - y), clipped to the box
        a = (x0 + max(k, 0), y1 - 1 - max(-k, 0))
        b = (x0 + min(k + h, x1 - x0) - 1, y1 - 1 - (min(k + h, x1 - x0) - k) + 1)
        draw.line((a, b), fill=line, width=2)


def draw(hm: Any, title: str) -> tuple[Any, Layout]:
    """The picture (a PIL RGB image) and where its cells lie."""
    from PIL import Image, ImageDraw

    from . import heatmap as H

    img = Image.new("RGB", (WIDTH, HEIGHT), "#ffffff")
    d = ImageDraw.Draw(img)
    text(d, (WIDTH / 2, 30), title, 18)
    left, top, right, bottom = GRID
    n_rows, n_cols = len(hm.rows), len(hm.columns)
    if not n_rows:
        text(d, (WIDTH / 2, HEIGHT / 2), f"No heatmap: {NO_PROFILES}", 19)
        return img, Layout(left, top, 0.0, 0.0)
    grid = Layout(left, top, (right - left) / n_cols, (bottom - top) / n_rows)
    for i in range(n_rows):
        for j in range(n_cols):
            status, (fill, ink) = hm.status[i, j], H.cell_colours(hm, i, j)
            if status == "muted":
                hatch(d, grid.box(i, j), H.MUTED_FILL, H.MUTED_HATCH)
            else:
                d.rectangle(grid.box(i, j), fill=fill)
            if status != "empty":
                text(d, grid.pixel(j, i), f"{hm.value[i, j]:.2f}\nn={hm.support[i, j]}", 12, ink,
                     bold=status == "fail")
    for k in range(1, len(DIMENSIONS)):  # white gutters between the dimension groups
        x = grid.pixel(k * N_LEVELS - 0.5, 0)[0]
        d.rectangle((x - GUTTER / 2, top, x + GUTTER / 2 - 1, bottom), fill="#ffffff")
    if n_rows > 1 and hm.rows[0] == ALL:  # All set apart from the domains
        y = grid.pixel(0, 0.5)[1]
        d.rectangle((left, y - GUTTER / 2, right, y + GUTTER / 2 - 1), fill="#ffffff")
    for i, j in zip(*(hm.status == "fail").nonzero()):  # above the gutters: a failing edge cell keeps its outline
        d.rectangle(grid.box(i, j), outline=H.OUTLINE, width=5)
        d.rectangle(grid.box(i, j, 0.09), outline=H.LIGHT_INK, width=2)
    d.rectangle((left - 1, top - 1, right, bottom), outline="#000000", width=1)
    _labels(img, d, hm, grid)
    _bar(img, d)
    _legend(d, hm)
    return img, grid


def _labels(img: Any, d: Any, hm: Any, grid: Layout) -> None:
    left, top, right, bottom = GRID
    for i, name in enumerate(hm.rows):
        text(d, (left - 8, grid.pixel(0, i)[1]), name, 15, anchor="rm")
    for k, dim in enumerate(DIMENSIONS):
        text(d, (grid.pixel(k * N_LEVELS + (N_LEVELS - 1) / 2, 0)[0], top - 16), dim.replace("_", " "), 15,
             bold=True)
    for j, (_, lvl) in enumerate(hm.columns):
        rotated(img, (grid.pixel(j, 0)[0] + 6, bottom + 6), lvl.replace("_", " "), 13, 35)


def _bar(img: Any, d: Any) -> None:
    """Colour bar, linear in BoN from 0 (bottom) to 1 (top), with chance marked."""
    from . import heatmap as H

    x0, y0, x1, y1 = BAR
    for y in range(y0, y1 + 1):
        d.line(((x0, y), (x1, y)), fill=H.colour((y1 - y) / (y1 - y0)))
    d.rectangle(BAR, outline="#000000", width=1)
    for v in (0.0, CHANCE_BON, 0.5, 0.75, 1.0):
        y = y1 - v * (y1 - y0)
        d.line(((x1, y), (x1 + 4, y)), fill="#000000")
        text(d, (x1 + 7, y), f"{v:.2f}", 13, anchor="lm")
    rotated(img, (x1 + 52, (y0 + y1) / 2), "BoN (0.25 = chance)", 13, 90, anchor="mm")


def _legend(d: Any, hm: Any) -> None:
    from . import heatmap as H

    y = 590
    hatch(d, (130, y - 7, 158, y + 7), H.MUTED_FILL, H.MUTED_HATCH, step=5)
    d.rectangle((130, y - 7, 158, y + 7), outline=H.MUTED_HATCH, width=1)
    text(d, (168, y), f"fewer than {hm.min_support} groups: not gated", 14, anchor="lm")
    d.rectangle((418, y - 7, 446, y + 7), outline=H.OUTLINE, width=3)
    text(d, (456, y), "outlined: a check failed", 14, anchor="lm")


def write(hm: Any, path: str | Path, title: str) -> Path:
    img, _ = draw(hm, title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, format="PNG", compress_level=3)  # flat colours: level 3 is within a few % of 9's size
    return out
