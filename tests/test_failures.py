"""A failing item's message: short, within the width, examples chosen for the check, a line budget, -v for more."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rmgap_pytest import failures as F
from rmgap_pytest.gate import CHECK_COLUMNS
from rmgap_pytest.session import GateSession, GateSettings
from rmgap_pytest.synth import write_synthetic


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    """builtin:length on 80 synthetic records: it fails users who want short answers, and many more cells."""
    path = write_synthetic(tmp_path_factory.mktemp("d") / "s.jsonl", 80, seed=5)
    g = GateSession.from_settings(GateSettings(model="builtin:length", data=str(path), cache="off", bootstrap=200))
    g.prepare()
    assert g.error is None
    return g


@pytest.fixture(scope="module")
def texts(gate):
    return F.Texts.of(gate.bench)


def _rows(gate, check_id: str) -> pd.DataFrame:
    c = gate.result.checks
    return c[c["id"] == check_id]


def test_one_line_names_the_other_failing_metric_and_verbose_lists_each(gate) -> None:
    rows = _rows(gate, "cell[All/Conciseness=terse]")
    assert (rows["status"] == "fail").sum() == 2  # Pair and BoN
    short = F.message(rows, width=100)
    assert short.count("\n") == 0 and "too" in short or "also" in short
    verbose = F.message(rows, width=100, verbose=1).splitlines()
    assert len(verbose) == 2 and {v.split(" ")[0] for v in verbose} == {"Pair", "BoN"}
    assert all("vs floor" in v for v in verbose)
    assert F.message(rows, width=100, verbose=-1) == short  # pytest -q: the default, not -v


@pytest.mark.parametrize("width", [60, 80, 120])
def test_every_message_line_fits_the_width(gate, texts, width) -> None:
    failed = gate.result.checks[gate.result.checks["status"] == "fail"]
    plan = F.plan_examples(gate, None, verbose=1, width=width, texts=texts)
    for cid in failed["id"].unique():
        text = F.gate_message(gate, cid, _rows(gate, cid), examples=plan[cid], width=width)
        assert max(len(line) for line in text.splitlines()) <= width, (cid, width)


def test_examples_are_chosen_for_the_cell(gate, texts) -> None:
    spec = next(s for s in gate.checks if s.id == "cell[All/Conciseness=terse]")
    target = F.target_of(spec, _rows(gate, spec.id))
    lines = F.examples_for(gate.result.evaluation, target, texts, 3, 100)
    assert lines[0].startswith("most wrong: 3 of ")
    out = gate.result.evaluation.outcomes
    records = [line.split(",")[0].strip() for line in lines[1::3]]
    assert len(set(records)) == 3  # one example per record
    for rid, pref, right in zip(records, lines[2::3], lines[3::3]):
        assert right.startswith("    right response") and "(terse)" in right  # the user asked for terse
        assert pref.startswith("    preferred response") and "(terse" not in pref  # the model chose another length
        assert ((out["record_id"] == rid) & (out["Conciseness"] == "terse") & ~out["bon"]).any()
        assert pref.rstrip().endswith(('"', '…"')) and right.rstrip().endswith(('"', '…"'))


def test_excerpts_are_short_quoted_and_cut_at_a_word() -> None:
    text = "word " * 50
    ex = F.excerpt(text, 30)
    assert len(ex) <= 30 and ex.startswith('"word') and ex.endswith('…"') and "  " not in ex
    assert F.excerpt("short\n\nprompt", 30) == '"short prompt"'


def test_a_gap_speaks_for_its_worst_level(gate) -> None:
    spec = next(s for s in gate.checks if s.id == "gap[All/Conciseness]")
    rows = _rows(gate, spec.id)
    assert F.target_of(spec, rows).level == rows["reason"].iloc[0].split(" vs ")[1].split(":")[0]


def test_examples_go_to_the_worst_failures_within_the_line_budget(gate) -> None:
    checks = gate.result.checks
    n_fail = checks[checks["status"] == "fail"]["id"].nunique()
    quota = F.example_quota(checks, None, verbose=0)
    lines = n_fail + sum(1 + n * F.EXAMPLE_LINES for n in quota.values())
    assert lines <= F.LINE_BUDGET
    kinds = [checks[checks["id"] == c]["kind"].iloc[0] for c in quota]
    assert kinds and kinds[0] == "cell"  # a broken user group first
    verbose = F.example_quota(checks, None, verbose=1)
    assert set(verbose) == set(checks[checks["status"] == "fail"]["id"]) and set(verbose.values()) == {3}
    assert set(F.example_quota(checks, None, verbose=2).values()) == {F.VERBOSE_EXAMPLES}
    assert F.example_quota(checks, {"avg[BoN]"}, verbose=0).keys() <= {"avg[BoN]"}  # -k: only what runs


def test_a_huge_failing_run_gets_no_more_lines_than_the_budget() -> None:
    rows = [dict(id=f"cell[All/Formality=x{i}]", kind="cell", domain="All", dimension="Formality", level=f"x{i}",
                 metric="BoN", value=0.1, lo=0.05, hi=0.15, threshold=0.25, direction="min", support=30,
                 status="fail", reason="below the floor") for i in range(300)]
    quota = F.example_quota(pd.DataFrame(rows, columns=CHECK_COLUMNS), None, verbose=0)
    assert quota == {}  # 300 one-line entries already exceed the budget: no examples, -v shows them


def test_records_are_not_repeated_across_messages_while_others_remain(gate, texts) -> None:
    plan = F.plan_examples(gate, None, verbose=1, width=100, texts=texts)
    shown = [line.split(",")[0].strip() for lines in plan.values() for line in lines[1::3]]
    n_records = len(gate.bench.records)
    assert len(shown) > n_records or len(set(shown)) == len(shown)


def test_regression_messages_give_the_mde_or_say_it_is_unknown() -> None:
    rows = pd.DataFrame([dict(id="regression[Avg/BoN]", kind="regression", domain="Avg", dimension=None, level=None,
                              metric="BoN", value=-0.05, lo=-0.08, hi=-0.02, threshold=-0.02, direction="min",
                              support=400, status="fail", reason="dropped 0.050 (0.500 -> 0.450)")],
                        columns=CHECK_COLUMNS)
    assert "can flag drops > 0.031 (MDE)" in F.message(rows, mde={"BoN": 0.031}, width=120)
    assert "; MDE unknown" in F.message(rows, mde={"BoN": np.nan}, width=120)


def test_describe_record_and_invalid_items_still_work(gate) -> None:
    rec = F.worst_records(gate.result.evaluation, n=1)[0]
    assert "model preferred" in F.describe_record(rec)
    assert F.example_lines({**rec, "invalid": True}, None, None, 80)[0].endswith("invalid score (NaN/inf), counted wrong")
