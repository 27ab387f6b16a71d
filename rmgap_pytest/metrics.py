"""RMGAP metrics as pure functions over one table.

``outcome_table`` turns scores into one row per item (wins, best-of-N,
ranking, validity). Everything else reads only that table:

- ``reference_metrics``: the reference ``metrics.json`` (Pair, BoN,
  Consistency per domain and their unweighted Avg), DESIGN.md section 2.
- ``metric_table``: the same metrics per domain and per category-profile cell,
  preference gaps and prompt blindness, each with a 95% percentile-bootstrap
  interval that resamples records (stratified by domain, seeded).
- ``compare``: a paired, item-by-item comparison of two runs on the same data
  (family-wise; the statistics live in ``regression.py``).

Every ratio metric is sum(numerator) / sum(denominator) over records, so the
bootstrap is one matrix product: (draws x records) counts times
(records x units) sums. That keeps the full release (13,164 items) at well
under a second per thousand draws.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import DIMENSIONS, DOMAINS, N_GROUPS, N_PROMPTS

METRICS: tuple[str, ...] = ("Pair", "BoN", "Consistency")
ITEMS_PER_RECORD = N_GROUPS * N_PROMPTS
ALL = "All"  # the cross-domain cells and blindness
AVG = "Avg"  # the unweighted mean over domains, as the reference
TABLE_COLUMNS = ["kind", "domain", "dimension", "level", "metric", "value", "lo", "hi", "support", "items"]


def outcome_table(items: pd.DataFrame, scores: np.ndarray, keys: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Per item: wins over the 3 losers, best-of-N, the ranking, validity.

    ``scores`` is (n_items, 4) in response-key order ``keys[i]``. An item with
    any NaN/inf score is invalid: 0 wins, not best-of-N, its group not
    consistent (the reference silently drops such items, which inflates
    accuracy). Ties are losses.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(items)
    if scores.shape != (n, 4):
        raise ValueError(f"expected scores of shape ({n}, 4), got {scores.shape}")
    invalid = ~np.isfinite(scores).all(axis=1)
    widx = items["winner_idx"].to_numpy()
    w = scores[np.arange(n), widx]
    beats = (w[:, None] > scores)  # winner vs each response; vs itself is False
    wins = np.where(invalid, 0, beats.sum(axis=1))
    # Rank by score descending, then key ascending (the reference's tie-break).
    key_arr = np.asarray(keys, dtype=object) if n else np.zeros((0, 4), object)
    key_rank = np.argsort(np.argsort(key_arr.astype(str), axis=1), axis=1) if n else np.zeros((0, 4), int)
    safe = np.where(np.isfinite(scores), scores, -np.inf)
    order = np.lexsort((key_rank, -safe), axis=-1)
    ranked = np.take_along_axis(key_arr, order, axis=1)
    out = items.copy()
    out["wins"] = wins.astype(np.int64)
    out["bon"] = wins == 3
    out["invalid"] = invalid
    out["ranking"] = [">".join(r) for r in ranked]
    out["top"] = ranked[:, 0] if n else []
    losers = np.where(np.arange(4)[None, :] == widx[:, None], -np.inf, safe)
    out["margin"] = np.where(invalid, np.nan, losers.max(axis=1) - w)  # > 0: a loser beat the winner
    for j in range(4):
        out[f"s{j}"] = scores[:, j]
    return out


def group_consistency(out: pd.DataFrame) -> np.ndarray:
    """Per (record, group), in table order: the 3 prompts' rankings agree and all are valid."""
    rank = out["ranking"].to_numpy().reshape(-1, N_PROMPTS)
    bad = out["invalid"].to_numpy().reshape(-1, N_PROMPTS).any(axis=1)
    same = (rank[:, 0] == rank[:, 1]) & (rank[:, 1] == rank[:, 2])
    return same & ~bad


def prompt_blindness(out: pd.DataFrame) -> np.ndarray:
    """Per record: the same response tops all 12 prompts (the model ignored the user)."""
    top = out["top"].to_numpy().reshape(-1, ITEMS_PER_RECORD)
    bad = out["invalid"].to_numpy().reshape(-1, ITEMS_PER_RECORD).any(axis=1)
    return (top == top[:, :1]).all(axis=1) & ~bad


