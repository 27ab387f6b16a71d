"""Style bias and preference sensitivity as regression units of the family-wise comparison.

``familywise`` tests any difference that is a sum of per-record numbers over
a fixed denominator. Both of ``bias.py``'s estimates are, once the design is
fixed by the data (not by the scores):

- **Preference sensitivity** (overall and per domain): per record, the sum of
  its 4 users' difference in differences of standardised scores; the
  denominator counts the users (4 per record). The value is ``bias_table``'s
  ``sensitivity`` row.
- **Style bias** (per dimension, all domains): beta = A^-1 sum_r X_r'y_r with
  A = sum_r X_r'X_r built from the profiles alone, so a run's coefficient is a
  sum of per-record vectors A^-1 X_r'y_r, and current minus baseline is the
  sum of their differences: a linear statistic, exactly what the sign flips
  need. Denominator 1/records, so the numerators sum to beta.

The family is fixed before any score is seen (``UnitLayout``'s rule): the
units, the records in them and A come from the item table. A record whose
scores include NaN/inf in a run counts as giving no signal in that run
(sensitivity 0, no contribution to X'y), as an invalid item counts as wrong
for BoN: invalid scores never vanish, and never make a model look better
than a model that scored them. Without invalid scores the units reproduce
``bias_table``'s standardised values exactly (tested).

Two runs of a record are exchangeable under a harmless change, and each
record's contribution depends on that record's scores alone, so swapping the
two runs of a record flips the sign of its delta: the test is as exact for
these units as for the BoN ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import DIMENSIONS, DOMAINS, N_GROUPS, N_PROMPTS, N_RESPONSES
from .metrics import ALL, ITEMS_PER_RECORD

TIER = "bias_sensitivity"
BIAS_METRIC, SENSITIVITY_METRIC = "Style bias", "Sensitivity"
WHY_KINDS = ("bias", "sensitivity")
LABEL_COLUMNS = ["kind", "domain", "dimension", "level", "metric", "support", "tier"]
_DIMS = list(DIMENSIONS)
_K = len(_DIMS)
_SINGULAR = 1e-9  # as bias.py: smallest/largest eigenvalue of A below this and the coefficients are not identified
_UNWANTED = 1.0 - np.eye(N_GROUPS)  # [g, h]: under user g's prompts, user h's response was not asked for
# (g, h, n): user g's response vs user h's, under g's prompts and under a user n who wants neither (bias.py).
_G, _H, _N = np.array([(g, h, n) for g in range(N_GROUPS) for h in range(N_GROUPS) for n in range(N_GROUPS)
                       if h != g and n not in (g, h)]).T


def wanted_levels(items: pd.DataFrame) -> np.ndarray:
    """(records, 4 users, 5 dimensions) level index of the response each user wants; NaN without profiles."""
    first = items.iloc[::N_PROMPTS]
    out = np.full((len(first), _K), np.nan)
    for d, dim in enumerate(_DIMS):
        index = {lvl: i for i, lvl in enumerate(DIMENSIONS[dim])}
        out[:, d] = [index.get(v, np.nan) if isinstance(v, str) else np.nan for v in first[dim]]
    return out.reshape(-1, N_GROUPS, _K)


@dataclass(frozen=True)
class WhyLayout:
    """The bias and sensitivity units of one data file (``labels``: ``LABEL_COLUMNS``; ``den``: (records, units))."""

    labels: pd.DataFrame
    den: np.ndarray
    wanted: np.ndarray  # (records, 4): response index each user wants
    design: np.ndarray  # (records,): each response wanted by exactly one user
    xc: np.ndarray  # (records, 4, 4, 5): centred levels of the unwanted responses (0 elsewhere)
    a_inv: np.ndarray | None  # (5, 5) inverse of the pooled X'X; None when not identified
    profiled: np.ndarray  # (records,): design and profiles: in the bias fit
    domain_masks: np.ndarray  # (records, sensitivity units)

    @classmethod
    def from_items(cls, items: pd.DataFrame) -> "WhyLayout":
        """Units present in an item (or outcome) table; none when no record follows RMGAP's design."""
        n_rec = len(items) // ITEMS_PER_RECORD
        wanted = items["winner_idx"].to_numpy().reshape(n_rec, N_GROUPS, N_PROMPTS)[:, :, 0].astype(int)
        design = (np.sort(wanted, axis=1) == np.arange(N_RESPONSES)).all(axis=1)
        wl = wanted_levels(items)
        profiled = design & np.isfinite(wl).all(axis=(1, 2))
        x = np.where(profiled[:, None, None], wl, 0.0)[:, None, :, :] * _UNWANTED[None, :, :, None]  # (r, g, h, d)
        xc = (x - x.sum(axis=2, keepdims=True) / (N_GROUPS - 1)) * _UNWANTED[None, :, :, None]
        a = np.einsum("rghd,rghe->de", xc, xc)
        ev = np.linalg.eigvalsh(a)
        a_inv = np.linalg.inv(a) if profiled.any() and ev[0] > _SINGULAR * max(ev[-1], 1e-300) else None
        doms = items["domain"].to_numpy()[::ITEMS_PER_RECORD]
        rows, dens, masks = [], [], []
        if a_inv is not None:
            n = int(profiled.sum())
            rows += [("bias", ALL, dim, None, BIAS_METRIC, n * N_GROUPS, TIER) for dim in _DIMS]  # support: users
            dens += [np.where(profiled, 1.0 / n, 0.0)] * _K
        for name in (ALL, *DOMAINS):
            mask = design & ((doms == name) if name != ALL else True)
            if mask.any():
                rows.append(("sensitivity", name, None, None, SENSITIVITY_METRIC, int(mask.sum()) * N_GROUPS, TIER))
                dens.append(mask * float(N_GROUPS))
                masks.append(mask)
        den = np.stack(dens, axis=1) if dens else np.zeros((n_rec, 0))
        dm = np.stack(masks, axis=1).astype(np.float64) if masks else np.zeros((n_rec, 0))
        return cls(pd.DataFrame(rows, columns=LABEL_COLUMNS), den, wanted, design, xc, a_inv, profiled, dm)

    def numerators(self, scores: np.ndarray) -> np.ndarray:
        """(..., records, units) numerators of one or more runs' scores (..., records, 12, 4) in item order."""
        s = np.asarray(scores, np.float64)
        s = s.reshape(*s.shape[:-2], N_GROUPS, N_PROMPTS, N_RESPONSES)
        e = _by_user(standardised(s), self.wanted)  # (..., r, g, h)
        parts = []
        if self.a_inv is not None:
            xty = np.einsum("rghd,...rgh->...rd", self.xc, e)
            parts.append(xty @ self.a_inv)  # A is symmetric: (A^-1 X'y)' = y'X A^-1
        sens = _sensitivity(e).sum(axis=-1) * self.design  # (..., r)
        parts.append(sens[..., None] * self.domain_masks)
        return np.concatenate(parts, axis=-1)


