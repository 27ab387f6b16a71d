"""Your own assertions next to the gate: the ``rmgap_result`` fixture.

Copy this file into your model repository's tests. It runs with the gate
(``pytest --rm-model=./checkpoints/rm``), reuses the gate's scores (scored once
per run, also under ``pytest -n 4``), and is skipped when no model is given.
Each number is a float that also carries its 95% interval (``.lo``, ``.hi``)
and support (``.support``, prompt groups).
"""


def test_the_model_beats_chance_on_average(rmgap_result):
    # Chance is BoN 0.25 (four responses); the example thresholds ask 0.30 of every domain.
    assert rmgap_result.avg.bon > 0.25, rmgap_result.avg


def test_terse_users_are_served(rmgap_result):
    terse = rmgap_result.cell("All/Conciseness=terse")
    # A floor on the point estimate, as the gate's cells; a stricter team could assert terse.bon.lo.
    assert terse.bon >= 0.10, f"users who want terse answers: BoN {terse.bon!r}"


def test_no_user_is_served_far_worse_than_another(rmgap_result):
    assert rmgap_result.gap("All/Conciseness") <= 0.95


def test_wrong_items_can_be_read(rmgap_result):
    wrong = rmgap_result.failed_items("All/Conciseness=terse")
    # Each row has the prompt, the right response and the one the model preferred, as text.
    assert set(wrong.columns) >= {"prompt_text", "winner_text", "top_text"}
    assert (wrong["winner"] != wrong["top"]).all() or wrong["invalid"].any() or wrong.empty
