"""Scorer specs -> scorers.

A spec is ``KIND:TARGET`` (``classifier:./rm``, ``builtin:length``,
``python:pkg.mod:fn``) or a bare model directory whose kind is read from its
config. Kinds are looked up lazily in ``KINDS`` so importing the package never
imports torch; adding a kind is one module plus one line here.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import ScorerError, did_you_mean
from .base import ItemScorer, Scored, Scorer, ScorerOptions, ScoreStats

__all__ = ["KINDS", "ItemScorer", "Scored", "Scorer", "ScorerOptions", "ScoreStats", "load_scorer", "parse_options",
           "build_scorer"]

# kind -> "module:factory"; factory(target, spec, options) -> Scorer
KINDS: dict[str, str] = {
    "classifier": "rmgap_pytest.scorers.classifier:ClassifierScorer",
    "logprob": "rmgap_pytest.scorers.logprob:LogprobScorer",
    "dpo": "rmgap_pytest.scorers.logprob:DpoScorer",
    "builtin": "rmgap_pytest.scorers.builtin:make_builtin",
    "python": "rmgap_pytest.scorers.python:PythonScorer",
    "http": "rmgap_pytest.scorers.remote:RemoteScorer",
    "https": "rmgap_pytest.scorers.remote:RemoteScorer",
    "vllm": "rmgap_pytest.scorers.vllm:VllmScorer",
    "sglang": "rmgap_pytest.scorers.sglang:SglangScorer",
    "verifier": "rmgap_pytest.scorers.verifier:VerifierScorer",
    "judge": "rmgap_pytest.scorers.judge:JudgeScorer",
    "ranker": "rmgap_pytest.scorers.ranker:RankerScorer",
}

_OPTION_NAMES = [f.name for f in dataclasses.fields(ScorerOptions)]


def parse_options(options: dict[str, Any]) -> ScorerOptions:
    """Validate keyword options by name; unknown names get a "did you mean"."""
    for name in options:
        if name not in _OPTION_NAMES:
            raise ScorerError(
                f"Unknown scorer option {name!r}.{did_you_mean(name, _OPTION_NAMES)} "
                f"Known options: {', '.join(_OPTION_NAMES)}."
            )
    return ScorerOptions(**{k: v for k, v in options.items() if v is not None})


def _factory(kind: str) -> Callable[[str, str, ScorerOptions], Scorer]:
    module_name, attr = KINDS[kind].split(":")
    return getattr(importlib.import_module(module_name), attr)


def build_scorer(spec: str, options: ScorerOptions) -> Scorer:
    """The raw scorer for ``spec`` (no cache). Cheap: weights load on first score."""
    spec = spec.strip()
    kind, sep, target = spec.partition(":")
    if sep and kind in KINDS:
        if not target:
            raise ScorerError(f"Scorer spec {spec!r} names the kind {kind!r} but nothing after the colon. "
                              f"Fix: write {kind}:TARGET, e.g. {_EXAMPLES[kind]}.")
        return _factory(kind)(target, spec, options)
    from ._local import looks_like_hub_id, resolve_local

    if Path(spec).expanduser().is_dir() or looks_like_hub_id(spec):
        from .detect import detect_kind

        path = resolve_local(spec)  # a hub id: its snapshot in the local HF cache, or a message how to get it
        kind, why = detect_kind(path, options)
        scorer = _factory(kind)(str(path), spec, options)
        scorer.stats.notes.insert(0, f"{spec}: detected kind {kind!r} ({why})")
        return scorer
    if sep and not os.path.exists(spec):
        raise ScorerError(
            f"Unknown scorer kind {kind!r} in spec {spec!r}.{did_you_mean(kind, KINDS)} "
            f"Known kinds: {', '.join(sorted(KINDS))}; or pass a model directory."
        )
    raise ScorerError(
        f"Scorer spec {spec!r} is neither KIND:TARGET nor an existing model directory. "
        f"Fix: pass a directory holding config.json, or one of: "
        + "; ".join(_EXAMPLES.values()) + "."
    )


_EXAMPLES = {
    "classifier": "classifier:./checkpoints/rm",
    "logprob": "logprob:./checkpoints/policy",
    "dpo": "dpo:./checkpoints/policy (with ref_model)",
    "builtin": "builtin:length, builtin:random or builtin:minilm",
    "python": "python:my_package.rewards:score",
    "http": "http://127.0.0.1:8000/score",
    "https": "https://rm.example.com/score",
    "vllm": "vllm:http://127.0.0.1:8000 (several replicas: vllm:http://a:8000,http://b:8000)",
    "sglang": "sglang:http://127.0.0.1:30000 (with --rm-tokenizer=DIR)",
    "verifier": "verifier:./judge-model or verifier:http://127.0.0.1:8000/v1",
    "judge": "judge:./judge-model or judge:http://127.0.0.1:8000/v1",
    "ranker": "ranker:./judge-model or ranker:http://127.0.0.1:8000/v1",
}


def load_scorer(spec: str, *, cache: bool | str | os.PathLike[str] = True, **options: Any) -> Scorer:
    """Public entry point: ``load_scorer("classifier:./rm", dtype="float32").score(prompts, responses)``.

    Item-level kinds (``unit == "item"``, e.g. ``builtin:length-rank``) are called as
    ``score_items(prompts, responses_per_item)`` instead.

    ``cache``: True = the default SQLite file (see ``cache.default_cache_path``),
    a path = that file, False = no cache. Scorers without a fingerprint
    (``python:`` without ``version``) are never cached.
    """
    from ..stored import with_cache

    return with_cache(build_scorer(spec, parse_options(options)), cache)