def standardised(s: np.ndarray) -> np.ndarray:
    """Within-record standardised scores (``bias.standardized_scores``) over (..., records, 4, 3, 4);
    0 for a record with a NaN/inf score or with all scores equal."""
    ok = np.isfinite(s).all(axis=(-3, -2, -1), keepdims=True)
    c = np.where(ok, s, 0.0)
    c = c - c.mean(axis=-1, keepdims=True)
    sd = np.sqrt((c ** 2).mean(axis=(-3, -2, -1), keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok & (sd > 0), c / np.where(sd > 0, sd, 1.0), 0.0)


def _by_user(z: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """E[..., r, g, h]: mean over user g's prompts of the score of the response user h wants."""
    by_group = z.mean(axis=-2)  # (..., r, g, j)
    idx = np.broadcast_to(wanted[:, None, :], (*by_group.shape[:-1], N_GROUPS))
    return np.take_along_axis(by_group, idx, axis=-1)


def _sensitivity(e: np.ndarray) -> np.ndarray:
    """(..., r, g): difference in differences of margins, averaged over the 6 (h, n) pairs per user g."""
    did = (e[..., _G, _G] - e[..., _G, _H]) - (e[..., _N, _G] - e[..., _N, _H])
    return did.reshape(*did.shape[:-1], N_GROUPS, -1).mean(axis=-1)
