"""``rmgap calibrate``: the gate measures its own operating characteristics.

Simulated model pairs (``simulate.py``) go through the gate's own comparison
(``regression.decide``, with the gate's settings and sign-flip seed), many
runs per scenario, vectorised: no report files, one matrix product per batch
of runs. For each scenario it counts the runs in which any regression item
failed: for a harmless change that is the false-block rate, for a drop the
detection rate, each with an exact binomial 95% interval (Clopper-Pearson),
and which metrics caught it: for a model that follows users less, the
sensitivity units against the BoN units on the very same runs.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .data import DIMENSIONS, DOMAINS, Benchmark, item_table
from .errors import CalibrationError
from .familywise import Differences, paired_differences, sign_flips
from .bias_units import BIAS_METRIC, SENSITIVITY_METRIC, TIER as WHY_TIER
from .regression import TIERS, RegressionSettings, UnitLayout, decide, regression_item_id
from .simulate import PRESETS, Scenario, SimModel, Simulator

DEFAULT_RHOS = (0.5, 0.9)
DEFAULT_CELL = ("All", "Conciseness", "terse")  # the users a verbosity-biased update fails first
DEFAULT_FOLLOW = 0.15  # follows users 15% less: BoN falls by about 3 points (docs/why.md)
METRIC_ORDER = ("Pair", "BoN", "Consistency", SENSITIVITY_METRIC, BIAS_METRIC)


def default_scenarios(rhos: Sequence[float] = DEFAULT_RHOS, drop: float = 0.03, cell_drop: float = 0.10,
                      cell: tuple[str, str, str] = DEFAULT_CELL, follow: float | Sequence[float] = ()) -> list[Scenario]:
    """Harmless changes at each correlation, then a uniform and a one-cell BoN drop at each, then a model that
    follows users less by each share in ``follow`` (> 0)."""
    follows = [follow] if isinstance(follow, (int, float)) else list(follow)
    out = [Scenario("harmless", r) for r in rhos]
    out += [Scenario("uniform_drop", r, drop) for r in rhos if drop > 0]
    out += [Scenario("cell_drop", r, cell_drop, cell) for r in rhos if cell_drop > 0]
    out += [Scenario("follow_drop", r, follow=f) for f in follows if f > 0 for r in rhos]
    return out


@dataclass
class ScenarioResult:
    scenario: Scenario
    runs: int = 0
    blocked: int = 0  # runs with at least one failing regression item
    located: int = 0  # runs in which an item naming the change failed
    failing_items: int = 0  # summed over runs
    items: Counter = field(default_factory=Counter)  # item id -> runs it failed in
    metrics: Counter = field(default_factory=Counter)  # metric -> runs in which a unit of that metric failed
    mde: list[pd.DataFrame] = field(default_factory=list)  # harmless runs: gated units' mde and support

    def interval(self, count: int | None = None) -> tuple[float, float]:
        """Exact (Clopper-Pearson) 95% interval of the rate of ``count`` (default: blocked) in ``runs``."""
        from scipy.stats import binomtest

        ci = binomtest(self.blocked if count is None else count, self.runs).proportion_ci(0.95, method="exact")
        return float(ci.low), float(ci.high)


@dataclass
class Calibration:
    data: str
    records: int
    model_name: str
    model: SimModel
    signal: float
    settings: RegressionSettings
    family: dict[str, int]  # tier -> gated units
    results: list[ScenarioResult]
    base_bon: float  # mean baseline BoN and Consistency over the simulated runs
    base_consistency: float
    seconds: float


def calibrate(bench: Benchmark, settings: RegressionSettings, model: SimModel, scenarios: Sequence[Scenario],
              runs: int = 200, seed: int = 0, model_name: str = "custom", batch: int = 10) -> Calibration:
    """Run ``runs`` simulated model pairs per scenario through the gate's comparison."""
    started = time.time()
    items = item_table(bench)
    layout = UnitLayout.from_items(items)
    sim = Simulator(items, model)
    flips = sign_flips(len(layout.record_domains), settings.n_boot, settings.seed)  # as the gate: same seed every run
    den_total = layout.den.sum(axis=0)
    results, bon, cons = [], [], []
    for i, scenario in enumerate(scenarios):
        rng = np.random.default_rng([seed, i])  # adding a scenario leaves the others' runs unchanged
        res = ScenarioResult(scenario)
        for start in range(0, runs, batch):
            k = min(batch, runs - start)
            base_scores, cur_scores = sim.pairs(rng, k, scenario)
            ob, oc = sim.outcomes(base_scores), sim.outcomes(cur_scores)
            bon.append(ob[1].mean())
            cons.append(ob[2].mean())
            base_num, cur_num = layout.numerators(*ob), layout.numerators(*oc)
            for table in _decide_batch(layout, base_num, cur_num, den_total, flips, settings):
                _count(res, table, scenario)
                if scenario.harmless:
                    res.mde.append(table.loc[table["gated"], ["tier", "metric", "mde", "support"]])
        results.append(res)
    gated = layout.gated(settings)
    family = {t: int((gated & (layout.labels["tier"] == t)).sum()) for t in TIERS}
    return Calibration(bench.path, len(bench.records), model_name, model, sim.signal, settings, family, results,
                       float(np.mean(bon)), float(np.mean(cons)), time.time() - started)


