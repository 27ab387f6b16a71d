import textwrap

import numpy as np
import pytest

from rmgap_pytest import load_scorer
from rmgap_pytest.errors import ScorerError


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent("""
        CALLS = []
        def score(prompts, responses):
            CALLS.append(len(prompts))
            return [float(len(p) - len(r)) for p, r in zip(prompts, responses)]
        def too_few(prompts, responses):
            return [0.0] * (len(prompts) - 1)
        def words(prompts, responses):
            return ["high"] * len(prompts)
        def boom(prompts, responses):
            raise RuntimeError("model server down")
        def nan(prompts, responses):
            return [float("nan")] * len(prompts)
        NOT_CALLABLE = 3
    """))
    (tmp_path / "broken_import.py").write_text("import math\nraise ValueError('bad config')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_python_scorer_batches_and_returns_floats(user_module):
    scorer = load_scorer("python:my_rewards:score", batch_size=3)
    out = scorer.score(["aa", "b"] * 4, ["a"] * 8)
    assert out.dtype == np.float64 and out.tolist() == [1.0, 0.0] * 4
    import my_rewards

    assert my_rewards.CALLS == [3, 3, 2]
    assert scorer.fingerprint is None  # opaque code: never cached without a version
    assert load_scorer("python:my_rewards:score", version="v2", cache=False).fingerprint.endswith("version=v2")


def test_python_scorer_from_file_path(user_module):
    scorer = load_scorer(f"python:{user_module / 'my_rewards.py'}:score")
    assert scorer.score(["abc"], ["a"]).tolist() == [2.0]


@pytest.mark.parametrize("attr,needle", [
    ("too_few", "returned 2 scores for 3 pairs"),
    ("words", "non-numeric score 'high' at position 0"),
    ("boom", "raised RuntimeError: model server down (at "),
])
def test_python_scorer_contract_errors(user_module, attr, needle):
    scorer = load_scorer(f"python:my_rewards:{attr}")
    with pytest.raises(ScorerError) as err:
        scorer.score(["p"] * 3, ["r"] * 3)
    assert needle in str(err.value) and f"python:my_rewards:{attr} (batch 1 of 1, 3 pairs)" in str(err.value)


def test_nan_is_allowed_and_returned(user_module):
    assert np.isnan(load_scorer("python:my_rewards:nan").score(["p"], ["r"])).all()


@pytest.mark.parametrize("spec,needle", [
    ("python:my_rewards:scor", "has no attribute 'scor'. Did you mean 'score'?"),
    ("python:my_rewards:NOT_CALLABLE", "not a callable"),
    ("python:no_such_module_xyz:f", "no module named 'no_such_module_xyz'. Fix: run from the directory"),
    ("python:broken_import:f", "importing broken_import raised ValueError: bad config (at "),
    ("python:my_rewards", "must be python:MODULE:ATTR"),
    ("builtin:lenght", "Did you mean 'length'?"),
    ("clasifier:./rm", "Unknown scorer kind 'clasifier'"),
    ("./not/a/dir", "neither KIND:TARGET nor an existing model directory"),
])
def test_spec_errors(user_module, spec, needle):
    with pytest.raises(ScorerError) as err:
        load_scorer(spec)
    assert needle in str(err.value)


def test_unknown_option_did_you_mean():
    with pytest.raises(ScorerError, match="Unknown scorer option 'dtyp'. Did you mean 'dtype'"):
        load_scorer("builtin:length", dtyp="float32")


def test_length_and_random_builtins():
    length = load_scorer("builtin:length", cache=False)
    assert length.score(["p", "p"], ["short", "much longer"]).tolist() == [5.0, 11.0]
    rnd = load_scorer("builtin:random", cache=False)
    a = rnd.score(["p1", "p2", "p1"], ["r", "r", "r"])
    assert a[0] == a[2] and a[0] != a[1] and ((0 <= a) & (a < 1)).all()  # seeded from the pair's text
    other_seed = load_scorer("builtin:random", cache=False, seed=1).score(["p1"], ["r"])
    assert other_seed[0] != a[0]
