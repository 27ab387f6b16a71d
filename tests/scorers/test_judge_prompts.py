"""Judge prompt templates (``scorers._prompts``) and what they do to the fingerprint."""

from __future__ import annotations

import pytest

from rmgap_pytest import load_scorer
from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers._prompts import SYSTEM, load_template, ranker_values, repair_message

URL = "http://127.0.0.1:9/v1"  # never contacted: building a scorer sends nothing


def test_defaults_carry_the_reference_criteria():
    for kind in ("verifier", "judge", "ranker"):
        t = load_template(kind, None)
        text = t.user.lower()
        assert "relevan" in text and "correct" in text and "useful" in text, kind
        assert t.system == SYSTEM and t.source == "default"
    assert "YES or NO" in load_template("verifier", None).user
    assert "1 to 10" in load_template("judge", None).user


def test_ranker_prompt_labels_every_response_in_the_shown_order():
    msgs = load_template("ranker", None).messages(**ranker_values("Why?", ["one", "two", "three", "four"]))
    user = msgs[-1]["content"]
    assert [user.index(f"### Response {c}\n{t}") for c, t in zip("ABCD", ["one", "two", "three", "four"])] == \
        sorted(user.index(f"### Response {c}") for c in "ABCD")
    assert "A, B, C, D" in user and "C>A>D>B" in user


def test_a_template_file_replaces_the_user_message_and_keeps_braces(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text('Q: {prompt}\nA: {response}\nAnswer as JSON {{"score": N}}.\n')
    t = load_template("judge", str(f))
    msgs = t.messages(prompt="p {x}", response="r")
    assert msgs == [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": 'Q: p {x}\nA: r\nAnswer as JSON {"score": N}.'}]


def test_a_separator_line_sets_the_system_message(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("You are strict.\n---\n{prompt} / {response}")
    assert load_template("verifier", str(f)).messages(prompt="p", response="r") == [
        {"role": "system", "content": "You are strict."}, {"role": "user", "content": "p / r"}]
    f.write_text("---\n{prompt} / {response}")
    assert load_template("verifier", str(f)).messages(prompt="p", response="r") == [
        {"role": "user", "content": "p / r"}]


@pytest.mark.parametrize("text,needle", [
    ("{prompt} {respons}", "Did you mean 'response'?"),
    ("{prompt} {response} {", "'{' is not a judge variable"),
    ("{response}", "never uses {prompt}"),
    ("{prompt}", "never uses {response}"),
])
def test_template_mistakes_are_clear(tmp_path, text, needle):
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(ScorerError) as err:
        load_template("judge", str(f))
    assert needle in str(err.value) and str(f) in str(err.value)


def test_a_missing_template_file_is_clear(tmp_path):
    with pytest.raises(ScorerError, match="does not exist"):
        load_scorer(f"judge:{URL}", judge_template=str(tmp_path / "nope.txt"), cache=False)


def test_the_template_hash_is_in_the_fingerprint(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("{prompt} -> {response}: rate 1-10")
    default = load_scorer(f"judge:{URL}", cache=False).fingerprint
    custom = load_scorer(f"judge:{URL}", judge_template=str(f), cache=False).fingerprint
    assert custom != default
    assert load_scorer(f"judge:{URL}", judge_template=str(f), cache=False).fingerprint == custom
    f.write_text("{prompt} -> {response}: rate 1-10!")
    assert load_scorer(f"judge:{URL}", judge_template=str(f), cache=False).fingerprint != custom


def test_fingerprints_differ_by_kind_and_score_changing_options():
    fps = {load_scorer(f"{k}:{URL}", cache=False).fingerprint for k in ("verifier", "judge", "ranker")}
    fps |= {load_scorer(f"judge:{URL}", judge_score="expected", cache=False).fingerprint,
            load_scorer(f"ranker:{URL}", ranker_orders=4, cache=False).fingerprint,
            load_scorer(f"ranker:{URL}", seed=1, cache=False).fingerprint,
            load_scorer(f"judge:{URL}", api_model="m", cache=False).fingerprint,
            load_scorer(f"judge:{URL}", version="v2", cache=False).fingerprint}
    assert len(fps) == 8
    # Concurrency changes how fast, not what: same fingerprint.
    assert load_scorer(f"judge:{URL}", concurrency=3, cache=False).fingerprint == \
        load_scorer(f"judge:{URL}", cache=False).fingerprint


def test_repair_message_names_the_problem_and_the_format():
    msg = repair_message("ranker", "A>A>C>D is not a permutation of A, B, C, D")
    assert "A>A>C>D" in msg and "C>A>D>B" in msg
    assert "1 to 10" in repair_message("judge", "no number in the answer")
