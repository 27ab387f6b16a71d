"""RMGapResult: what the rmgap_result fixture hands a model repository's own tests."""

import pytest

from rmgap_pytest.data import load_benchmark
from rmgap_pytest.errors import RMGapError
from rmgap_pytest.evaluation import evaluate
from rmgap_pytest.result import Estimate, RMGapResult


@pytest.fixture(scope="module")
def result():
    bench = load_benchmark()
    return RMGapResult(evaluate(bench, "builtin:length", n_boot=50, cache=False, min_support=10), bench)


def test_metrics_cells_gaps_match_the_table(result):
    t = result.table
    row = t[(t["kind"] == "cell") & (t["domain"] == "All") & (t["dimension"] == "Conciseness")
            & (t["level"] == "terse") & (t["metric"] == "BoN")].iloc[0]
    terse = result.cell("All/Conciseness=terse")
    assert isinstance(terse.bon, Estimate) and float(terse.bon) == row["value"] == 0.0  # length never picks terse
    assert (terse.bon.lo, terse.bon.hi, terse.bon.support) == (row["lo"], row["hi"], row["support"])
    assert result.avg.bon == result.metrics["BoN"]["Avg"] and result.domain("Chat").pair == result.metrics["Pair"]["Chat"]
    assert result.gap("All/Conciseness") > 0.5 and result.blindness() == 1.0
    assert "All/Conciseness=terse" in result.cells() and "<RMGapResult builtin:length" in repr(result)


def test_items_and_failed_items_carry_texts(result):
    items = result.items()
    assert len(items) == 312 and not items["prompt_text"].isna().any()
    row = items.iloc[0]
    rec = result.bench.records[0]
    assert row["prompt_text"] == rec.prompts[0][0] and row["winner_text"] == rec.responses[rec.keys.index(row["winner"])]
    wrong = result.failed_items("All/Conciseness=terse")
    assert len(wrong) == (items["Conciseness"] == "terse").sum() and (~wrong["bon"]).all()


@pytest.mark.parametrize("call,needle", [(lambda r: r.cell("All/Concisenes=terse"), "Did you mean"),
                                         (lambda r: r.domain("Chatt"), "Did you mean 'Chat'?"),
                                         (lambda r: r.gap("All/Concise"), "no such gap")])
def test_misspelt_names_are_clear_errors(result, call, needle):
    with pytest.raises(RMGapError, match=needle):
        call(result)
