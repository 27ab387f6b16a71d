"""Why a reward model fails: its style bias and its preference sensitivity.

Pure, vectorised estimators over the outcome table (``metrics.outcome_table``:
one row per item, scores ``s0..s3`` in response-key order) plus every
response's profile (``response_levels(bench)``: records x 4 x 5 level indices,
0..4 in ``data.DIMENSIONS`` order).

Notation: record r, user g (a prompt group), prompt p, response j; s[r,g,p,j]
a reward. RMGAP writes each record so that every response is the one right
answer (the winner) for exactly one of its 4 users: w(g) is a permutation.

- **Within-record standardised score** z = (s - mean_j s) / sd_r, with sd_r
  the root mean square of the prompt-centred scores over the record's 48
  pairs: the SD of reward among one prompt's four answers, pooled over the
  record's 12 prompts. z does not change under any shift or positive scale of
  the scores (per record), so reward models of different scales compare.
  Every estimate below is computed on z (``value``: SD units) and on the raw
  scores (``raw``: the scorer's own units).
- **Style bias** beta (per dimension, per level): pooled least squares of the
  reward on the five level indices, using only the 3 responses the prompt's
  user did NOT ask for, each centred on their mean under that prompt (the
  fixed-effects "within" estimator with one effect per prompt; Wooldridge,
  Econometric Analysis of Cross Section and Panel Data, 2nd ed. 2010, 10.5).
  A response's profile is the same under all prompts, so the normal
  equations collapse to per-record sums: beta = (sum_r X_r'X_r)^-1 sum_r X_r'y_r.
  A scorer ``b * level + noise`` gives raw = b.
- **Preference sensitivity** delta_g (per user): how much more user g's
  response w(g) beats another response w(h) under g's prompts than under the
  prompts of a user n who wants neither, averaged over the 6 such (h, n)
  pairs: a difference in differences (Angrist & Pischke, Mostly Harmless
  Econometrics, 2009, 5.2). The first difference (within a prompt) removes
  prompt and record effects; the second removes everything the two responses
  carry whoever asks (style, bias, quality). A prompt-blind scorer gives
  exactly 0; a scorer that adds d to the wanted response gives raw = d.
  Reported overall, per domain, per (dimension, level) of the wanted response,
  and as a trend: the least-squares slope of delta_g on the wanted response's
  level index (does the model follow terse-loving users as well as
  verbose-loving ones?).

Separability: the bias fit never sees a wanted response and the sensitivity
contrast cancels each response's own effect, so neither estimate moves with
the other effect, however the sensitivity varies by user. RMGAP's design
makes this possible: with 4 users each wanting a different response, every
response is unwanted under 3 users, and every pair (w(g), w(h)) has 2
neutral users n. Records that break the design (a response wanted by two
users) or hold a NaN/inf score are left out; ``support`` counts what was used.
Records without profiles count only towards the overall and domain
sensitivity.

Intervals: 95% percentile bootstrap over records with ``metrics.bootstrap_counts``
(stratified by domain, seeded): with the same ``n_boot`` and ``seed`` these
are the very draws behind the other metrics' intervals, read at slightly
expanded tails for small samples (``_expansion``). Every estimator is a
ratio, a slope or a 5x5 solve of per-record sums, so the bootstrap is one
matrix product and one batched solve. ``p`` is a two-sided p-value of 0 from
the same draws, for ``findings``. Coverage and the false-claim rate are
measured by ``benchmarks/sim_bias.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from .data import DIMENSIONS, DOMAINS, N_GROUPS, N_PROMPTS, N_RESPONSES, Benchmark
from .metrics import ALL, bootstrap_counts, record_domains

BIAS_COLUMNS = ["kind", "domain", "dimension", "level", "value", "lo", "hi", "unit", "raw", "raw_lo", "raw_hi",
                "raw_unit", "support", "p"]
_ESTIMATE_COLUMNS = ["kind", "domain", "dimension", "level", "value", "unit", "raw", "raw_unit", "support"]
_DIMS = list(DIMENSIONS)
_ITEMS = N_GROUPS * N_PROMPTS
_ZERO = 1e-9  # SD: rounding error of a prompt-blind scorer's sensitivity, not an effect
_SINGULAR = 1e-9  # smallest/largest eigenvalue of the pooled design below this: coefficients not identified


def response_levels(bench: Benchmark) -> np.ndarray:
    """(records, 4, 5) float level indices 0..4, responses in key order; NaN where a record has no profiles."""
    out = np.full((len(bench.records), N_RESPONSES, len(_DIMS)), np.nan)
    for r, rec in enumerate(bench.records):
        if rec.profiles:
            out[r] = [[DIMENSIONS[d].index(rec.profiles[k][d]) for d in _DIMS] for k in rec.keys]
    return out


def _scores(out: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """s as (records, groups, prompts, responses), wanted response per group, and the records used."""
    if len(out) % _ITEMS:
        raise ValueError(f"an outcome table holds {_ITEMS} items per record; got {len(out)} rows")
    s = out[[f"s{j}" for j in range(N_RESPONSES)]].to_numpy(np.float64).reshape(-1, N_GROUPS, N_PROMPTS, N_RESPONSES)
    wanted = out["winner_idx"].to_numpy().reshape(-1, N_GROUPS, N_PROMPTS)[:, :, 0]
    design = (np.sort(wanted, axis=1) == np.arange(N_RESPONSES)).all(axis=1)  # each response wanted once
    used = np.isfinite(s).all(axis=(1, 2, 3)) & design
    return np.where(used[:, None, None, None], s, 0.0), wanted, used


def _centred(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prompt-centred raw scores c and their within-record standardisation z (0 where a record is constant)."""
    c = s - s.mean(axis=-1, keepdims=True)
    sd = np.sqrt((c ** 2).mean(axis=(1, 2, 3)))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sd[:, None, None, None] > 0, c / sd[:, None, None, None], 0.0)
    return c, z


