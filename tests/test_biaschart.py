"""The "why" chart's data function, its two drawings, and the report sections that show it."""

from __future__ import annotations

import re
import struct

import numpy as np
import pandas as pd
import pytest

from rmgap_pytest import report
from rmgap_pytest._biaschart_svg import chart_html, panel_svg
from rmgap_pytest.bias import bias_table, response_levels
from rmgap_pytest.biaschart import BAR, INK, MUTED, chart_rows, nice_axis, why_chart, why_png
from rmgap_pytest.data import DIMENSIONS, item_table, load_benchmark, response_keys
from rmgap_pytest.evaluation import evaluate, evaluation_from_scores
from rmgap_pytest.heatmap import contrast_ratio
from rmgap_pytest.metrics import outcome_table
from rmgap_pytest.scorers import load_scorer
from rmgap_pytest.synth import planted_scores


@pytest.fixture(scope="module")
def sample():
    return load_benchmark()


@pytest.fixture(scope="module")
def table(sample):
    s = planted_scores(sample, bias={"Conciseness": 0.5, "Formality": -0.3}, follow=1.0, noise=1.0, seed=2)
    return bias_table(outcome_table(item_table(sample), s, response_keys(sample)), response_levels(sample),
                      n_boot=200)


@pytest.fixture(scope="module")
def length(sample):
    return evaluate(sample, "builtin:length", cache=False, n_boot=200)


def test_chart_rows_are_the_table_rows(table):
    chart = why_chart(table)
    assert [p.key for p in chart.panels] == ["bias", "sensitivity", "levels"]
    bias, sens, levels = chart.panels
    assert [r.label for r in bias.rows] == [d.replace("_", " ") for d in DIMENSIONS]
    assert [r.label for r in sens.rows] == ["All users", "Chat", "Writing", "Reasoning", "Safety"]
    assert len(levels.rows) == 25 and [r.header for r in levels.rows if r.header] == \
        [d.replace("_", " ") for d in DIMENSIONS]
    conc = table[(table["kind"] == "bias") & (table["domain"] == "All") & (table["dimension"] == "Conciseness")].iloc[0]
    row = bias.rows[1]
    assert (row.value, row.lo, row.hi) == (conc.value, conc.lo, conc.hi) and row.ends == ("terse", "verbose")
    assert row.excludes_zero and row.text() == f"{conc.value:+.2f} [{conc.lo:+.2f}, {conc.hi:+.2f}]"
    for p in chart.panels:
        lo, hi, step = p.axis
        assert lo <= 0 <= hi and all(lo <= r.lo and r.hi <= hi for r in p.rows)
        assert abs((hi - lo) / step - round((hi - lo) / step)) < 1e-9
    assert len(chart_rows(chart)) == 35


def test_rows_without_an_estimate_are_left_out_and_nothing_is_an_empty_chart(table):
    t = table.copy()
    t.loc[(t["kind"] == "bias") & (t["dimension"] == "Formality"), ["value", "lo", "hi"]] = np.nan
    assert [r.label for r in why_chart(t).panels[0].rows][0] == "Conciseness"
    only_sens = t[t["kind"] == "sensitivity"]
    assert [p.key for p in why_chart(only_sens[only_sens["level"].isna()]).panels] == ["sensitivity"]
    assert why_chart(pd.DataFrame()).empty and "No chart" in chart_html(why_chart(pd.DataFrame()))


@pytest.mark.parametrize("lo,hi", [(0.0, 0.0), (-0.12, 0.64), (0.3, 1.7), (-3.1, -0.2)])
def test_nice_axis_holds_zero_and_the_data(lo, hi):
    a, b, step = nice_axis(lo, hi)
    assert a <= min(lo, 0) and b >= max(hi, 0) and 2 <= round((b - a) / step) <= 8


def test_svg_marks_say_the_same_as_the_data_without_colour(table):
    chart = why_chart(table)
    page = chart_html(chart)
    assert page.count('<svg class="why-panel"') == 3 and page.count("<title>") == 35
    filled = sum(r.excludes_zero for p in chart.panels for r in p.rows)
    assert len(re.findall(rf'<circle [^>]*fill="{INK}" stroke', page)) == filled  # filled: interval excludes 0
    assert len(re.findall(r'<circle [^>]*r="5.5" fill="#ffffff" stroke', page)) == 35 - filled  # hollow: includes 0
    assert "filled: the 95% interval excludes 0" in page and "hollow: it includes 0" in page
    svg = panel_svg(chart.panels[0])
    assert "← terse" in svg and "verbose →" in svg and "dashed line: 0, no effect" in svg
    for colour in (INK, MUTED, BAR):
        assert contrast_ratio(colour, "#ffffff") >= 4.5


def test_png_is_written(table, tmp_path):
    path = why_png(table, tmp_path / "why.png", "planted")
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", head[16:24])
    assert w == 1400 and h > 600
    assert why_png(pd.DataFrame(), tmp_path / "none.png").stat().st_size > 0


def test_report_sections_show_the_why(length):
    md = report.markdown(length)
    assert "### Why: style bias and preference sensitivity" in md
    assert "Rewards verbosity regardless of the user: +0.60 SD per Conciseness level towards verbose" in md
    assert "<details><summary>25 more per-level sensitivities</summary>" in md
    page = report.html(length)
    assert '<section id="why">' in page and page.count('<svg class="why-panel"') == 3
    assert page.index('id="heatmap"') < page.index('id="why"') < page.index('id="domains"')  # a picture first


@pytest.mark.parametrize("width", [40, 80, 100, 160])
def test_terminal_names_the_strongest_bias_within_width_and_budget(length, width):
    text = report.terminal_summary(length, width=width)
    lines = text.splitlines()
    assert all(len(line) <= max(width, 40) for line in lines)
    if width >= 80:  # pytest's fallback width and up; at 40 columns the verdict alone wraps past the budget
        assert len(lines) <= report.TERMINAL_LINES
    why = " ".join(lines[[i for i, ln in enumerate(lines) if ln.startswith("Why:")][0]:]).split("Domains")[0]
    assert "rewards verbosity whoever asks (+0.60 SD per Conciseness level" in " ".join(why.split())
    assert "Why: style bias" not in text  # the page's section is not repeated in the terminal


def test_terminal_why_line_for_a_model_without_findings(sample):
    ev = evaluation_from_scores(sample, planted_scores(sample, noise=1.0, seed=9), load_scorer("builtin:random"),
                                n_boot=200)
    text = " ".join(report.terminal_summary(ev).split())
    assert "Why: no style bias stands out" in text and "does not measurably follow the user" in text
