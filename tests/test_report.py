"""The report renders real evaluations (synthetic data, builtin scorers; no model) correctly and safely."""

from __future__ import annotations

import copy
import html
import json
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rmgap_pytest import report
from rmgap_pytest.data import load_benchmark
from rmgap_pytest.evaluation import evaluate, evaluation_from_scores, score_benchmark
from rmgap_pytest.metrics import compare
from rmgap_pytest.scorers import load_scorer
from rmgap_pytest.synth import write_synthetic
from rmgap_pytest.verdict import failure_groups

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_BOOT = 200


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("data") / "synth.jsonl", 40, seed=1)


@pytest.fixture(scope="module")
def ev(data_path: Path):
    return evaluate(data_path, "builtin:length", cache=False, n_boot=N_BOOT)


@pytest.fixture(scope="module")
def comparison(data_path: Path, ev) -> pd.DataFrame:
    """length (baseline) vs random (current): random drops Consistency from 1 to ~0, a real regression."""
    rand = evaluate(data_path, "builtin:random", cache=False, n_boot=N_BOOT)
    return compare(ev.outcomes, rand.outcomes, n_boot=N_BOOT)


def make_checks(ev, threshold: float = 0.2) -> pd.DataFrame:
    """Gate verdicts in the gate's shape: a BoN floor per cell, plus one skip with no value."""
    cells = report.rows_of(ev, "cell", "BoN")
    rows = [dict(id=f"cell[{r.domain}/{r.dimension}={r.level}]", kind="cell", domain=r.domain,
                 dimension=r.dimension, level=r.level, metric="BoN", value=r.value, lo=r.lo, hi=r.hi,
                 threshold=threshold, direction="min", support=r.support,
                 status="fail" if r.value < threshold else "pass",
                 reason=f"BoN {r.value:.3f} < {threshold}" if r.value < threshold else "")
            for r in cells.itertuples()]
    rows.append(dict(id="blindness[All]", kind="blindness", domain="All", dimension=None, level=None,
                     metric="Prompt blindness", value=np.nan, lo=np.nan, hi=np.nan, threshold=0.5,
                     direction="max", support=0, status="skip", reason="not enough records"))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def checks(ev) -> pd.DataFrame:
    return make_checks(ev)


def _bon(ev, domain: str) -> pd.Series:
    t = ev.table
    return t[(t.kind == "domain") & (t.domain == domain) & (t.metric == "BoN")].iloc[0]


def _rewrite(src: Path, dst: Path, keep=lambda rec: True, edit=lambda rec: rec) -> Path:
    lines = [json.loads(x) for x in src.read_text().splitlines() if x.strip()]
    dst.write_text("".join(json.dumps(edit(r)) + "\n" for r in lines if keep(r)))
    return dst


# ---- terminal ---------------------------------------------------------------------------------------------

def test_terminal_shows_domain_table_with_intervals(ev) -> None:
    text = report.terminal_summary(ev)
    for dom in ["Chat", "Writing", "Reasoning", "Safety", "Avg"]:
        row = _bon(ev, dom)
        line = next(x for x in text.splitlines() if x.strip().startswith(dom + " "))
        assert f"{row.value:.3f} [{row.lo:.2f}, {row.hi:.2f}]" in line
    assert "builtin:length" in text.splitlines()[0] and "40 records, 480 items" in text.splitlines()[0]
    assert "WARNING: synthetic data" in text
    assert "Gate:" not in text and "baseline" not in text  # nothing claimed that was not run


def test_terminal_lists_worst_cells_gaps_blindness_and_counts(ev) -> None:
    text = report.terminal_summary(ev)
    worst = report.worst_cells(ev).iloc[0]
    assert f"{worst.domain}/{worst.dimension}={worst.level}" in text
    top_gap = report.rows_of(ev, "gap").sort_values("value", ascending=False).iloc[0]
    assert f"{top_gap.domain}/{top_gap.dimension}" in text and top_gap.level in text
    assert "Prompt blindness" in text
    # The fixture runs with the cache off: the line must not speak of cache hits (issue 12.3).
    assert f"{ev.counts['scored']} pairs computed" in text and "score cache off" in text
    assert "cache hits" not in text and "served from the score cache" not in text
    assert "Invalid items: 0" in text and "truncated pairs: 0" in text


