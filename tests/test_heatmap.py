"""The heatmap tells the truth: muted small cells, outlined failures, All on top, AA contrast, PNG = SVG."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from rmgap_pytest import heatmap as H
from rmgap_pytest._heatmap_svg import heatmap_html, tall_svg, wide_svg
from rmgap_pytest._report_html import C, CSS, TEXT_PAIRS
from rmgap_pytest.evaluation import evaluate
from rmgap_pytest.gate import CHECK_COLUMNS
from rmgap_pytest.report import html
from rmgap_pytest.synth import write_synthetic
from rmgap_pytest.views import cell_anchor


@pytest.fixture(scope="module")
def ev(tmp_path_factory):
    """60 records: All cells reach min_support 10, most per-domain cells do not."""
    path = write_synthetic(tmp_path_factory.mktemp("d") / "s.jsonl", 60, seed=2)
    return evaluate(path, "builtin:length", cache=False, n_boot=200, min_support=10)


@pytest.fixture(scope="module")
def checks(ev) -> pd.DataFrame:
    """Cell checks as the gate makes them: a BoN floor of 0.25, skipped below min_support."""
    t = ev.table
    cells = t[(t.kind == "cell") & (t.metric == "BoN")]
    rows = []
    for r in cells.itertuples():
        small = r.support < 10
        rows.append(dict(id=f"cell[{r.domain}/{r.dimension}={r.level}]", kind="cell", domain=r.domain,
                         dimension=r.dimension, level=r.level, metric=None if small else "BoN", value=r.value, lo=r.lo,
                         hi=r.hi, threshold=None if small else 0.25, direction=None if small else "min",
                         support=r.support, status="skip" if small else ("fail" if r.value < 0.25 else "pass"),
                         reason="below the floor" if r.value < 0.25 else ""))
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


@pytest.fixture(scope="module")
def hm(ev, checks):
    return H.heatmap_grid(ev, checks)


def test_statuses_follow_support_and_the_checks(hm, checks) -> None:
    assert hm.rows[0] == "All" and hm.rows[1:] == ["Chat", "Writing", "Reasoning", "Safety"]
    assert ((hm.status == "muted") == ((hm.support > 0) & (hm.support < 10))).all()
    failed = {(r.domain, r.dimension, r.level) for r in checks[checks.status == "fail"].itertuples()}
    assert failed, "the fixture must fail some cells"
    got = {(hm.rows[i], *hm.columns[j]) for i, j in zip(*np.nonzero(hm.status == "fail"))}
    assert got == failed
    assert (hm.status == "muted").any() and (hm.status == "ok").any()


# ---- colour and contrast (WCAG 2.x) -------------------------------------------------------------------------

def test_contrast_ratio_matches_the_wcag_formula() -> None:
    assert H.contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert H.contrast_ratio("#777777", "#777777") == pytest.approx(1.0)
    assert H.contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the known AA grey


def test_cell_text_meets_aa_on_every_colour_of_the_scale() -> None:
    ratios = [H.contrast_ratio(H.colour(v), H.ink(H.colour(v))) for v in np.linspace(0, 1, 1001)]
    assert min(ratios) >= 4.5


def test_muted_text_meets_aa_on_the_fill_and_on_the_hatch() -> None:
    assert H.contrast_ratio(H.MUTED_INK, H.MUTED_FILL) >= 4.5
    assert H.contrast_ratio(H.MUTED_INK, H.MUTED_HATCH) >= 4.5
    assert H.contrast_ratio(H.MUTED_INK, H.EMPTY_FILL) >= 4.5


def test_muted_cells_carry_no_strong_colour() -> None:
    r, g, b = H.rgb(H.MUTED_FILL)
    assert max(r, g, b) - min(r, g, b) <= 8  # a grey, not a hue
    r, g, b = H.rgb(H.MUTED_HATCH)
    assert max(r, g, b) - min(r, g, b) <= 8


def test_failing_outline_shows_on_every_fill() -> None:
    """Non-text contrast (AA: 3:1): the black outer or the white inner line stands out on any fill."""
    for v in np.linspace(0, 1, 201):
        fill = H.colour(v)
        assert max(H.contrast_ratio(H.OUTLINE, fill), H.contrast_ratio(H.LIGHT_INK, fill)) >= 3


@pytest.mark.parametrize("fg,bg", TEXT_PAIRS)
def test_page_text_colours_meet_aa(fg, bg) -> None:
    assert H.contrast_ratio(C[fg], C[bg]) >= 4.5, (fg, bg)


def test_every_css_colour_is_a_checked_token() -> None:
    used = set(re.findall(r"#[0-9a-fA-F]{6}\b", CSS))
    assert used <= set(C.values()) | {"#8c959f"}  # the legend's grey border (a rule, not text)


# ---- the page's SVG -----------------------------------------------------------------------------------------

def _cells(svg: str) -> dict[str, str]:
    return dict(re.findall(r'<a href="#[^"]+" class="hm \w+" data-cell="([^"]+)">(.*?)</a>', svg))


def test_svg_mutes_small_cells_and_outlines_failures(hm) -> None:
    for svg in (wide_svg(hm), tall_svg(hm)):
        cells = _cells(svg)
        assert len(cells) == len(hm.rows) * len(hm.columns)
        for i, j in np.ndindex(hm.status.shape):
            markup, status = cells[hm.name(i, j)], hm.status[i, j]
            assert ('class="outline"' in markup) == (status == "fail")
            if status == "muted":
                assert 'fill="url(#rmgap-hatch)"' in markup and f'fill="{H.MUTED_INK}"' in markup
                assert "Not gated: fewer than 10 prompt groups" in markup
            if status in ("ok", "fail"):
                assert f'fill="{H.colour(hm.value[i, j])}"' in markup
                assert f"{hm.value[i, j]:.2f}" in markup and f"n={hm.support[i, j]}" in markup
            if status == "fail":
                assert 'font-weight="700"' in markup and "FAILED: BoN " in markup


def test_each_cell_is_a_tap_target_for_its_interval(ev, checks, hm) -> None:
    """Touch screens have no hover: a tap goes to the cell's note, which CSS :target shows, fixed in view."""
    page = html(ev, checks)
    targets = set(re.findall(r'<a href="#(cell-[^"]+)" class="hm (?!empty)', page))
    tips = dict(re.findall(r'<p class="tip" id="(cell-[^"]+)">(.*?)</p>', page))
    assert targets and targets == set(tips) and len(tips) == int((hm.status != "empty").sum())
    t = ev.table
    r = t[(t.kind == "cell") & (t.metric == "BoN")].iloc[3]
    note = tips[cell_anchor(r.domain, r.dimension, r.level)]
    assert f"BoN {r.value:.3f} [{r.lo:.2f}, {r.hi:.2f}], {r.support} groups" in note
    assert ".tip{display:none}" in page and ".tip:target{display:block;position:fixed" in page
    assert '<a class="close" href="#_"' in note