def standardized_scores(out: pd.DataFrame) -> np.ndarray:
    """(n_items, 4) within-record standardised scores z = (s - prompt mean) / sd_r, rows as ``out``.

    sd_r is the root mean square of the prompt-centred scores of record r (its
    48 pairs). NaN for records with a NaN/inf score or whose winners are not a
    permutation of the responses; 0 for a record whose scores are all equal.
    """
    s, _, used = _scores(out)
    z = _centred(s)[1]
    z[~used] = np.nan
    return z.reshape(-1, N_RESPONSES)


def _expansion(records: np.ndarray, strata: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: (degrees of freedom, SD inflation, two-sided tail of the expanded 95% percentile interval).

    A percentile interval is too narrow in small samples: it acts like z * sd with
    a divisor-n sd where t_{df} * s is right. The expanded percentile interval
    (Hesterberg, What Teachers Should Know About the Bootstrap, The American
    Statistician 69(4), 2015) reads the draws at the tail where
    z = sqrt(n / df) * t_{0.975, df}; df = records - strata, as the bootstrap
    resamples within each domain. 26 records: 2.4% tails instead of 2.5%
    ... 97.5%; at release size the change is negligible.
    """
    from scipy.special import ndtr, stdtrit  # a second of import on a busy CPU: only when a table is built

    df = (records - strata).astype(np.float64)
    ok = df >= 1
    inflate = np.where(ok, np.sqrt(records / np.where(ok, df, 1)), np.inf)
    z = inflate * stdtrit(np.where(ok, df, 1), 0.975)
    return df, inflate, np.where(ok, 2 * ndtr(-z), 0.0)


def _interval(draws: np.ndarray, tail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column at its own two-sided tail (numpy's linear rule); NaN draws ignored."""
    d = np.sort(draws, axis=0)  # NaN sorts last
    n = np.isfinite(draws).sum(axis=0)
    cols = np.arange(d.shape[1])

    def quantile(q: np.ndarray) -> np.ndarray:
        pos = q * np.maximum(n - 1, 0)
        below = np.floor(pos).astype(int)
        above = np.minimum(below + 1, np.maximum(n - 1, 0))
        frac = pos - below
        return np.where(n > 0, d[below, cols] * (1 - frac) + d[above, cols] * frac, np.nan)

    return quantile(tail / 2), quantile(1 - tail / 2)


def _p_value(value: np.ndarray, draws: np.ndarray, df: np.ndarray, inflate: np.ndarray) -> np.ndarray:
    """Two-sided p-value of 0 per column: Student t on the bootstrap SE, inflated as in ``_expansion``.

    Counting draws beyond 0 cannot resolve p below 2 / (n_boot + 1), which Holm's
    correction over the findings needs; the t tail can.
    """
    from scipy.special import stdtr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: nothing identified in any draw
        se = np.nanstd(draws, axis=0, ddof=1) * inflate
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(np.abs(value) <= _ZERO, 0.0, np.abs(value) / se)  # se = 0, value != 0: t = inf, p = 0
    p = 2 * stdtr(np.maximum(df, 1), -t)
    return np.where(np.isnan(value) | (df < 1), np.nan, p)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched solve of (..., 5, 5) X = (..., 5, m); NaN where the pooled design is (near) singular."""
    ev = np.linalg.eigvalsh(a)
    ok = ev[..., 0] > _SINGULAR * np.maximum(ev[..., -1], 1e-300)
    safe = np.where(ok[..., None, None], a, np.eye(a.shape[-1]))
    return np.where(ok[..., None, None], np.linalg.solve(safe, b), np.nan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _slope(v: np.ndarray) -> np.ndarray:
    """Least-squares slope from sums (..., [n, Sx, Sxx, Sy, Sxy]); NaN when x does not vary."""
    n, sx, sxx, sy, sxy = np.moveaxis(v, -1, 0)
    den = n * sxx - sx * sx
    return np.where(den > 1e-12 * np.maximum(n * sxx, 1), _ratio(n * sxy - sx * sy, den), np.nan)


_K = len(_DIMS)
_Row = tuple[dict, np.ndarray, np.ndarray]  # (labels and point estimates, standardised draws, raw draws)


@dataclass(frozen=True)
class _Block:
    """Per-record sums behind some rows, and how to turn (total, bootstrap draws of the total) into them."""

    sums: np.ndarray  # (records, k)
    support: int
    rows: Callable[[np.ndarray, np.ndarray], list[_Row]]  # (sums over records (k,), draws (B, k))


def _bias_rows(name: str, n: int, tot: np.ndarray, draws: np.ndarray) -> list[_Row]:
    """Sums [X'X (25), X'y standardised (5), X'y raw (5)] -> one row per dimension."""
    def solve(v: np.ndarray) -> np.ndarray:  # (..., 5, 2): standardised, raw
        return _solve(v[..., :_K * _K].reshape(*v.shape[:-1], _K, _K),
                      v[..., _K * _K:].reshape(*v.shape[:-1], 2, _K).swapaxes(-1, -2))

    value, d = solve(tot), solve(draws)
    return [_row("bias", name, dim, None, value[k, 0], d[:, k, 0], value[k, 1], d[:, k, 1], n, "/level")
            for k, dim in enumerate(_DIMS)]


def _sensitivity_rows(label: tuple, n: int, tot: np.ndarray, draws: np.ndarray) -> list[_Row]:
    """Sums [standardised, raw, users] -> the mean over users."""
    return [_row("sensitivity", *label, _ratio(tot[0], tot[2]), _ratio(draws[:, 0], draws[:, 2]),
                 _ratio(tot[1], tot[2]), _ratio(draws[:, 1], draws[:, 2]), n, "")]


def _trend_rows(dim: str, n: int, tot: np.ndarray, draws: np.ndarray) -> list[_Row]:
    """Sums [n, Sx, Sxx, Sy, Sxy (standardised), Sy, Sxy (raw)] -> the slope of sensitivity on the level."""
    z, raw = [0, 1, 2, 3, 4], [0, 1, 2, 5, 6]
    return [_row("sensitivity_trend", ALL, dim, None, _slope(tot[z]), _slope(draws[:, z]), _slope(tot[raw]),
                 _slope(draws[:, raw]), n, "/level")]


# (g, h, n): user g's response vs user h's, under g's prompts and under a user n who wants neither.
_DID = np.array([(g, h, n) for g in range(N_GROUPS) for h in range(N_GROUPS) for n in range(N_GROUPS)
                 if h != g and n not in (g, h)]).T


def _sensitivity(e: np.ndarray) -> np.ndarray:
    """(r, g): difference in differences of margins, averaged over the 6 (h, n) pairs per user g.

    Margins first, then their difference: a prompt-blind scorer's identical rows give exactly 0.
    """
    g, h, n = _DID
    margin = e[:, :, :, None] - e[:, :, None, :]  # [r, a, x, y]: response x over y under user a's prompts
    did = margin[:, g, g, h] - margin[:, n, g, h]
    return did.reshape(len(e), N_GROUPS, -1).mean(axis=2)


_UNWANTED = 1.0 - np.eye(N_GROUPS)  # [g, h]: under user g's prompts, user h's response is one g did not ask for


def _by_user(v: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """E[r, g, h]: mean over user g's 3 prompts of the score of the response user h wants."""
    by_group = v.mean(axis=2)  # (r, g, j)
    return np.take_along_axis(by_group, np.repeat(wanted[:, None, :], N_GROUPS, axis=1), axis=2)


def _bias_blocks(e, wl, used, strata) -> list[_Block]:
    """Per stratum: the within fit's sums over the responses each prompt's user did not ask for."""
    have = used & np.isfinite(wl).all(axis=(1, 2))
    x = np.where(have[:, None, None], wl, 0.0)[:, None, :, :] * _UNWANTED[None, :, :, None]  # (r, g, h, d)
    xc = (x - x.sum(axis=2, keepdims=True) / (N_GROUPS - 1)) * _UNWANTED[None, :, :, None]
    sums = np.concatenate([np.einsum("rghd,rghe->rde", xc, xc).reshape(len(xc), -1),
                           *[np.einsum("rghd,rgh->rd", xc, v) for v in e]], axis=1)
    return [_Block(sums * (mask & have)[:, None], n, partial(_bias_rows, name, n))
            for name, mask in strata if (n := int((mask & have).sum()))]


def _sensitivity_blocks(e, wl, used, strata) -> list[_Block]:
    """Per set of users (domain; level of the wanted response): sums of their sensitivity; per dimension the trend."""
    sz, sr = [_sensitivity(v) for v in e]
    units = [((name, None, None), np.repeat(mask[:, None], N_GROUPS, axis=1)) for name, mask in strata]
    units += [((ALL, dim, lvl), wl[:, :, d] == i) for d, dim in enumerate(_DIMS)
              for i, lvl in enumerate(DIMENSIONS[dim])]
    blocks = []
    for label, mask in units:
        m = (mask & used[:, None]).astype(np.float64)
        if m.any():
            sums = np.stack([(sz * m).sum(1), (sr * m).sum(1), m.sum(1)], axis=1)
            blocks.append(_Block(sums, int(m.sum()), partial(_sensitivity_rows, label, int(m.sum()))))
    for d, dim in enumerate(_DIMS):
        m = (np.isfinite(wl[:, :, d]) & used[:, None]).astype(np.float64)
        if m.any():
            x = np.nan_to_num(wl[:, :, d])
            sums = np.stack([c.sum(1) for c in (m, m * x, m * x * x, m * sz, m * x * sz, m * sr, m * x * sr)], axis=1)
            blocks.append(_Block(sums, int(m.sum()), partial(_trend_rows, dim, int(m.sum()))))
    return blocks


@dataclass(frozen=True)
class BiasDraws:
    """Point estimates and their bootstrap draws, before intervals: what a paired comparison needs.

    Two runs over the same items, given the same ``counts``, have rows in the same
    order (when the same rows are estimable), so current minus baseline per draw is
    the paired bootstrap of a difference.
    """

    rows: pd.DataFrame  # BIAS_COLUMNS without the intervals and p
    z: np.ndarray  # (n_boot, rows): standardised draws
    raw: np.ndarray  # (n_boot, rows): raw draws
    records: np.ndarray  # (rows,): records that contribute to each row
    strata: np.ndarray  # (rows,): domains those records span


def bias_draws(out: pd.DataFrame, levels: np.ndarray, counts: np.ndarray) -> BiasDraws:
    """The estimates of ``bias_table`` and their draws under ``counts`` (n_boot, records), e.g. from
    ``metrics.bootstrap_counts``. Raises ValueError when ``levels`` does not match the records of ``out``."""
    s, wanted, used = _scores(out)
    if levels.shape != (len(s), N_RESPONSES, _K):
        raise ValueError(f"levels must be ({len(s)}, {N_RESPONSES}, {_K}), got {levels.shape}")
    e = [_by_user(v, wanted) for v in reversed(_centred(s))]  # standardised, raw
    wl = np.take_along_axis(levels, wanted[:, :, None], axis=1)  # (r, h, dim): levels of the response h wants
    doms = record_domains(out)
    strata = [(ALL, np.ones(len(s), bool)), *[(d, doms == d) for d in DOMAINS if (doms == d).any()]]
    blocks = [*_bias_blocks(e, wl, used, strata), *_sensitivity_blocks(e, wl, used, strata)]
    stacked = np.concatenate([b.sums for b in blocks], axis=1) if blocks else np.zeros((len(s), 0))
    total, boot = stacked.sum(0), counts @ stacked  # one matrix product
    edges = np.cumsum([0, *(b.sums.shape[1] for b in blocks)])
    rows: list[_Row] = []
    sizes: list[tuple[int, int]] = []  # per row: records that contribute, and how many domains they span
    for b, lo, hi in zip(blocks, edges[:-1], edges[1:]):
        new = b.rows(total[lo:hi], boot[:, lo:hi])
        contributes = (b.sums != 0).any(axis=1)
        rows += new
        sizes += [(int(contributes.sum()), len(set(doms[contributes])))] * len(new)
    empty = np.zeros((len(counts), 0))
    return BiasDraws(pd.DataFrame([r[0] for r in rows], columns=_ESTIMATE_COLUMNS),
                     np.stack([r[1] for r in rows], axis=1) if rows else empty,
                     np.stack([r[2] for r in rows], axis=1) if rows else empty,
                     np.array([n for n, _ in sizes], dtype=int), np.array([h for _, h in sizes], dtype=int))


def bias_table(out: pd.DataFrame, levels: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
               counts: np.ndarray | None = None) -> pd.DataFrame:
    """Style bias and preference sensitivity with 95% intervals, one tidy table (``BIAS_COLUMNS``).

    ``out``: ``metrics.outcome_table`` (12 rows per record, table order).
    ``levels``: ``response_levels(bench)`` for the same records, (records, 4, 5).
    Rows, ``domain`` = All or a domain:

    - ``bias`` (domain, dimension): change of reward per level of the dimension,
      towards the last level (Conciseness: towards verbose), all else equal.
    - ``sensitivity`` (domain) and (All, dimension, level of the wanted
      response): how much more the wanted response leads when its user asks.
    - ``sensitivity_trend`` (All, dimension): change of sensitivity per level
      of the wanted response.

    ``value``/``lo``/``hi`` are in SD of within-prompt reward (``unit``),
    ``raw``/``raw_lo``/``raw_hi`` in the scorer's own units (``raw_unit``).
    ``support``: records (bias) or users, i.e. prompt groups (sensitivity), used.
    ``p``: two-sided p-value of value = 0, which ``findings`` corrects for the
    number of claims. Rows without data are left out; NaN marks an estimate the
    data cannot identify (e.g. every record has the same four profiles).
    ``counts``: the (n_boot, records) resampling counts if the caller already drew them
    (default: ``metrics.bootstrap_counts(record_domains(out), n_boot, seed)``, the metric
    table's own draws, so ``evaluation`` draws them once for both tables).
    Raises ValueError when ``levels`` does not match the records of ``out``.
    """
    if counts is None:
        counts = bootstrap_counts(record_domains(out), n_boot, seed)
    d = bias_draws(out, levels, counts)
    table = d.rows.reindex(columns=BIAS_COLUMNS)
    if len(table):
        df, inflate, tail = _expansion(d.records, d.strata)
        (table["lo"], table["hi"]), (table["raw_lo"], table["raw_hi"]) = _interval(d.z, tail), _interval(d.raw, tail)
        table["p"] = _p_value(table["value"].to_numpy(np.float64), d.z, df, inflate)
    return table


def _row(kind, domain, dim, level, z, zdraws, raw, rdraws, support, unit) -> _Row:
    labels = dict(kind=kind, domain=domain, dimension=dim, level=level, value=float(z), unit=f"SD{unit}",
                  raw=float(raw), raw_unit=f"score{unit}", support=int(support))
    return labels, zdraws, rdraws
