"""Issue 13 end to end: planted effects through ``rmgap eval``'s report.json, and the gate's bias/sensitivity
items and "Why" line through pytest, with and without pytest-xdist."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rmgap_pytest.bias import bias_table, response_levels
from rmgap_pytest.cli import main
from rmgap_pytest.data import load_benchmark, sample_path
from rmgap_pytest.results import load_run, outcomes_from_run

# Held back from the estimators' tests: a python: scorer that looks up each response's profile and the
# user each prompt belongs to in the data file, and plants a style bias and a sensitivity on top of
# prompt offsets (every estimator must ignore them). NOISE adds a per-pair term from a hash.
PLANTED = """
import json, zlib
LEVELS = {{"Formality": ["casual", "informal", "neutral", "formal", "highly_formal"],
          "Conciseness": ["terse", "concise", "moderate", "detailed", "verbose"],
          "Technicality": ["layman", "accessible", "semi_technical", "technical", "highly_specialized"],
          "Objectivity": ["highly_subjective", "subjective", "balanced", "objective", "strictly_objective"],
          "Structural_Coherence": ["fragmented", "loose", "organized", "well_structured", "rigorous"]}}
BIAS, FOLLOW, NOISE = {bias!r}, {follow!r}, {noise!r}
STYLE, WANTS = {{}}, {{}}
for line in open({data!r}, encoding="utf-8"):
    rec = json.loads(line)
    text = {{r["key"]: r["text"] for r in rec["responses"]}}
    for i, r in enumerate(rec["responses"]):
        prof = rec["style_assignments"]["r%d" % (i + 1)]
        STYLE[r["text"]] = sum(b * LEVELS[d].index(prof[d]) for d, b in BIAS.items())
    for g in rec["prompt_groups"]:
        for p in g["prompts"]:
            WANTS[p["text"]] = text[g["winner"]]
def unit(s):
    return (zlib.crc32(s.encode()) % 100003) / 100003 - 0.5
def score(prompts, responses):
    return [STYLE[r] + FOLLOW * (WANTS[p] == r) + 5 * unit(p) + NOISE * unit(p + "|" + r)
            for p, r in zip(prompts, responses)]
"""
BIAS = {"Formality": -0.35, "Technicality": 0.25}


def _scorer(tmp_path, monkeypatch, name, **kw):
    (tmp_path / f"{name}.py").write_text(PLANTED.format(data=str(sample_path()), **kw))
    monkeypatch.syspath_prepend(str(tmp_path))


def _eval(tmp_path, name):
    out = tmp_path / name
    assert main(["eval", "--rm-model", f"python:{name}:score", "--out", str(out), "--no-cache",
                 "--bootstrap", "400"]) == 0
    return json.loads((out / "report.json").read_text()), out


def _get(report, kind, dimension=None, domain="All"):
    return next(r for r in report["bias"] if r["kind"] == kind and r["domain"] == domain
                and r["dimension"] == dimension and r["level"] is None)


def test_planted_effects_are_recovered_through_report_json(tmp_path, monkeypatch, capsys):
    _scorer(tmp_path, monkeypatch, "planted_exact", bias=BIAS, follow=0.8, noise=0.0)
    report, out = _eval(tmp_path, "planted_exact")
    for dim in ("Formality", "Conciseness", "Technicality", "Objectivity", "Structural_Coherence"):
        r = _get(report, "bias", dim)
        truth = BIAS.get(dim, 0.0)
        assert r["raw"] == pytest.approx(truth, abs=1e-9) and r["raw_lo"] - 1e-9 <= truth <= r["raw_hi"] + 1e-9
    sens = _get(report, "sensitivity")
    assert sens["raw"] == pytest.approx(0.8, abs=1e-9) and sens["raw_lo"] - 1e-9 <= 0.8 <= sens["raw_hi"] + 1e-9
    assert report["findings"][0].startswith("rewards casualness regardless of the user")
    assert (out / "why.png").read_bytes()[:4] == b"\x89PNG"
    assert "Why: rewards casualness whoever asks" in " ".join(capsys.readouterr().out.split())


def test_noisy_and_prompt_blind_scorers_through_report_json(tmp_path, monkeypatch):
    _scorer(tmp_path, monkeypatch, "planted_noisy", bias=BIAS, follow=0.8, noise=1.0)
    _scorer(tmp_path, monkeypatch, "planted_blind", bias=BIAS, follow=0.0, noise=0.0)
    noisy, out = _eval(tmp_path, "planted_noisy")
    # report.json holds exactly the estimator's numbers on the run's own outcomes (the same bootstrap draws).
    run = load_run(out)
    direct = bias_table(outcomes_from_run(run), response_levels(load_benchmark()), n_boot=400, seed=0)
    got = np.array([[r[c] for c in ("value", "lo", "hi", "raw")] for r in noisy["bias"]], dtype=float)
    np.testing.assert_allclose(got, direct[["value", "lo", "hi", "raw"]].to_numpy(float), rtol=0, atol=1e-12)
    blind, _ = _eval(tmp_path, "planted_blind")  # the prompt only shifts every response alike
    for r in blind["bias"]:
        if r["kind"] == "sensitivity":
            assert abs(r["value"]) < 1e-12 and r["lo"] <= 1e-12 and r["hi"] >= -1e-12  # 0 up to rounding
    assert "does not measurably follow the user" in blind["findings"][-1]


THRESHOLDS = "bias: {Conciseness: 0.3}\nsensitivity: {All: 0.2}\n"


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_gate_items_and_why_line_through_pytest(pytester, tmp_path, monkeypatch, xdist):
    monkeypatch.setenv("RMGAP_CACHE", str(tmp_path / "cache.sqlite"))
    (pytester.path / "t.yaml").write_text(THRESHOLDS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--rm-model=builtin:length", "--rmgap-thresholds=t.yaml",
                                "--rmgap-report=out", "-rf", "-k", "bias or sensitivity or avg", *xdist)
    assert result.ret == 1
    out = result.stdout.str()
    for item in ("bias[[]Conciseness[]]", "sensitivity[[]All[]]"):  # xdist finishes them in either order
        result.stdout.fnmatch_lines([f"*FAILED*{item}*"])
    assert "bias[Formality]" not in out and "Traceback" not in out  # only the dimensions given a ceiling
    assert "rewards verbosity whoever asks" in out and "above the ceiling" in out
    assert "preferred response2 (verbose, by" in out  # examples: the model chose the more verbose answer
    assert "Why: rewards verbosity whoever asks (+0.60 SD per Conciseness level" in " ".join(out.split())
    checks = json.loads((pytester.path / "out/report.json").read_text())["checks"]
    assert {c["id"]: c["status"] for c in checks if c["kind"] in ("bias", "sensitivity")} == \
        {"bias[Conciseness]": "fail", "sensitivity[All]": "fail"}
    assert (pytester.path / "out/why.png").exists()
    assert '<section id="why">' in (pytester.path / "out/report.html").read_text()
