"""One evaluation: benchmark + scorer -> outcome table -> metrics.

The single code path behind ``rmgap eval``, the pytest gate and the Python
API, so all three print the same numbers for the same model and data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .bias import bias_table, response_levels
from .data import N_RESPONSES, Benchmark, item_table, load_benchmark, pair_texts, response_keys
from .errors import ScorerError
from .judging import tie_rates
from .metrics import bootstrap_counts, metric_table, outcome_table, record_domains, reference_metrics
from .scorers import Scorer, load_scorer
from .scorers.base import unit_of

DEFAULT_BOOT = 1000  # draws: the 95% interval's ends move by < 0.005 between seeds at release size
DEFAULT_SEED = 0


@dataclass
class Evaluation:
    """Everything one run produced; the report and the gate read only this."""

    meta: dict[str, Any]
    outcomes: pd.DataFrame  # metrics.outcome_table
    table: pd.DataFrame  # metrics.metric_table
    reference: dict[str, dict[str, float]]  # the reference metrics.json
    counts: dict[str, Any] = field(default_factory=dict)  # see counts.py for the scoring counts
    bias: pd.DataFrame = field(default_factory=pd.DataFrame)  # bias.bias_table: style bias, preference sensitivity


@dataclass
class ScoredRun:
    """The benchmark's scores as the store served them.

    ``values``: (n_items, 4), response order as ``data.response_keys``.
    ``meta``: one entry per scored row: per pair (4 per item, pair order as
    ``data.pair_texts``) for pair scorers, per item for item scorers.
    ``counts``/``details``: ``counts.run_counts``.
    """

    values: np.ndarray
    meta: list[dict[str, Any] | None]
    counts: dict[str, Any]
    details: dict[str, Any]


def item_texts(bench: Benchmark) -> tuple[list[str], list[tuple[str, ...]]]:
    """One prompt and its 4 responses per item, in item-table order (item-level scorers)."""
    prompts: list[str] = []
    responses: list[tuple[str, ...]] = []
    for rec in bench.records:
        for group in rec.prompts:
            prompts.extend(group)
            responses.extend([rec.responses] * len(group))
    return prompts, responses


def score_run(bench: Benchmark, scorer: Scorer) -> ScoredRun:
    """Score every item through a score store: pairs or whole items, as ``scorer.unit`` says.

    Always through a store: a scorer without the cache gets a throwaway one.
    The store cuts the request into the same chunks every time, and in bf16 a score
    moves slightly with its batch, so cached, uncached and xdist runs agree exactly
    only if they all chunk the same way. Counts come from the store (``counts.py``).
    """
    from .counts import run_counts
    from .stored import StoredScorer

    unit = unit_of(scorer)
    prompts, responses = item_texts(bench) if unit == "item" else pair_texts(bench)
    if isinstance(scorer, StoredScorer):
        fetched = scorer.fetch(prompts, responses)
    else:
        import tempfile
        import uuid

        from .cache import ScoreStore

        with tempfile.TemporaryDirectory(prefix="rmgap-run-") as tmp:
            store = ScoreStore(Path(tmp) / "scores.sqlite")
            run_id = uuid.uuid4().hex
            fetched = StoredScorer(scorer, store, fingerprint=f"run:{run_id}", run_id=run_id,
                                   persistent=False).fetch(prompts, responses)
            store.close()
    values = np.asarray(fetched.values, dtype=np.float64)
    want = (len(prompts),) if unit == "pair" else (len(prompts), N_RESPONSES)
    if values.shape != want:
        what = "one float per (prompt, response) pair" if unit == "pair" else "one row of 4 scores per item"
        raise ScorerError(f"The scorer {scorer.spec} returned scores of shape {values.shape} for {len(prompts)} "
                          f"{unit}s. Fix: return {what}.")
    counts, details = run_counts(fetched, unit)
    return ScoredRun(values.reshape(-1, N_RESPONSES), fetched.meta, counts, details)


def score_benchmark(bench: Benchmark, scorer: Scorer) -> np.ndarray:
    """(n_items, 4) scores, response order as ``data.response_keys`` (``score_run(...).values``)."""
    return score_run(bench, scorer).values


def evaluate(data: Benchmark | str | Path | None = None, scorer: Scorer | str = "builtin:length", *,
             n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED, min_support: int = 1,
             cache: bool | str | Path = True, **scorer_options: Any) -> Evaluation:
    """Score a benchmark and compute every metric.

    ``data``: a loaded Benchmark, a path, or None for the embedded sample.
    ``scorer``: a Scorer or a spec for ``load_scorer`` (with ``cache`` and options).
    """
    bench = data if isinstance(data, Benchmark) else load_benchmark(data)
    if isinstance(scorer, str):
        scorer = load_scorer(scorer, cache=cache, **scorer_options)
    started = time.time()
    scored = score_run(bench, scorer)
    scored_s = time.time() - started
    return evaluation_from_scores(bench, scored.values, scorer, n_boot=n_boot, seed=seed, min_support=min_support,
                                  options=scorer_options, scoring_seconds=scored_s, scoring=scored)


def evaluation_from_scores(bench: Benchmark, scores: np.ndarray, scorer: Scorer, *, n_boot: int = DEFAULT_BOOT,
                           seed: int = DEFAULT_SEED, min_support: int = 1, options: dict | None = None,
                           scoring_seconds: float | None = None, scoring: ScoredRun | None = None) -> Evaluation:
    """The metrics half of ``evaluate``. ``scoring`` (from ``score_run``) supplies the scoring
    counts; without it the report says the scores were supplied by the caller."""
    out = outcome_table(item_table(bench), scores, response_keys(bench))
    resample = bootstrap_counts(record_domains(out), n_boot, seed)  # drawn once: both tables resample alike
    table = metric_table(out, min_support=min_support, counts=resample)
    why = bias_table(out, response_levels(bench), counts=resample)
    counts: dict[str, Any] = dict(records=len(bench.records), items=len(out), pairs=len(out) * N_RESPONSES,
                                  invalid_items=int(out["invalid"].sum()), tied_items=tied_items(scores))
    if scoring is not None:
        counts.update(scoring.counts)
    meta = run_meta(bench, scorer, options or {}, n_boot=n_boot, seed=seed, min_support=min_support)
    if scoring is not None and scoring.details:
        meta["scorer_meta"] = scoring.details
    ties = tie_rates(scoring.meta, out["winner_idx"].to_numpy()) if scoring is not None else None
    if ties is not None:  # a pointwise judge scored with its expected rating: how many ties that broke
        meta.setdefault("scorer_meta", {})["ties"] = ties
    if scoring_seconds is not None:
        meta["scoring_seconds"] = round(scoring_seconds, 3)
    return Evaluation(meta, out, table, reference_metrics(out), counts, why)


def tied_items(scores: np.ndarray) -> int:
    """Items (rows of 4 scores) where two finite scores are exactly equal: a tie counts as a loss, so
    ties a scorer manufactures (low-precision rounding) always go against the model."""
    s = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1, N_RESPONSES), axis=1)
    same = (s[:, 1:] == s[:, :-1]) & np.isfinite(s[:, 1:])
    return int(same.any(axis=1).sum())


def run_meta(bench: Benchmark, scorer: Scorer, options: dict, **settings: Any) -> dict[str, Any]:
    """What a later run needs to know whether it is comparable, and what a reader needs to reproduce it."""
    import platform

    from .provenance import git_info, model_fingerprint, model_path, resolved_settings

    return {
        "spec": scorer.spec,
        "fingerprint": model_fingerprint(scorer),
        "options": {k: v for k, v in options.items() if v is not None},
        "resolved": resolved_settings(scorer),  # what auto and the defaults became (dtype, device, ...)
        "git": git_info(model_path(scorer)),  # the model directory's checkout, when it is in one
        "notes": list(scorer.stats.notes),
        "data": {"path": bench.path, "sha256": bench.sha256, "synthetic": bench.synthetic,
                 "domains": bench.domains, "subset": bench.subset},
        "settings": settings,
        "versions": _versions(),
        "python": platform.python_version(),
        "host": platform.node(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rmgap_pytest": __version__,
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("numpy", "pandas", "torch", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
