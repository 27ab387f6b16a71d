"""The gate's state for one pytest session, testable without pytest.

The plugin's hooks only call this object. Lifecycle:

1. ``GateSession.from_settings`` validates everything cheap up front (data,
   thresholds, scorer spec, baseline) so a typo is a usage error before any
   model loads.
2. ``checks`` is the item plan, known from the data alone, so every xdist
   worker collects the same items.
3. ``prepare`` scores every pair once and decides every check. Scoring goes
   through a SQLite store (the score cache, or a run-scoped file when the
   cache is off): xdist workers claim chunks of pairs from it, so each pair is
   scored once in total, and a dead worker's chunk is taken over.
4. ``finish`` writes the report files and, when asked, the new baseline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import Benchmark, load_benchmark
from .errors import BaselineError, RMGapError
from .evaluation import DEFAULT_BOOT, Evaluation, evaluation_from_scores, score_run
from .gate import CheckSpec, check_status, decide_checks, plan_checks
from .scorers import Scorer, build_scorer, parse_options
from .shared import once_per_run, published, run_dir
from .thresholds import Thresholds, load_thresholds


@dataclass
class GateSettings:
    """Resolved option values (command line > environment > ini)."""

    model: str
    data: str | None = None
    thresholds: str | None = None
    report: str | None = None
    baseline: str | None = None
    update_baseline: bool = False
    cache: str | None = None  # a path, "off", or None for the default file
    scorer_options: dict[str, Any] = field(default_factory=dict)
    bootstrap: int = DEFAULT_BOOT


@dataclass
class GateResult:
    evaluation: Evaluation
    checks: pd.DataFrame  # gate.CHECK_COLUMNS
    comparison: pd.DataFrame | None


class GateSession:
    def __init__(self, settings: GateSettings, bench: Benchmark, thresholds: Thresholds,
                 baseline: dict[str, Any] | None) -> None:
        self.settings = settings
        self.bench = bench
        self.thresholds = thresholds
        self.baseline = baseline
        self.checks: list[CheckSpec] = plan_checks(bench, thresholds, with_baseline=baseline is not None)
        self.result: GateResult | None = None
        self.error: str | None = None
        self.files: dict[str, Path] = {}
        self.messages: list[str] = []
        self.base_bon: "np.ndarray | None" = None  # per item: best-of-N in the baseline
        self.ran: set[str] = set()  # check ids whose items ran: -k/--deselect must not fail the report
        self._built: Scorer | None = None

    @classmethod
    def from_settings(cls, settings: GateSettings) -> "GateSession":
        """Validate data, thresholds, scorer spec and baseline; raises RMGapError with a fix."""
        bench = load_benchmark(settings.data)
        thresholds = load_thresholds(settings.thresholds)
        from .results import ensure_dir, ensure_parent

        if settings.update_baseline and not settings.baseline:
            raise BaselineError("--rmgap-update-baseline needs --rmgap-baseline=PATH: the file to write the run "
                                "to. Fix: add --rmgap-baseline=baselines/rm.json (or set rmgap_baseline in the ini).")
        if settings.report:
            ensure_dir(settings.report)
        if settings.update_baseline:
            ensure_parent(settings.baseline)
        scorer = build_scorer(settings.model, parse_options(settings.scorer_options))  # spec errors now
        _check_cache_file(scorer, settings.cache)
        baseline = None
        if settings.baseline and (Path(settings.baseline).exists() or not settings.update_baseline):
            from .results import load_run

            baseline = load_run(settings.baseline)
            if baseline["meta"]["data"]["sha256"] != bench.sha256:
                raise BaselineError(
                    f"{settings.baseline}: the baseline was scored on {baseline['meta']['data']['path']} "
                    f"(sha256 {baseline['meta']['data']['sha256'][:12]}), this run uses {bench.path} "
                    f"(sha256 {bench.sha256[:12]}). Comparing across different data is meaningless. Fix: "
                    "use the same --rmgap-data, or write a new baseline with --rmgap-update-baseline.")
        gate = cls(settings, bench, thresholds, baseline)
        gate._built = scorer  # cheap to build, but its fingerprint reads the model files: do it once
        return gate

    # -- scoring ---------------------------------------------------------------------------------------
    def scorer(self, store: str | None = None, run_id: str | None = None, device: str | None = None,
               worker: bool = False, placement: Callable[[], str | None] | None = None) -> Scorer:
        """The scorer behind the store that coordinates processes (see module doc).

        ``run_id`` marks what this run computes (shared by its xdist workers, so counts add
        up); a ``worker`` publishes its progress to the store for the controller to draw.
        ``placement`` (an xdist worker's GPU and CPU threads, which import torch) runs only
        when a chunk is to be computed, so a fully cached rerun never imports torch; the
        device it returns builds the model there.
        """
        inner = self._built if device is None and self._built is not None else self._on(device)
        from .cache import ScoreStore
        from .stored import StoredScorer, with_cache

        scorer = with_cache(inner, self.settings.cache or True, run_id=run_id)
        if scorer is inner and store is not None:  # cache off or uncacheable: a run store still shares xdist work
            scorer = StoredScorer(inner, ScoreStore(Path(store)), fingerprint=f"run:{run_id}", run_id=run_id,
                                  persistent=False)
        if worker and isinstance(scorer, StoredScorer):  # only the controller draws, from what workers publish
            scorer.show_progress, scorer.publish_progress = False, scorer.show_progress
        if placement is not None:
            def place() -> Scorer | None:
                where = placement()
                return self._on(where) if where else None

            if isinstance(scorer, StoredScorer):
                scorer.before_compute = place
            else:
                scorer = place() or scorer
        return scorer

    def _on(self, device: str | None) -> Scorer:
        """The scorer built again on ``device`` (an xdist worker on its own GPU: same files)."""
        return build_scorer(self.settings.model, parse_options({**self.settings.scorer_options,
                                                                **({"device": device} if device else {})}))

    def prepare(self, store: str | None = None, run_id: str | None = None, device: str | None = None,
                worker: bool = False, placement: Callable[[], str | None] | None = None) -> None:
        """Score once and decide every check; an RMGapError becomes ``self.error`` (no traceback).

        Under xdist (``store`` given) the result is computed once per run (``shared``): a
        process that finds it published reads it and scores nothing. ``placement``: run
        just before this process first computes a chunk (see ``scorer``).
        """
        if self.result is not None or self.error is not None:
            return
        try:
            directory = run_dir(store)
            done = published(directory)  # a worker finished: every score is stored, nothing to read
            if done is None:
                scorer = self.scorer(store, run_id, device, worker, placement)
                started = time.time()
                scored = score_run(self.bench, scorer)
                seconds = round(time.time() - started, 3)
                done = once_per_run(directory, lambda: self._decide(scorer, scored, seconds))
                done[0].evaluation.meta["scoring_seconds"] = seconds  # this process's own time
            self.result, self.base_bon = done
        except RMGapError as exc:
            self.error = str(exc)
        except Exception as exc:  # a model or library failure mid-run: one line per item, not 200 tracebacks
            if os.environ.get("RMGAP_DEBUG"):
                raise
            self.error = (f"{type(exc).__name__}: {exc} (an unexpected error while scoring "
                          f"{self.settings.model}; rerun with RMGAP_DEBUG=1 for the traceback; scores "
                          "already computed are kept in the cache)")

    def _decide(self, scorer: Scorer, scored: Any, seconds: float) -> tuple[GateResult, "np.ndarray | None"]:
        """Metrics, comparison and checks from the scores: the part every process of a run shares."""
        ev = evaluation_from_scores(self.bench, scored.values, scorer, n_boot=self.settings.bootstrap,
                                    min_support=self.thresholds.min_support, options=self.settings.scorer_options,
                                    scoring_seconds=seconds, scoring=scored)
        ev.meta["thresholds"] = self.thresholds.source
        comparison = self._compare(ev) if self.baseline is not None else None
        checks = decide_checks(self.checks, ev.table, self.thresholds, comparison)
        return GateResult(ev, checks, comparison), self.base_bon

    def scoring_seconds(self) -> float | None:
        """How long this process's scoring took (None before or without a result)."""
        return None if self.result is None else self.result.evaluation.meta.get("scoring_seconds")

    def set_scoring_seconds(self, seconds: float | None) -> None:
        """Under xdist the controller only reads the store: the run's scoring time is the slowest worker's."""
        if self.result is not None and seconds is not None:
            self.result.evaluation.meta["scoring_seconds"] = seconds

    def watch_workers(self, store: str | None, run_id: str) -> Any:
        """The xdist controller's one progress display of the workers' scoring (a started
        ``progress.RunWatcher``), or None when the scorer shows no progress."""
        from .progress import RunWatcher
        from .stored import StoredScorer

        try:
            scorer = self.scorer(store, run_id)
        except RMGapError:
            return None  # the workers meet the same error and report it
        if not isinstance(scorer, StoredScorer) or not scorer.show_progress:
            return None
        return RunWatcher(scorer.store, run_id, f"rmgap {scorer.spec}").start()

    def _compare(self, ev: Evaluation) -> pd.DataFrame:
        from .regression import compare_outcomes
        from .results import align, outcomes_from_run

        base = align(outcomes_from_run(self.baseline), ev.outcomes, self.baseline["path"])
        self.base_bon = base["bon"].to_numpy()
        # Cells below min_support are outside the family (gated False), so never regressed: the
        # summary matches the items, and `rmgap compare` with the same thresholds decides the same.
        return compare_outcomes(base, ev.outcomes, self.thresholds.regression_settings())

    # -- verdicts --------------------------------------------------------------------------------------
    def shown(self) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """Checks and comparison as the report shows them: only checks whose items ran.

        A check deselected with -k or --deselect is waived; the summary and report.md
        must not call the run red while pytest exits 0.
        """
        assert self.result is not None
        checks, comparison = self.result.checks, self.result.comparison
        if not self.ran:
            return checks, comparison
        checks = checks[checks["id"].isin(self.ran)]
        if comparison is not None:
            comparison = comparison.copy()
            ids = [f"regression[{d}/{m}]" if k == "domain" else f"regression[{d}/{dim}={lvl}]"
                   for k, d, dim, lvl, m in comparison[["kind", "domain", "dimension", "level", "metric"]]
                   .itertuples(index=False)]
            comparison.loc[[i not in self.ran for i in ids], "regressed"] = False
        return checks, comparison

    def verdict(self, check_id: str) -> tuple[str, pd.DataFrame]:
        """(status, rows) for one check; status fail/skip/pass."""
        assert self.result is not None
        rows = self.result.checks[self.result.checks["id"] == check_id]
        return check_status(rows), rows

    def failure_message(self, check_id: str, rows: pd.DataFrame, width: int = 100) -> str:
        """A failing item's message (``failures.gate_message``: value, interval, threshold, examples)."""
        from .failures import Texts, gate_message

        return gate_message(self, check_id, rows, width=width, texts=Texts.of(self.bench))

    # -- files -----------------------------------------------------------------------------------------
    def finish(self) -> None:
        """Write report files and the baseline (controller or single process only)."""
        if self.result is None:
            return
        ev = self.result.evaluation
        checks, comparison = self.shown()
        from .results import save_baseline, write_run

        if self.settings.report:
            from .report import write_report_files

            extra = {"checks": checks.to_dict(orient="records"),
                     "comparison": None if comparison is None else comparison.to_dict(orient="records")}
            self.files.update(write_run(ev, self.settings.report, extra))
            self.files.update(write_report_files(ev, self.settings.report, checks=checks, comparison=comparison))
        if self.settings.update_baseline and self.settings.baseline:
            self.files["baseline"] = save_baseline(ev, self.settings.baseline)
            self.messages.append(f"baseline updated: {self.settings.baseline}")


def _check_cache_file(scorer: Scorer, setting: str | None) -> None:
    """An existing cache file that is not a score cache is a usage error now, not 170 failed items."""
    from .cache import ScoreStore, resolve_cache_path

    # Not gated on scorer.fingerprint: a remote scorer's fingerprint asks its server, which
    # belongs to scoring (a dead server is a scoring failure), not to start-up checks.
    path = resolve_cache_path(setting or True)
    if path is not None and path.exists():
        ScoreStore(path).close()


_NO_TORCH = ("python:", "builtin:length", "builtin:random", "http:", "https:", "vllm:", "sglang:")


def worker_device(worker_id: str | None, device: str | None, spec: str = "") -> str | None:
    """Under xdist on a machine with several GPUs, worker gwN takes GPU N mod count."""
    if not worker_id or (device not in (None, "auto", "cuda")) or spec.startswith(_NO_TORCH):
        return None  # importing torch costs seconds; scorers without a model never need it
    try:
        import torch

        n = torch.cuda.device_count()
    except Exception:  # torch missing or broken: let the scorer decide
        return None
    if n <= 1:
        return None
    return f"cuda:{int(worker_id.lstrip('gw') or 0) % n}"


def worker_placement(worker_id: str | None, worker_count: int, settings: GateSettings) -> Callable[[], str | None]:
    """What an xdist worker does before its first chunk: pick its GPU (``worker_device``) and
    its share of the CPU threads (``share_cpu_threads``); returns the device. Both import torch
    for model specs, so ``GateSession.prepare`` runs this only when a chunk is to be computed:
    a fully cached rerun under ``-n 2`` imports no torch (issue 11)."""
    def place() -> str | None:
        configured = settings.scorer_options.get("device")
        device = worker_device(worker_id, configured, settings.model)
        if worker_id is not None:
            share_cpu_threads(worker_count, device or configured, settings.model)
        return device
    return place


def share_cpu_threads(worker_count: int, device: str | None, spec: str) -> None:
    """xdist workers scoring on one CPU split its cores instead of each taking all of them.

    Measured here (2 cores, the sample, builtin:minilm, whole `pytest -n 2` run): 10.7 s
    with one thread per worker, 14-16 s with two threads each (oversubscribed).
    """
    if worker_count <= 1 or spec.startswith(_NO_TORCH) or (device or "auto").startswith("cuda"):
        return
    import torch

    if device in (None, "auto") and torch.cuda.is_available():
        return
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // worker_count))
