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
from .data import N_RESPONSES, Benchmark, item_table, load_benchmark, pair_texts, response_keys
from .errors import ScorerError
from .metrics import metric_table, outcome_table, reference_metrics
from .scorers import Scorer, load_scorer

DEFAULT_BOOT = 1000  # draws: the 95% interval's ends move by < 0.005 between seeds at release size
DEFAULT_SEED = 0


@dataclass
class Evaluation:
    """Everything one run produced; the report and the gate read only this."""

    meta: dict[str, Any]
    outcomes: pd.DataFrame  # metrics.outcome_table
    table: pd.DataFrame  # metrics.metric_table
    reference: dict[str, dict[str, float]]  # the reference metrics.json
    counts: dict[str, int] = field(default_factory=dict)


def score_benchmark(bench: Benchmark, scorer: Scorer) -> np.ndarray:
    """(n_items, 4) scores, pair order as ``data.pair_texts``.

    Always through a score store: a scorer without the cache gets a throwaway one.
    The store cuts the request into the same chunks every time, and in bf16 a score
    moves slightly with its batch, so cached, uncached and xdist runs agree exactly
    only if they all chunk the same way.
    """
    from .stored import StoredScorer

    prompts, responses = pair_texts(bench)
    if isinstance(scorer, StoredScorer):
        raw = scorer.score(prompts, responses)
    else:
        import tempfile
        import uuid

        from .cache import ScoreStore

        with tempfile.TemporaryDirectory(prefix="rmgap-run-") as tmp:
            store = ScoreStore(Path(tmp) / "scores.sqlite")
            raw = StoredScorer(scorer, store, fingerprint=f"run:{uuid.uuid4().hex}").score(prompts, responses)
            store.close()
    scores = np.asarray(raw, dtype=np.float64).reshape(-1)
    if scores.shape[0] != len(prompts):
        raise ScorerError(f"The scorer {scorer.spec} returned {scores.shape[0]} scores for {len(prompts)} pairs. "
                          "Fix: return exactly one float per (prompt, response) pair.")
    return scores.reshape(-1, N_RESPONSES)


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
    scores = score_benchmark(bench, scorer)
    scored_s = time.time() - started
    return evaluation_from_scores(bench, scores, scorer, n_boot=n_boot, seed=seed, min_support=min_support,
                                  options=scorer_options, scoring_seconds=scored_s)


def evaluation_from_scores(bench: Benchmark, scores: np.ndarray, scorer: Scorer, *, n_boot: int = DEFAULT_BOOT,
                           seed: int = DEFAULT_SEED, min_support: int = 1, options: dict | None = None,
                           scoring_seconds: float | None = None) -> Evaluation:
    """The metrics half of ``evaluate``: used directly when scores come from elsewhere (xdist)."""
    out = outcome_table(item_table(bench), scores, response_keys(bench))
    table = metric_table(out, n_boot=n_boot, seed=seed, min_support=min_support)
    stats = scorer.stats
    counts = dict(records=len(bench.records), items=len(out), pairs=len(out) * N_RESPONSES,
                  invalid_items=int(out["invalid"].sum()), truncated_pairs=int(stats.truncated),
                  pairs_scored=int(stats.pairs_scored), cache_hits=int(stats.cache_hits),
                  tied_items=tied_items(scores))
    meta = run_meta(bench, scorer, options or {}, n_boot=n_boot, seed=seed, min_support=min_support)
    if scoring_seconds is not None:
        meta["scoring_seconds"] = round(scoring_seconds, 3)
    return Evaluation(meta, out, table, reference_metrics(out), counts)


def tied_items(scores: np.ndarray) -> int:
    """Items (rows of 4 scores) where two finite scores are exactly equal: a tie counts as a loss, so
    ties a scorer manufactures (low-precision rounding) always go against the model."""
    s = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1, N_RESPONSES), axis=1)
    same = (s[:, 1:] == s[:, :-1]) & np.isfinite(s[:, 1:])
    return int(same.any(axis=1).sum())


def run_meta(bench: Benchmark, scorer: Scorer, options: dict, **settings: Any) -> dict[str, Any]:
    """What a later run needs to know whether it is comparable, and what a reader needs to reproduce it."""
    import platform

    return {
        "spec": scorer.spec,
        "fingerprint": scorer.fingerprint,
        "options": {k: v for k, v in options.items() if v is not None},
        "notes": list(scorer.stats.notes),
        "data": {"path": bench.path, "sha256": bench.sha256, "synthetic": bench.synthetic,
                 "domains": bench.domains},
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
