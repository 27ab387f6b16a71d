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


EXIT_SCORING_FAILED = 6  # the gate could not score the model: "broke", as opposed to 1 "regressed/failed"


@dataclass
class GateSettings:
    """Resolved option values (command line > environment > ini); ``options.OPTIONS`` documents each."""

    model: str
    data: str | None = None
    thresholds: str | None = None
    report: str | None = None
    baseline: str | None = None  # a report.json, or "last": the last accepted run in ``history``
    update_baseline: bool = False
    cache: str | None = None  # a path, "off", or None for the default file
    scorer_options: dict[str, Any] = field(default_factory=dict)
    bootstrap: int = DEFAULT_BOOT
    limit: int | None = None  # score a stratified, seeded subset of this many records
    history: str | None = None  # a run-history directory (history.py)
    thresholds_note: str = ""  # how the thresholds file was found, for the header ("found in the rootdir")


def settings_from_values(values: dict[str, Any]) -> GateSettings:
    """GateSettings from checked option values keyed by ``options.OPTIONS`` names (both tools use this)."""
    from .options import OPTIONS

    scorer = {o.scorer: values.get(o.name) for o in OPTIONS if o.scorer}
    scorer = {k: v for k, v in scorer.items() if v is not None and v is not False}
    return GateSettings(model=values["rm_model"], data=values.get("rmgap_data"),
                        thresholds=values.get("rmgap_thresholds"), report=values.get("rmgap_report"),
                        baseline=values.get("rmgap_baseline"), update_baseline=bool(values.get("rmgap_update_baseline")),
                        cache=values.get("rmgap_cache"), scorer_options=scorer, limit=values.get("rmgap_limit"),
                        history=values.get("rmgap_history"))


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
        self.error: str | None = None  # the scoring failed: no verdict (EXIT_SCORING_FAILED)
        self.files: dict[str, Path] = {}
        self.messages: list[str] = []
        self.base_bon: "np.ndarray | None" = None  # per item: best-of-N in the baseline
        # Check ids whose items ran; None: not tracked (the API and `rmgap eval`: every check counts).
        # Under pytest an empty set means none ran (-x stopped first, or -k deselected them all).
        self.ran: set[str] | None = None
        self.history_run: str | None = None  # the id this run got in the history directory
        self._built: Scorer | None = None

    @classmethod
    def from_settings(cls, settings: GateSettings) -> "GateSession":
        """Validate data, thresholds, scorer spec and baseline; raises RMGapError with a fix."""
        from .data import subset_benchmark
        from .options import flag_name

        bench = load_benchmark(settings.data)
        if settings.limit:
            bench = subset_benchmark(bench, settings.limit)
        thresholds = load_thresholds(settings.thresholds)
        from .results import ensure_dir, ensure_parent

        if settings.baseline == "last" and not settings.history:
            raise BaselineError(f"{flag_name('rmgap_baseline')}=last compares with the last accepted run in the "
                                "history directory, and no history directory is given. Fix: add "
                                f"{flag_name('rmgap_history')}=DIR (the directory your runs are kept in), or name a "
                                "report.json.")
        if settings.update_baseline and (not settings.baseline or settings.baseline == "last"):
            base = flag_name("rmgap_baseline")
            raise BaselineError(f"{flag_name('rmgap_update_baseline')} needs {base}=PATH: the file to write the run "
                                f"to. Fix: add {base}=baselines/rm.json (or set rmgap_baseline in the ini).")
        if settings.report:
            ensure_dir(settings.report)
        if settings.history:
            ensure_dir(settings.history, "history directory")
        if settings.update_baseline:
            ensure_parent(settings.baseline)
        scorer = build_scorer(settings.model, parse_options(settings.scorer_options))  # spec errors now
        _check_cache_file(scorer, settings.cache)
        messages: list[str] = []
        baseline = _load_baseline(settings, bench, messages)
        gate = cls(settings, bench, thresholds, baseline)
        gate.messages.extend(messages)
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
        checks = decide_checks(self.checks, ev.table, self.thresholds, comparison, bias=ev.bias)
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

        A check deselected with -k or --deselect, or never reached because -x stopped the
        run first, is not reported: the summary and report.md must not call the run red
        (or green) while pytest says otherwise.
        """
        assert self.result is not None
        checks, comparison = self.result.checks, self.result.comparison
        if self.ran is None:
            return checks, comparison
        checks = checks[checks["id"].isin(self.ran)]
        if comparison is not None:
            from .regression import item_ids

            comparison = comparison.copy()
            ids = item_ids(comparison)
            comparison.loc[[i not in self.ran for i in ids], "regressed"] = False
        return checks, comparison

    def none_ran(self) -> bool:
        """Under pytest, no gate item ran (-x stopped first, or every item was deselected)."""
        return self.ran is not None and not self.ran

    def verdict(self, check_id: str) -> tuple[str, pd.DataFrame]:
        """(status, rows) for one check; status fail/skip/pass."""
        assert self.result is not None
        rows = self.result.checks[self.result.checks["id"] == check_id]
        return check_status(rows), rows

    def passed(self) -> bool:
        """Every shown check passed or was skipped, and nothing regressed."""
        if self.result is None:
            return False
        checks, comparison = self.shown()
        failed = bool((checks["status"] == "fail").any()) if len(checks) else False
        regressed = comparison is not None and bool(comparison["regressed"].any())
        return not failed and not regressed

    # -- files -----------------------------------------------------------------------------------------
    def finish(self) -> None:
        """Write report files, the history entry and the baseline (controller or single process only)."""
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
        if self.settings.history and not self.none_ran():
            from .history import record_run

            entry = record_run(self.settings.history, ev, checks, comparison, passed=self.passed())
            self.history_run = entry["id"]
            self.files["history"] = Path(self.settings.history) / entry["file"]
            self.messages.append(f"history: kept as {entry['id']} in {self.settings.history} "
                                 f"({'accepted' if entry['accepted'] else 'not accepted: ' + entry['why']})")
        if self.settings.update_baseline and self.settings.baseline:
            self.files["baseline"] = save_baseline(ev, self.settings.baseline)
            self.messages.append(f"baseline updated: {self.settings.baseline}")


def _load_baseline(settings: GateSettings, bench: Benchmark, messages: list[str]) -> dict[str, Any] | None:
    """The run to compare with, or None (no baseline yet, or replaced by an update over other data)."""
    from .options import flag_name
    from .results import load_run

    if not settings.baseline:
        return None
    if settings.baseline == "last":
        from .history import last_accepted

        run = last_accepted(settings.history, bench.sha256)
        if run is None:
            messages.append(f"baseline: no accepted run on this data in {settings.history} yet, so nothing was "
                            "compared; a run whose gate passes becomes the first")
            return None
    elif not Path(settings.baseline).exists() and settings.update_baseline:
        return None  # the first baseline: written at the end
    else:
        run = load_run(settings.baseline)
    problem = _different_data(run["meta"]["data"], bench)
    if problem is None:
        return run
    if settings.update_baseline:
        messages.append(f"baseline: {run['path']} was scored on other data ({problem}); not compared, and "
                        f"replaced by this run ({flag_name('rmgap_update_baseline')})")
        return None
    raise BaselineError(f"{run['path']}: {problem}. Comparing across different data is meaningless. Fix: use the "
                        f"same {flag_name('rmgap_data')} (and {flag_name('rmgap_limit')}), or replace the baseline "
                        f"with {flag_name('rmgap_update_baseline')}.")


def _different_data(data: dict[str, Any], bench: Benchmark) -> str | None:
    """Why a run's data (its ``meta.data``) is not this benchmark's, or None when it is the same."""
    if data["sha256"] == bench.sha256:
        return None
    base_sub, cur_sub = data.get("subset"), bench.subset
    if (base_sub or cur_sub) and (base_sub or {}).get("full_sha256", data["sha256"]) == \
            (cur_sub or {}).get("full_sha256", bench.sha256):
        def what(sub: dict | None) -> str:
            return f"a --rmgap-limit subset ({sub['records']} of {sub['of']} records)" if sub else "the whole file"
        return (f"the baseline was scored on {what(base_sub)} and this run on {what(cur_sub)} of the same data; a "
                "subset is never compared with the whole file or another subset")
    return (f"the baseline was scored on {data.get('path')} (sha256 {data['sha256'][:12]}), this run uses "
            f"{bench.path} (sha256 {bench.sha256[:12]})")


def _check_cache_file(scorer: Scorer, setting: str | None) -> None:
    """An existing cache file that is not a score cache is a usage error now, not 170 failed items."""
    from .cache import ScoreStore, resolve_cache_path

    # Not gated on scorer.fingerprint: a remote scorer's fingerprint asks its server, which
    # belongs to scoring (a dead server is a scoring failure), not to start-up checks.
    path = resolve_cache_path(setting or True)
    if path is not None and path.exists():
        ScoreStore(path).close()
