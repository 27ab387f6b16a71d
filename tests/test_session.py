"""GateSession and its helpers, without pytest's machinery."""

import pytest

from rmgap_pytest import session as S
from rmgap_pytest.errors import BaselineError
from rmgap_pytest.gate import CHECK_COLUMNS


def test_settings_are_validated_before_any_scoring(bench_file, tmp_path):
    settings = S.GateSettings(model="builtin:length", data=str(bench_file), update_baseline=True)
    with pytest.raises(BaselineError, match="needs --rmgap-baseline=PATH"):
        S.GateSession.from_settings(settings)


def test_prepare_decides_every_planned_check(bench_file):
    gate = S.GateSession.from_settings(S.GateSettings(model="builtin:random", data=str(bench_file), bootstrap=100))
    gate.prepare()
    assert gate.error is None
    checks = gate.result.checks
    assert list(checks.columns) == CHECK_COLUMNS
    assert set(checks["id"]) == {spec.id for spec in gate.checks}
    status, rows = gate.verdict("avg[BoN]")
    assert status in ("pass", "fail") and len(rows) == 1
    gate.ran = {"avg[BoN]"}
    shown, _ = gate.shown()
    assert set(shown["id"]) == {"avg[BoN]"}


def test_scorer_errors_are_kept_not_raised(bench_file, tmp_path, monkeypatch):
    (tmp_path / "bad_rm.py").write_text("def f(p, r):\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    gate = S.GateSession.from_settings(S.GateSettings(model="python:bad_rm:f", data=str(bench_file)))
    gate.prepare()
    assert gate.result is None and "returned 0 scores for 64 pairs" in gate.error
    gate.finish()  # nothing to write, nothing raised


def test_unexpected_scorer_failure_is_one_line_unless_debugging(bench_file, tmp_path, monkeypatch):
    (tmp_path / "zero_rm.py").write_text("def f(p, r):\n    return 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = S.GateSettings(model="python:zero_rm:f", data=str(bench_file))
    gate = S.GateSession.from_settings(settings)
    gate.prepare()
    assert "ZeroDivisionError" in gate.error  # python: scorers already wrap their errors
    import rmgap_pytest.session as session_module

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(session_module, "score_run", broken)
    gate = S.GateSession.from_settings(settings)
    gate.prepare()
    assert gate.error.startswith("RuntimeError: CUDA error") and "RMGAP_DEBUG=1" in gate.error
    monkeypatch.setenv("RMGAP_DEBUG", "1")
    gate = S.GateSession.from_settings(settings)
    with pytest.raises(RuntimeError):
        gate.prepare()