def test_terminal_gate_and_baseline_sections(ev, checks, comparison) -> None:
    files = {"metrics": Path("out/metrics.json"), "html": Path("out/report.html")}
    text = report.terminal_summary(ev, checks, comparison, files=files)
    c = checks.status.value_counts()
    assert f"Gate: {c['pass']} passed, {c['fail']} failed, 1 skipped" in text
    # Failures are grouped by kind and the most severe of each group are named (the FAILURES entries hold all).
    for group in failure_groups(checks):
        worst = group.rows.drop_duplicates("id").id.tolist()
        assert worst and all(i in text for i in worst[:3])
    n_reg = int(comparison.regressed.sum())
    assert n_reg and "Against the baseline" in text and f"Regressed metrics: {n_reg}" in text
    assert "out/report.html" in text
    assert max(len(x) for x in text.splitlines()) <= 100


def test_terminal_fits_a_narrow_width(ev, checks, comparison) -> None:
    text = report.terminal_summary(ev, checks, comparison, width=80)
    assert max(len(x) for x in text.splitlines()) <= 80


def test_terminal_says_no_regressions(ev) -> None:
    same = compare(ev.outcomes, ev.outcomes, n_boot=N_BOOT)
    text = report.terminal_summary(ev, comparison=same)
    assert "Against the baseline" in text and "No regressions." in text


def test_nan_intervals_print_na(ev) -> None:
    ev2 = copy.copy(ev)
    ev2.table = ev.table.copy()
    chat = (ev2.table.kind == "domain") & (ev2.table.domain == "Chat")
    ev2.table.loc[chat, ["lo", "hi"]] = np.nan
    ev2.table.loc[chat & (ev2.table.metric == "Pair"), "value"] = np.nan
    line = next(x for x in report.terminal_summary(ev2).splitlines() if x.strip().startswith("Chat "))
    assert "n/a [n/a]" in line and line.count("[n/a]") == 3
    assert "n/a [n/a]" in report.markdown(ev2)
    assert "n/a [n/a]" in report.html(ev2)


# ---- Markdown ---------------------------------------------------------------------------------------------

def test_markdown_verdict_tables_and_details(ev, checks, comparison) -> None:
    md = report.markdown(ev, checks, comparison)
    n_fail = int((checks.status == "fail").sum())
    assert md.splitlines()[0] == f"## ❌ {n_fail} of {len(checks)} gate checks failed (1 skipped)"
    assert "| Domain | Pair | BoN | Consistency | Groups |" in md
    assert "| :--- | ---: | ---: | ---: | ---: |" in md
    row = _bon(ev, "Avg")
    assert f"{row.value:.3f} [{row.lo:.2f}, {row.hi:.2f}]" in md
    assert all(i in md for i in checks[checks.status == "fail"].id)
    assert f"**Regressed metrics: {int(comparison.regressed.sum())}**" in md and "Consistency" in md
    n_cells = len(report.rows_of(ev, "cell", "BoN"))
    assert f"<details><summary>All {n_cells} cells</summary>" in md and "</details>" in md


def test_markdown_verdict_when_passing_or_report_only(ev) -> None:
    assert report.markdown(ev, make_checks(ev, threshold=0.0)).startswith("## ✅ all ")
    assert report.markdown(ev).startswith("## ℹ️ report only")


def test_markdown_escapes_pipes_in_cells(ev, checks) -> None:
    bad = checks.copy()
    bad.loc[bad.status == "fail", "reason"] = "a | b"
    assert "a \\| b" in report.markdown(ev, bad)


# ---- HTML -------------------------------------------------------------------------------------------------

def test_html_is_self_contained(ev, checks, comparison) -> None:
    page = report.html(ev, checks, comparison)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert "<svg" in page and "<style>" in page


def test_html_contains_all_sections(ev, checks, comparison) -> None:
    page = report.html(ev, checks, comparison)
    for title in ["Domains: value [95% interval]", "Who the model serves",
                  "Largest preference gaps (BoN of the best minus the worst level)",
                  "Prompt blindness (one response tops all 12 prompts of a record)",
                  f"Failed checks ({report.check_counts(checks)['fail']} of {len(checks)}), worst first", "All checks",
                  "Against the baseline", "All cells"]:
        assert f"<h2>{html.escape(title)}</h2>" in page
    row = _bon(ev, "Writing")
    assert f"{row.value:.3f} [{row.lo:.2f}, {row.hi:.2f}]" in page
    assert all(i in page for i in checks.id)
    # one linked cell per (row, column) in each drawing: wide for screens, tall (transposed) for phones
    assert page.count('<a href="#cell-') == 2 * 5 * 25