def reference_metrics(out: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The reference ``metrics.json``: {metric: {domain: value, ..., "Avg": value}}."""
    res: dict[str, dict[str, float]] = {m: {} for m in METRICS}
    cons = group_consistency(out)
    gdom = out["domain"].to_numpy()[::N_PROMPTS]
    for d in [d for d in DOMAINS if (out["domain"] == d).any()]:
        sel = out["domain"].to_numpy() == d
        res["Pair"][d] = float(out["wins"].to_numpy()[sel].sum() / (3 * sel.sum()))
        res["BoN"][d] = float(out["bon"].to_numpy()[sel].mean())
        res["Consistency"][d] = float(cons[gdom == d].mean())
    for m in METRICS:
        res[m][AVG] = float(np.mean(list(res[m].values()))) if res[m] else float("nan")
    return res


@dataclass(frozen=True)
class _Units:
    """Sets of items ("units": a domain, a cell) with per-record sums for each metric."""

    labels: list[tuple[str, str, str, str | None, str | None]]  # (kind, domain, dimension, level) + pad
    num: dict[str, np.ndarray]  # metric -> (records, units)
    den: dict[str, np.ndarray]


def unit_masks(items: pd.DataFrame) -> tuple[list[tuple], np.ndarray]:
    """The domains and cells present, as labels (kind, domain, dimension, level) and a
    (records, 12, units) 0/1 mask of the items in each; also used by ``regression.py``."""
    n_rec = len(items) // ITEMS_PER_RECORD
    dom = items["domain"].to_numpy()
    masks: list[np.ndarray] = []
    labels: list[tuple] = []
    for d in DOMAINS:
        if (dom == d).any():
            masks.append(dom == d)
            labels.append(("domain", d, None, None))
    for d in [*DOMAINS, ALL]:
        in_dom = np.ones(len(items), bool) if d == ALL else dom == d
        if not in_dom.any():
            continue
        for dim, levels in DIMENSIONS.items():
            col = items[dim].to_numpy()
            for lvl in levels:
                m = in_dom & (col == lvl)
                if m.any():
                    masks.append(m)
                    labels.append(("cell", d, dim, lvl))
    return labels, np.stack(masks, axis=1).astype(np.float64).reshape(n_rec, ITEMS_PER_RECORD, -1)


def _units(out: pd.DataFrame) -> _Units:
    n_rec = len(out) // ITEMS_PER_RECORD
    labels, mask = unit_masks(out)
    wins = out["wins"].to_numpy(np.float64).reshape(n_rec, ITEMS_PER_RECORD)
    bon = out["bon"].to_numpy(np.float64).reshape(n_rec, ITEMS_PER_RECORD)
    cons = group_consistency(out).astype(np.float64).reshape(n_rec, N_GROUPS)
    gmask = mask[:, ::N_PROMPTS, :]  # a group's 3 prompts share its winner, hence its cells
    items = mask.sum(axis=1)
    num = {"Pair": np.einsum("ri,riu->ru", wins, mask), "BoN": np.einsum("ri,riu->ru", bon, mask),
           "Consistency": np.einsum("rg,rgu->ru", cons, gmask)}
    den = {"Pair": 3 * items, "BoN": items, "Consistency": gmask.sum(axis=1)}
    return _Units(labels, num, den)


def bootstrap_counts(domains: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, records) resampling counts, stratified by domain so each domain keeps its size."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, len(domains)))
    for d in DOMAINS:
        idx = np.flatnonzero(domains == d)
        if len(idx):
            counts[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1 / len(idx)), size=n_boot)
    return counts


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _interval(draws: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column (numpy's linear rule, NaN draws ignored); all-NaN columns give NaN.

    Columns without NaN go through one vectorised ``np.percentile``: ``nanpercentile`` loops
    over every column in Python once any column has a NaN, and for a NaN-free column it
    computes the same numbers (tests/test_metrics.py checks the bytes).
    """
    tail = 100 * (1 - confidence) / 2
    q = [tail, 100 - tail]
    nan = np.isnan(draws).any(axis=0)
    lo, hi = np.empty(draws.shape[1]), np.empty(draws.shape[1])
    if not nan.all():
        lo[~nan], hi[~nan] = np.percentile(draws[:, ~nan], q, axis=0)
    if nan.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: tiny cells in a resample
            lo[nan], hi[nan] = np.nanpercentile(draws[:, nan], q, axis=0)
    return lo, hi


def record_domains(out: pd.DataFrame) -> np.ndarray:
    return out["domain"].to_numpy()[::ITEMS_PER_RECORD]


def key_part(value: object) -> object:
    """A table cell as part of a lookup key: NaN (pandas' missing dimension or level of a domain row) -> None.

    NaN equals another NaN only when it is the same object, and a pickle (the evaluation xdist
    processes share) makes each its own: a key holding NaN would miss, or split one unit in two.
    """
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def metric_table(out: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, min_support: int = 1,
                 counts: np.ndarray | None = None) -> pd.DataFrame:
    """Every metric with its interval, as one tidy table (see ``TABLE_COLUMNS``).

    kind: ``domain`` (domain = Chat..Safety or Avg), ``cell``, ``gap`` (metric
    "BoN gap"), ``blindness``. ``support`` counts prompt groups (records for
    blindness). Gaps use only levels whose support reaches ``min_support``.
    ``counts``: the (n_boot, records) resampling counts when the caller already drew
    them (``bootstrap_counts(record_domains(out), n_boot, seed)``, which is the default),
    so the bias table's intervals use the same draws without drawing them twice.
    """
    units = _units(out)
    if counts is None:
        counts = bootstrap_counts(record_domains(out), n_boot, seed)
    rows: list[dict] = []
    dom_cols = [i for i, lab in enumerate(units.labels) if lab[0] == "domain"]
    bon_draws = None
    for metric in METRICS:
        num, den = units.num[metric], units.den[metric]
        value = _ratio(num.sum(0), den.sum(0))
        draws = _ratio(counts @ num, counts @ den)
        lo, hi = _interval(draws)
        groups = units.den["Consistency"].sum(0)
        items = units.den["BoN"].sum(0)
        for u, (kind, d, dim, lvl) in enumerate(units.labels):
            rows.append(dict(kind=kind, domain=d, dimension=dim, level=lvl, metric=metric, value=value[u],
                             lo=lo[u], hi=hi[u], support=int(groups[u]), items=int(items[u])))
        avg_draws = draws[:, dom_cols].mean(axis=1)
        alo, ahi = _interval(avg_draws[:, None])
        rows.append(dict(kind="domain", domain=AVG, dimension=None, level=None, metric=metric,
                         value=value[dom_cols].mean(), lo=alo[0], hi=ahi[0], support=int(groups[dom_cols].sum()),
                         items=int(items[dom_cols].sum())))
        if metric == "BoN":
            bon_draws, bon_value, bon_support, bon_items = draws, value, groups, items
    rows += _gap_rows(units.labels, bon_value, bon_draws, bon_support, bon_items, min_support)
    rows += _blindness_rows(out, counts)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _gap_rows(labels, value, draws, support, items, min_support: int) -> list[dict]:
    """Max minus min BoN over a dimension's levels with enough support."""
    rows = []
    for d in [*DOMAINS, ALL]:
        for dim in DIMENSIONS:
            cols = [u for u, lab in enumerate(labels)
                    if lab[0] == "cell" and lab[1] == d and lab[2] == dim and support[u] >= min_support]
            if len(cols) < 2:
                continue
            v = value[cols]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                gap_draws = np.nanmax(draws[:, cols], axis=1) - np.nanmin(draws[:, cols], axis=1)
            lo, hi = _interval(gap_draws[:, None])
            rows.append(dict(kind="gap", domain=d, dimension=dim, level=f"{labels[cols[int(np.argmax(v))]][3]}"
                             f" vs {labels[cols[int(np.argmin(v))]][3]}", metric="BoN gap",
                             value=float(v.max() - v.min()), lo=lo[0], hi=hi[0],
                             support=int(min(support[cols])), items=int(items[cols].sum())))
    return rows


def _blindness_rows(out: pd.DataFrame, counts: np.ndarray) -> list[dict]:
    blind = prompt_blindness(out).astype(np.float64)
    rdom = record_domains(out)
    names = [*[d for d in DOMAINS if (rdom == d).any()], ALL]
    sel = np.stack([np.ones_like(blind) if d == ALL else (rdom == d).astype(np.float64) for d in names], axis=1)
    both = counts @ np.concatenate([blind[:, None] * sel, sel], axis=1)  # whole numbers: exact, one product
    draws = _ratio(both[:, :len(names)], both[:, len(names):])
    lo, hi = _interval(draws)
    rows = []
    for k, d in enumerate(names):
        rows.append(dict(kind="blindness", domain=d, dimension=None, level=None, metric="Prompt blindness",
                         value=float((blind * sel[:, k]).sum() / sel[:, k].sum()), lo=lo[k], hi=hi[k],
                         support=int(sel[:, k].sum()), items=int(sel[:, k].sum()) * ITEMS_PER_RECORD))
    return rows


# One row per regression unit (``regression.compare_outcomes``). lo/hi: the family-wise (simultaneous)
# interval of current - baseline; mde: the smallest drop the unit can flag; gated: in the tested family.
COMPARE_COLUMNS = ["kind", "domain", "dimension", "level", "metric", "baseline", "current", "diff", "lo", "hi",
                   "support", "regressed", "mde", "gated", "tier", "se", "critical", "tolerance"]


def compare(base: pd.DataFrame, cur: pd.DataFrame, *, tolerance: float | None = None,
            confidence: float | None = None, n_boot: int | None = None, seed: int | None = None,
            min_support: int | None = None) -> pd.DataFrame:
    """Paired comparison of two outcome tables over the same items: ``regression.compare_outcomes``.

    Kept here for callers of the first API; settings left out take the
    thresholds defaults. The gate and ``rmgap compare`` pass their thresholds'
    ``regression_settings()`` to ``regression.compare_outcomes`` directly.
    """
    from dataclasses import replace

    from .regression import compare_outcomes
    from .thresholds import Thresholds

    given = dict(tolerance=tolerance, confidence=confidence, n_boot=n_boot, seed=seed, min_support=min_support)
    settings = replace(Thresholds().regression_settings(), **{k: v for k, v in given.items() if v is not None})
    return compare_outcomes(base, cur, settings)