def _decide_batch(layout: UnitLayout, base_num: np.ndarray, cur_num: np.ndarray, den_total: np.ndarray,
                  flips: np.ndarray, settings: RegressionSettings) -> list[pd.DataFrame]:
    """One sign-flip product for a batch of runs, then the gate's decision for each run."""
    n_runs, n_rec, n_units = base_num.shape
    delta = (cur_num - base_num).transpose(1, 0, 2).reshape(n_rec, n_runs * n_units)
    diff = paired_differences(delta, np.tile(den_total, n_runs), flips)
    out = []
    for j in range(n_runs):
        cols = slice(j * n_units, (j + 1) * n_units)
        one = Differences(diff.est[cols], diff.se[cols], diff.null_t[:, cols])
        out.append(decide(layout, base_num[j], cur_num[j], None, settings, diff=one))
    return out


def _count(res: ScenarioResult, table: pd.DataFrame, scenario: Scenario) -> None:
    failed = {regression_item_id(r.kind, r.domain, r.dimension, r.level, r.metric)
              for r in table[table["regressed"]].itertuples(index=False)}
    res.runs += 1
    res.blocked += bool(failed)
    res.failing_items += len(failed)
    res.items.update(failed)
    res.metrics.update({str(m) for m in table.loc[table["regressed"], "metric"]})
    wanted = scenario.expected_items()
    res.located += bool(wanted) and any(f.startswith(wanted) for f in failed)


def format_calibration(cal: Calibration, top: int = 4) -> str:
    """The report ``rmgap calibrate`` prints."""
    s = cal.settings
    runs = cal.results[0].runs if cal.results else 0
    weights = ", ".join(f"{t} {cal.family[t]} (weight {s.weights.get(t, 0):g})" for t in TIERS)
    lines = [f"rmgap calibrate: {runs} simulated model pairs per scenario on {cal.data} ({cal.records} records)",
             f"model {cal.model_name!r}: {cal.model.describe()}; measured baseline BoN {cal.base_bon:.3f}, "
             f"Consistency {cal.base_consistency:.3f}",
             f"gate: tolerance {s.tolerance:g}, confidence {s.confidence:g}, {s.n_boot} sign flips (seed {s.seed}), "
             f"min_support {s.min_support}; family {sum(cal.family.values())} units: {weights}", "",
             f"{'scenario':<44}{'failed runs':>12}{'rate':>8}  {'95% interval':<16}{'items/run':>10}  located"]
    for r in cal.results:
        lo, hi = r.interval()
        located = f"{r.located}/{r.runs}" if r.scenario.expected_items() else "-"
        lines.append(f"{r.scenario.name:<44}{f'{r.blocked}/{r.runs}':>12}{_pct(r.blocked / max(r.runs, 1)):>8}  "
                     f"{f'[{_pct(lo)}, {_pct(hi)}]':<16}{r.failing_items / max(r.runs, 1):>10.2f}  {located}")
    lines.append("(failed runs: runs with any failing regression[...] item; located: runs in which an item naming "
                 "the change failed, an Avg item for a uniform drop, the cell's own item for a one-cell drop, a "
                 "regression[sensitivity/...] item for a model that follows users less)")
    harmless = [r for r in cal.results if r.scenario.harmless]
    if harmless:
        pooled = ScenarioResult(Scenario("harmless", float("nan")), sum(r.runs for r in harmless),
                                sum(r.blocked for r in harmless))
        lo, hi = pooled.interval()
        lines += ["", f"false-block rate over all harmless runs: {pooled.blocked}/{pooled.runs} = "
                      f"{_pct(pooled.blocked / max(pooled.runs, 1))} [{_pct(lo)}, {_pct(hi)}] "
                      f"(the gate allows {_pct(1 - s.confidence)})"]
    lines += _metric_lines(cal.results)
    lines += ["", "items failed (in how many runs):"]
    for r in cal.results:
        shown = ", ".join(f"{name} {n}" for name, n in r.items.most_common(top)) or "none"
        more = f", ... {len(r.items) - top} more" if len(r.items) > top else ""
        lines.append(f"  {r.scenario.name}: {shown}{more}")
    lines += _mde_lines([r for r in harmless if r.mde])
    lines.append(f"\n{cal.seconds:.0f} s")
    return "\n".join(lines)


