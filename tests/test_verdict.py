"""What the gate decided, for a reader: grouping, severity order, the straddle wording, regression columns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rmgap_pytest import verdict as V
from rmgap_pytest.evaluation import evaluate
from rmgap_pytest.gate import CHECK_COLUMNS, check_status
from rmgap_pytest.metrics import compare
from rmgap_pytest.synth import write_synthetic


def row(id, kind, metric, value, lo, hi, threshold, direction="min", status=None, domain="All", dimension=None,
        level=None, support=20, reason=""):
    if status is None:
        ok = value >= threshold if direction == "min" else value <= threshold
        status = "pass" if ok else "fail"
    return dict(id=id, kind=kind, domain=domain, dimension=dimension, level=level, metric=metric, value=value, lo=lo,
                hi=hi, threshold=threshold, direction=direction, support=support, status=status, reason=reason)


@pytest.fixture
def checks() -> pd.DataFrame:
    rows = [
        row("avg[BoN]", "avg", "BoN", 0.28, 0.26, 0.30, 0.30, domain="Avg"),  # past by 0.02
        row("domain[Chat/BoN]", "domain", "BoN", 0.20, 0.15, 0.25, 0.30, domain="Chat"),  # past by 0.10
        row("cell[All/Conciseness=terse]", "cell", "Pair", 0.45, 0.40, 0.52, 0.50, dimension="Conciseness",
            level="terse"),  # 0.05
        row("cell[All/Conciseness=terse]", "cell", "BoN", 0.05, 0.01, 0.09, 0.25, dimension="Conciseness",
            level="terse"),  # 0.20: this check sorts by its worst row
        row("cell[All/Formality=casual]", "cell", "BoN", 0.24, 0.19, 0.30, 0.25, dimension="Formality",
            level="casual"),  # 0.01, straddles
        row("cell[All/Formality=formal]", "cell", "BoN", 0.40, 0.30, 0.50, 0.25, dimension="Formality",
            level="formal"),  # passes
        row("gap[All/Conciseness]", "gap", "BoN gap", 0.70, 0.60, 0.80, 0.50, direction="max", dimension="Conciseness",
            reason="verbose vs terse: some users are served far worse than others"),
        row("blindness[All]", "blindness", "Prompt blindness", 0.55, 0.45, 0.65, 0.50, direction="max", support=40),
        row("regression[Avg/BoN]", "regression", "BoN", -0.05, -0.08, -0.02, -0.02, domain="Avg", status="fail",
            reason="dropped 0.050 (0.500 -> 0.450), beyond the tolerance 0.02 and outside noise"),
        dict(row("cell[Chat/Formality=casual]", "cell", None, np.nan, np.nan, np.nan, np.nan, status="skip",
                 domain="Chat", dimension="Formality", level="casual", support=4), direction=None, threshold=None,
             reason="support 4 prompt groups < min_support 10"),
    ]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def test_failures_are_grouped_by_kind_then_sorted_by_how_far_past(checks) -> None:
    groups = V.failure_groups(checks)
    assert [g.key for g in groups] == ["regression", "domain", "cell", "gap", "blindness"]
    assert groups[1].rows["id"].tolist() == ["domain[Chat/BoN]", "avg[BoN]"]
    cells = groups[2].rows
    # The terse cell (worst row 0.20 past) before casual (0.01); its two rows stay together, worst first.
    assert cells["id"].tolist() == ["cell[All/Conciseness=terse]"] * 2 + ["cell[All/Formality=casual]"]
    assert cells["metric"].tolist() == ["BoN", "Pair", "BoN"]
    assert cells["excess"].tolist() == pytest.approx([0.20, 0.05, 0.01])
    assert "cell[All/Formality=formal]" not in pd.concat(g.rows for g in groups)["id"].tolist()


def test_excess_is_signed_distance_past_the_threshold() -> None:
    assert V.excess(0.2, 0.25, "min") == pytest.approx(0.05)
    assert V.excess(0.7, 0.5, "max") == pytest.approx(0.2)
    assert V.excess(0.3, 0.25, "min") < 0
    assert V.excess(np.nan, 0.25, "min") == math.inf  # no value at all is the worst failure
    assert V.excess(0.2, None, "min") == -math.inf  # un-gated


@pytest.mark.parametrize("value,lo,hi,threshold,direction,expected", [
    (0.24, 0.19, 0.30, 0.25, "min", "BoN 0.240 [0.19, 0.30] vs floor 0.250: not distinguishable from the floor at "
                                    "this support"),
    (0.10, 0.05, 0.16, 0.25, "min", "BoN 0.100 [0.05, 0.16] vs floor 0.250: below the floor"),
    (0.55, 0.45, 0.65, 0.50, "max", "BoN 0.550 [0.45, 0.65] vs ceiling 0.500: not distinguishable from the ceiling at "
                                    "this support"),
    (0.70, 0.60, 0.80, 0.50, "max", "BoN 0.700 [0.60, 0.80] vs ceiling 0.500: above the ceiling"),
])
def test_a_floor_straddled_by_its_interval_says_so(value, lo, hi, threshold, direction, expected) -> None:
    r = pd.DataFrame([row("cell[x]", "cell", "BoN", value, lo, hi, threshold, direction)]).iloc[0]
    assert V.row_line(r) == expected
    assert V.straddles(value, lo, hi, threshold, direction) == ("not distinguishable" in expected)
    short = V.row_texts(r)[1]
    assert short.startswith(f"BoN {value:.3f} [{lo:.2f}, {hi:.2f}]: ") and f"{threshold:.3f}" in short


def test_check_counts_agree_with_the_gate(checks) -> None:
    counts = V.check_counts(checks)
    per_check = [check_status(rows) for _, rows in checks.groupby("id", sort=False)]
    assert counts == {k: per_check.count(k) for k in ("pass", "fail", "skip")} | {"total": len(per_check)}
    assert counts["fail"] == 7 and counts["skip"] == 1


def test_checks_view_names_users_and_how_far_past(checks) -> None:
    view = V.checks_view(V.failures(checks))
    terse = next(r for r in view.rows if r[0] == "cell[All/Conciseness=terse]" and r[1] == "BoN")
    assert terse[V.CHECK_HEADER.index("Past by")] == "+0.200"
    assert terse[V.CHECK_HEADER.index("Who")] == "users who want terse answers"
    casual = next(r for r in view.rows if r[0] == "cell[All/Formality=casual]")
    assert casual[V.CHECK_HEADER.index("Reason")] == "not distinguishable from the floor at this support"


def test_a_skipped_row_without_a_metric_shows_an_empty_metric(checks) -> None:
    """A skipped cell has no metric: NaN once the table went through pandas, which printed as "nan"."""
    skipped = V.checks_view(checks[checks["status"] == "skip"]).rows
    assert skipped and all(r[V.CHECK_HEADER.index("Metric")] == "" for r in skipped)


# ---- regressions: adjusted interval and MDE, old tables still render ---------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    path = write_synthetic(tmp_path_factory.mktemp("d") / "s.jsonl", 40, seed=3)
    base = evaluate(path, "builtin:length", cache=False, n_boot=200)
    cur = evaluate(path, "builtin:random", cache=False, n_boot=200)
    return base, cur


def test_old_comparison_tables_render_mde_unknown_and_every_row_gated(runs) -> None:
    base, cur = runs
    old = compare(base.outcomes, cur.outcomes, n_boot=200)
    old = old.drop(columns=[c for c in ("mde", "gated") if c in old.columns])
    assert len(V.regressed(old)) == int(old["regressed"].sum()) > 0
    view = V.regressions_view(old)
    assert {r[V.regressions_view(old).header.index("MDE")] for r in view.rows} == {"n/a"}
    assert "unknown" in V.mde_summary(old)
    assert V.baseline_avg_view(old).header == ["Avg", "Baseline", "Current", "Diff [adjusted]", "MDE", "Regressed"]


def test_new_comparison_columns_are_shown_and_ungated_rows_never_count(runs) -> None:
    base, cur = runs
    table = compare(base.outcomes, cur.outcomes, n_boot=200)
    table["mde"] = np.where(table["kind"] == "domain", 0.031, 0.12)
    table["gated"] = table["kind"] == "domain"  # cells outside the tested family
    shown = V.regressed(table)
    assert len(shown) and (shown["kind"] == "domain").all()
    view = V.regressions_view(table)
    assert {r[view.header.index("MDE")] for r in view.rows} == {"0.031"}
    assert V.mde_summary(table) == "Smallest drop this run could call a regression (MDE): Avg BoN 0.031."
    table["gated"] = True
    assert "a cell's BoN 0.120 to 0.120" in V.mde_summary(table)


# ---- the verdict paragraph ----------------------------------------------------------------------------------

def test_verdict_paragraph_tells_the_story(runs, checks) -> None:
    base, cur = runs
    text = V.verdict_paragraph(base, checks)
    assert text.startswith("FAILED: 7 of 9 checks failed (1 regression, 2 domains, 2 cells, 1 preference gap, "
                           "1 prompt blindness).")
    assert "not distinguishable from their threshold" in text and "1 checks skipped" in text
    worst = V.worst_cells(base, None)
    worst = worst[worst["domain"] == "All"].iloc[0]
    assert f"Worst served: {V.users('All', worst.dimension, worst.level)}" in text
    assert "Largest gap: BoN" in text
    passing = checks.assign(status="pass")
    assert V.verdict_paragraph(base, passing).startswith("PASSED: all 9 checks passed.")
    assert V.verdict_paragraph(base).startswith("Report only")
    comparison = compare(base.outcomes, cur.outcomes, n_boot=200)
    assert "regressed against the baseline; the largest drop:" in V.verdict_paragraph(cur, None, comparison)