def test_html_escapes_every_text(ev, checks) -> None:
    ev2 = copy.copy(ev)
    ev2.meta = {**ev.meta, "spec": "python:evil:<img onerror=x>", "notes": ["<b>note</b>"]}
    bad = checks.copy()
    bad.loc[bad.status == "fail", "reason"] = "<script>alert(1)</script>"
    page = report.html(ev2, bad)
    assert "<img onerror" not in page and "&lt;img onerror=x&gt;" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>note</b>" not in page


# ---- heatmap ----------------------------------------------------------------------------------------------

def test_heatmap_grid_matches_the_table(ev) -> None:
    from rmgap_pytest.heatmap import heatmap_grid

    hm = heatmap_grid(ev)
    assert hm.rows == ["All", "Chat", "Writing", "Reasoning", "Safety"]  # All on top (issue 14)
    assert len(hm.columns) == 25 and hm.columns[0] == ("Formality", "casual")
    cell = report.rows_of(ev, "cell", "BoN").iloc[7]
    i, j = hm.rows.index(cell.domain), hm.columns.index((cell.dimension, cell.level))
    assert hm.value[i, j] == pytest.approx(cell.value) and hm.support[i, j] == cell.support


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC
    return struct.unpack(">II", head[16:24])


def test_heatmap_png_is_a_png_of_the_right_size(ev, tmp_path: Path) -> None:
    path = report.heatmap_png(ev, tmp_path / "sub" / "heatmap.png")
    w, h = _png_size(path)
    assert 1400 <= w <= 1800 and 500 <= h <= 700


def test_write_report_files(ev, checks, comparison, tmp_path: Path) -> None:
    paths = report.write_report_files(ev, tmp_path / "out", checks, comparison)
    assert set(paths) == {"markdown", "html", "heatmap", "why"}  # why.png: issue 13's chart
    assert [p.name for p in paths.values()] == ["report.md", "report.html", "heatmap.png", "why.png"]
    assert paths["markdown"].read_text(encoding="utf-8").startswith("## ❌")
    assert "<svg" in paths["html"].read_text(encoding="utf-8")
    _png_size(paths["heatmap"])
    _png_size(paths["why"])


# ---- worst records ----------------------------------------------------------------------------------------

def test_worst_records_in_a_cell(ev) -> None:
    mask = ((ev.outcomes.domain == "Chat") & (ev.outcomes.Conciseness == "terse")).to_numpy()
    recs = report.worst_records(ev, mask, n=3)
    out = ev.outcomes[mask & ~ev.outcomes.bon.to_numpy()]
    expected = out.groupby("record_id")["margin"].max().sort_values(ascending=False)
    assert [r["record_id"] for r in recs] == expected.index[:3].tolist()
    assert [r["margin"] for r in recs] == pytest.approx(expected.iloc[:3].tolist())
    for r in recs:
        assert r["domain"] == "Chat" and r["margin"] > 0 and r["top"] != r["winner"]
        assert "model preferred" in report.describe_record(r)


def test_worst_records_edge_cases(ev) -> None:
    assert report.worst_records(ev, np.zeros(len(ev.outcomes), bool)) == []
    assert len(report.worst_records(ev, n=5)) == 5
    with pytest.raises(ValueError, match="one boolean per outcome row"):
        report.worst_records(ev, np.ones(3, bool))


# ---- partial data: invalid scores, some domains, no profiles ----------------------------------------------

def test_invalid_items_are_counted_and_shown_first(data_path: Path) -> None:
    bench = load_benchmark(data_path)
    scorer = load_scorer("builtin:length", cache=False)
    scores = score_benchmark(bench, scorer)
    scores[[5, 100], 1] = np.nan
    ev = evaluation_from_scores(bench, scores, scorer, n_boot=N_BOOT)
    assert "Invalid items: 2 (counted wrong)" in report.terminal_summary(ev)
    first = report.worst_records(ev, n=2)
    assert all(r["invalid"] and np.isnan(r["margin"]) for r in first)
    assert "invalid score" in report.describe_record(first[0])
    assert "Invalid items: 2" in report.markdown(ev)