def _metric_lines(results: list[ScenarioResult]) -> list[str]:
    """Per scenario, the runs in which some unit of each metric failed: which measure caught the change."""
    if not any(r.metrics for r in results):
        return []
    head = "".join(f"{m:>13}" for m in METRIC_ORDER)
    lines = ["", "runs caught by a failing unit of each metric (the same runs; a run can count in several):",
             f"{'scenario':<44}{head}"]
    for r in results:
        lines.append(f"{r.scenario.name:<44}" + "".join(f"{f'{r.metrics[m]}/{r.runs}':>13}" for m in METRIC_ORDER))
    return lines


def _mde_lines(harmless: list[ScenarioResult]) -> list[str]:
    """Median MDE per tier and metric, one column block per harmless scenario."""
    if not harmless:
        return []
    tables = [pd.concat(r.mde).groupby(["tier", "metric"], sort=False)[["mde", "support"]].median() for r in harmless]
    head = "".join(f"{'rho ' + format(r.scenario.rho, 'g') + ': Pair / BoN / Consistency':>38}" for r in harmless)
    lines = ["", "smallest drop each gated unit can flag (median MDE over the harmless runs):",
             f"{'tier':<17}{'support (groups)':>17}{head}"]
    for tier in TIERS:
        if tier not in tables[0].index.get_level_values(0):
            continue
        support = int(tables[0].loc[tier]["support"].median())
        metrics = (SENSITIVITY_METRIC, BIAS_METRIC) if tier == WHY_TIER else ("Pair", "BoN", "Consistency")
        cols = "".join(f"{' / '.join(_mde(t, tier, m) for m in metrics):>38}" for t in tables)
        if tier == WHY_TIER:
            lines.append(f"{'':<34}" + "".join(f"{'Sensitivity / Style bias (SD)':>38}" for _ in tables))
        lines.append(f"{tier:<17}{support:>17}{cols}")
    return lines


def _mde(table: pd.DataFrame, tier: str, metric: str) -> str:
    try:
        value = float(table.loc[(tier, metric), "mde"])
    except KeyError:
        return "  -  "
    return "  -  " if np.isnan(value) else f"{value:.3f}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def run_from_args(args: argparse.Namespace) -> str:
    """``rmgap calibrate``: resolve the options (cli.py defines them), run, format."""
    from .data import load_benchmark
    from .thresholds import load_thresholds, validate

    bench = load_benchmark(args.data)
    settings = load_thresholds(args.thresholds).regression_settings()
    overrides = {k: v for k, v in dict(tolerance=args.tolerance, confidence=args.confidence,
                                       n_boot=args.n_boot).items() if v is not None}
    if overrides:  # checked as the thresholds file would be (e.g. enough flips for every tier)
        section = {"tolerance": settings.tolerance, "confidence": settings.confidence, "n_boot": settings.n_boot,
                   "seed": settings.seed, "weights": dict(settings.weights), **overrides}
        validate({"regression": section}, "rmgap calibrate options")
        settings = replace(settings, **overrides)
    model = replace(PRESETS[args.model], **{k: v for k, v in dict(
        bon=args.bon, noise=args.noise, record_share=args.record_share, group_share=args.group_share,
        difficulty=args.difficulty).items() if v is not None})
    scenarios = default_scenarios(args.rho or DEFAULT_RHOS, args.drop, args.cell_drop, parse_cell(args.cell),
                                  getattr(args, "follow_drop", [DEFAULT_FOLLOW]))
    try:
        result = calibrate(bench, settings, model, scenarios, runs=args.runs, seed=args.seed, model_name=args.model)
    except ValueError as exc:  # a model the simulator cannot build (e.g. a BoN below chance after the drop)
        raise CalibrationError(f"{exc}. Fix: change --bon, --drop or --cell-drop, or the noise shares.") from None
    return format_calibration(result)


def parse_cell(text: str) -> tuple[str, str, str]:
    """"All/Conciseness=terse" -> ("All", "Conciseness", "terse"), with a fix for every mistake."""
    from .errors import did_you_mean

    domain, _, rest = text.partition("/")
    dim, _, level = rest.partition("=")
    if domain not in (*DOMAINS, "All"):
        raise CalibrationError(f"--cell {text!r}: unknown domain {domain!r}.{did_you_mean(domain, [*DOMAINS, 'All'])} "
                               "Fix: write Domain/Dimension=level, e.g. All/Conciseness=terse.")
    if dim not in DIMENSIONS:
        raise CalibrationError(f"--cell {text!r}: unknown dimension {dim!r}.{did_you_mean(dim, DIMENSIONS)} "
                               "Fix: write Domain/Dimension=level, e.g. All/Conciseness=terse.")
    if level not in DIMENSIONS[dim]:
        raise CalibrationError(f"--cell {text!r}: {dim} has no level {level!r}.{did_you_mean(level, DIMENSIONS[dim])}"
                               f" Fix: use one of {', '.join(DIMENSIONS[dim])}.")
    return domain, dim, level