def test_heatmap_html_without_profiles() -> None:
    empty = H.Heatmap([], [], np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0), int),
                      np.zeros((0, 0), str), 10)
    assert "No heatmap" in heatmap_html(empty)


# ---- heatmap.png: the same grid, the same colours, the same cues ---------------------------------------------

def test_png_pixels_match_the_grid(hm, tmp_path) -> None:
    H.write_png(hm, tmp_path / "h.png", "t")
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "h.png").convert("RGB")).astype(int)  # the saved file's pixels
    _, grid = H.draw_png(hm, "t")

    def pixel(x: float, y: float) -> np.ndarray:
        px, py = grid.pixel(x, y)
        return img[int(py), int(px)]

    left_px = grid.pixel(-0.5, 0)[0]
    right_px = grid.pixel(0.5, 0)[0]
    edge = 2.0 / (right_px - left_px)  # two pixels: inside the outline band, in data units
    for i, j in np.ndindex(hm.status.shape):
        status = hm.status[i, j]
        corner = pixel(j - 0.33, i - 0.33)  # away from the text in the middle
        if status in ("ok", "fail"):
            assert np.abs(corner - H.rgb(H.colour(hm.value[i, j]))).max() <= 3, (hm.name(i, j), corner)
        elif status == "muted":
            hatched = [np.abs(pixel(j - 0.33 + k * 0.02, i - 0.33) - H.rgb(H.MUTED_FILL)).max() <= 3 or
                       np.abs(pixel(j - 0.33 + k * 0.02, i - 0.33) - H.rgb(H.MUTED_HATCH)).max() <= 40
                       for k in range(10)]
            assert all(hatched), hm.name(i, j)
        if status == "fail":
            assert pixel(j - 0.5 + edge, i).max() <= 40, hm.name(i, j)  # the black outline
        elif status == "ok":  # no outline: the fill reaches the edge (past the 2.8 px white gutters)
            assert np.abs(pixel(j - 0.5 + 2 * edge, i) - H.rgb(H.colour(hm.value[i, j]))).max() <= 3


def test_the_hatch_is_defined_once_outside_the_drawings_a_phone_hides(ev, checks) -> None:
    """A pattern inside a display:none SVG paints nothing: the phone's tall drawing lost its hatching."""
    page = html(ev, checks)
    assert page.count('id="rmgap-hatch"') == 1
    defs = page.index('<svg class="defs"')
    assert defs < page.index('<svg class="heatmap wide"') and page.index('id="rmgap-hatch"') < page.index(
        '<svg class="heatmap wide"')
    assert "svg.defs{position:absolute;width:0;height:0" in page  # rendered, just takes no room


def test_png_needs_no_matplotlib(tmp_path) -> None:
    """heatmap.png is drawn with Pillow: matplotlib's import alone cost 0.3-0.6 s of CPU a run (issue 11)."""
    import subprocess
    import sys

    code = ("import sys; from rmgap_pytest.evaluation import evaluate; from rmgap_pytest.heatmap import heatmap_png; "
            f"p = heatmap_png(evaluate(None, 'builtin:length', cache=False, n_boot=20), {str(tmp_path / 'h.png')!r}); "
            "print(p.stat().st_size > 10000, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["True", "False"], out.stderr[-2000:]