def test_only_some_domains(data_path: Path, tmp_path: Path) -> None:
    path = _rewrite(data_path, tmp_path / "two.jsonl", keep=lambda r: r["domain"] in ("Chat", "Safety"))
    ev = evaluate(path, "builtin:length", cache=False, n_boot=N_BOOT)
    view = report.domain_view(ev)
    assert [r[0] for r in view.rows] == ["Chat", "Safety", "Avg"]
    text = report.terminal_summary(ev)
    assert not any(x.strip().startswith(("Writing", "Reasoning")) for x in text.splitlines())
    paths = report.write_report_files(ev, tmp_path / "out")
    assert paths["html"].read_text(encoding="utf-8").count('<a href="#cell-') == 2 * 3 * 25
    _png_size(paths["heatmap"])


def test_data_without_style_profiles(data_path: Path, tmp_path: Path) -> None:
    path = _rewrite(data_path, tmp_path / "bare.jsonl",
                    edit=lambda r: {k: v for k, v in r.items() if k != "style_assignments"})
    ev = evaluate(path, "builtin:length", cache=False, n_boot=N_BOOT)
    assert report.rows_of(ev, "cell").empty
    text = report.terminal_summary(ev)
    assert report.NO_PROFILES in text and "Avg" in text
    md = report.markdown(ev)
    assert "<details>" not in md and report.NO_PROFILES in md
    paths = report.write_report_files(ev, tmp_path / "out", make_checks(ev))
    assert "No heatmap" in paths["html"].read_text(encoding="utf-8")
    _png_size(paths["heatmap"])


def test_worst_records_name_a_loser_when_the_winner_only_tied(data_path: Path) -> None:
    bench = load_benchmark(data_path)
    scorer = load_scorer("builtin:length", cache=False)
    scores = np.ones((bench.n_items, 4))  # all tied: every item is wrong, ranked by key alone
    ev = evaluation_from_scores(bench, scores, scorer, n_boot=N_BOOT)
    tied = (ev.outcomes.winner == ev.outcomes.top).to_numpy()  # the winner only won the key tie-break
    recs = report.worst_records(ev, tied, n=2)
    assert recs and all(r["top"] != r["winner"] and r["margin"] == 0 for r in recs)


# ---- issue 14: size caps, width, verbosity, sections open for extension ---------------------------------------

