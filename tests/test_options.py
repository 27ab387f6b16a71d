"""options.py: one table for both tools; values checked with the source named; stray settings caught."""

import pytest

from rmgap_pytest import options as O


def test_flag_names_the_running_tool():
    try:
        O.set_tool("pytest")
        assert O.flag("label") == "--rm-label K" and O.flag_name("rmgap_data") == "--rmgap-data"
        O.set_tool("rmgap")
        assert O.flag("label") == "--label K" and O.flag_name("rmgap_data") == "--data"
        O.set_tool(None)
        assert O.flag("allow_pickle") == "pytest --rm-allow-pickle; rmgap eval --allow-pickle"
    finally:
        O.set_tool(None)


def test_every_option_has_help_metavar_and_both_spellings():
    for o in O.OPTIONS:
        assert o.help and (o.metavar or o.kind == "flag")
        assert o.pytest.startswith(("--rm-", "--rmgap-")) and (o.cli is None or o.cli.startswith("--"))
        assert o.env is None or o.env.startswith("RMGAP_")
    assert len({o.cli for o in O.OPTIONS}) == len(O.OPTIONS)


@pytest.mark.parametrize("name,value,where,message", [
    ("rm_batch_size", "0", "--rm-batch-size", "--rm-batch-size: '0' is not a positive integer."),
    ("rm_dtype", "bf16", "RMGAP_DTYPE", "RMGAP_DTYPE: 'bf16' is not one of auto, float32, bfloat16, float16. Did you mean 'bfloat16'?"),
    ("rm_beta", "x", "rm_beta in pytest.ini", "rm_beta in pytest.ini: 'x' is not a number."),
    ("rm_label", "first", "--label", "--label: 'first' is not a logit index (0, 1, ...)."),
])
def test_values_are_checked_naming_their_source(name, value, where, message):
    with pytest.raises(O.UsageError) as info:
        O.check_value(O.by_name(name), value, where)
    assert str(info.value) == message
    assert O.check_value(O.by_name("rm_batch_size"), " 8 ", "x") == 8
    assert O.check_value(O.by_name("rm_add_bos"), "true", "x") is True


def test_stray_settings():
    assert O.stray_settings([], has_model=False, environ={}) is None
    assert O.stray_settings([], has_model=False, environ={"RMGAP_CACHE": "off", "RMGAP_DEBUG": "1"}) is None
    assert O.stray_settings(["--rmgap-report"], has_model=True, environ={}) is None
    msg = O.stray_settings(["--rmgap-report"], has_model=False, environ={"RMGAP_DATA": "x"})
    assert msg.startswith("--rmgap-report, RMGAP_DATA are set but no reward model is given")
    msg = O.stray_settings([], has_model=True, environ={"RMGAP_THRESHOLD": "t.yaml"})
    assert "RMGAP_THRESHOLD: Did you mean 'RMGAP_THRESHOLDS'?" in msg