def _many_failures(ev, n: int = 3000, reason_len: int = 60) -> pd.DataFrame:
    """A pathological gate: thousands of failing rows with long reasons (far past any real run)."""
    base = make_checks(ev, threshold=1.0)
    rows = pd.concat([base.assign(id=base.id + f"#{k}", reason="x " * reason_len) for k in range(n // len(base) + 1)])
    return rows.head(n).reset_index(drop=True)


def test_markdown_stays_under_the_comment_limit_for_any_run(ev, comparison) -> None:
    checks = _many_failures(ev)
    md = report.markdown(ev, checks, comparison)
    assert len(md) <= report.MARKDOWN_LIMIT
    assert md.startswith("## ❌") and "Full report: report.html" in md
    assert "FAILED:" in md  # the verdict survives every cut
    huge = copy.copy(ev)
    huge.meta = {**ev.meta, "spec": "python:" + "m" * 100_000}
    md = report.markdown(huge, checks, comparison)
    assert len(md) <= report.MARKDOWN_LIMIT and md.rstrip().endswith("next to this file._")


def test_markdown_folds_long_groups_and_keeps_short_ones_open(ev, checks) -> None:
    md = report.markdown(ev, checks)
    cells = failure_groups(checks)[0]
    n_rows = len(cells.rows)
    assert n_rows > 10
    assert f"<details><summary>{n_rows - 10} more failing values</summary>" in md
    assert "**Cells:" in md and md.index("### Who the model serves") < md.index("### Failed checks")


def test_markdown_leads_with_verdict_and_the_all_users_grid(ev, checks) -> None:
    lines = report.markdown(ev, checks).splitlines()
    body = "\n".join(lines[:12])
    assert "FAILED:" in body and "Worst served:" in body
    assert "| Dimension | 1 | 2 | 3 | 4 | 5 |" in report.markdown(ev, checks)
    assert "| Conciseness | terse **" in report.markdown(ev, checks)


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_terminal_lines_fit_the_width(ev, checks, comparison, width) -> None:
    text = report.terminal_summary(ev, checks, comparison, width=width)
    assert max(len(x) for x in text.splitlines()) <= width


def test_terminal_uses_a_wide_terminal(ev, checks) -> None:
    """Columns that do not fit are left out at 80 and shown at 200, rather than clipping at a fixed 100."""
    narrow = report.terminal_summary(ev, checks, width=80, verbose=1)
    wide = report.terminal_summary(ev, checks, width=200, verbose=1)
    assert "users who want" in wide.split("Worst cells")[1] and "Who" in wide.split("Worst cells")[1]
    assert max(len(x) for x in wide.splitlines()) > 100
    assert len(narrow.split("Worst cells")[1].splitlines()[1]) <= 80


def test_terminal_verbose_shows_more(ev, checks) -> None:
    short = report.terminal_summary(ev, checks, width=100)
    more = report.terminal_summary(ev, checks, width=100, verbose=1)
    everything = report.terminal_summary(ev, checks, width=100, verbose=2)
    assert len(short.splitlines()) <= report.TERMINAL_LINES + 3
    assert "Also in report.md (or with -v):" in short and "Also in report.md" not in more
    assert len(short.splitlines()) < len(more.splitlines()) < len(everything.splitlines())
    n_fail = report.check_counts(checks)["fail"]
    assert sum(i in everything for i in checks[checks.status == "fail"].id) == n_fail
    # pytest -q is verbosity -1: it reads as the default, never as -v (a truthy -1 once showed everything)
    assert report.terminal_summary(ev, checks, width=100, verbose=-1) == short


def test_a_new_section_is_one_function_and_one_line(ev, checks, monkeypatch) -> None:
    from rmgap_pytest import sections as S

    def style_bias(inp):
        return S.Section("style-bias", "Style bias", [S.Para("a longer answer wins 80% of the time"),
                                                      S.Table(report.View(["Level", "Share"], [["verbose", "0.80"]],
                                                                          "lr"))])

    monkeypatch.setattr(S, "SECTIONS", [*S.SECTIONS[:3], style_bias, *S.SECTIONS[3:]])
    text = report.terminal_summary(ev, checks)
    assert "Style bias" in text and re.search(r"^  verbose +0\.80$", text, re.M)
    assert "### Style bias" in report.markdown(ev, checks) and "| verbose | 0.80 |" in report.markdown(ev, checks)
    page = report.html(ev, checks)
    assert '<section id="style-bias"><h2>Style bias</h2>' in page and "<td class=\"r\">0.80</td>" in page


def test_regression_columns_are_rendered_everywhere(ev, comparison) -> None:
    with_cols = comparison.assign(mde=0.0417, gated=True)
    for text in (report.terminal_summary(ev, comparison=with_cols, width=160, verbose=2),
                 report.markdown(ev, comparison=with_cols), report.html(ev, comparison=with_cols)):
        assert "0.042" in text and "MDE" in text and "Diff [adjusted]" in text
    old = comparison.drop(columns=[c for c in ("mde", "gated") if c in comparison.columns])
    md = report.markdown(ev, comparison=old)
    assert "Smallest detectable drop (MDE): unknown" in md and "| n/a |" in md


def test_html_is_responsive_and_prints(ev, checks) -> None:
    page = report.html(ev, checks)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert page.count('<div class="scroll"><table>') == page.count("<table>")  # every table scrolls in its box
    assert "@media (max-width:760px)" in page and "svg.heatmap.tall{display:block}" in page
    assert "@media print" in page
    assert '<svg class="heatmap wide"' in page and '<svg class="heatmap tall"' in page


def test_a_pickled_evaluation_reads_the_same(ev, comparison) -> None:
    """xdist workers share the evaluation as a pickle (shared.py). Each NaN comes back as its own object,
    so code that grouped rows by a tuple holding a NaN (a domain row's dimension) split a domain in two
    and printed n/a for its Pair and BoN."""
    import pickle

    again = pickle.loads(pickle.dumps(ev))
    checks = make_checks(ev)
    assert report.markdown(again, checks, comparison) == report.markdown(ev, checks, comparison)
    assert report.html(again, checks, comparison) == report.html(ev, checks, comparison)
    assert "n/a" not in report.markdown(again).split("### Domains")[1].split("###")[0]


def test_report_json_text_is_the_plain_dump_of_the_run(ev) -> None:
    """run_json writes report.json by hand (one outcome row per line, for size and speed); it must parse to
    exactly what json.dumps of the run would give."""
    from rmgap_pytest.results import report_dict, run_json

    extra = {"checks": [{"id": "avg[BoN]", "value": 0.25}], "comparison": None}
    assert json.loads(run_json(ev, extra)) == json.loads(json.dumps(report_dict(ev, extra)))
