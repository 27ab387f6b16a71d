"""Simulated reward-model pairs on any RMGAP-format file, for ``rmgap calibrate``.

A simulated reward model scores every (prompt, response) pair as

    score = signal * difficulty[record] * is_right + noise

where ``is_right`` marks the prompt group's winner. The noise has three parts
with variance shares that sum to 1: one per (record, response), shared by all
12 prompts (a prompt-blind taste), one per (prompt group, response), shared by
a group's 3 paraphrases (what makes a model consistent), and one per pair.
``signal`` is solved for so that the expected BoN is ``SimModel.bon``.

A model *pair* is the baseline and a current run. In a harmless change each
noise part of the current run correlates ``rho`` with the baseline's (a
Gaussian copula, so both runs have exactly the same noise distribution and are
exchangeable); a drop scales the current run's signal down where it applies so
that the expected BoN there falls by the drop. Scenario kinds live in
``SIGNAL_SCALES``: add a kind there (e.g. a style-bias drift) and ``rmgap
calibrate`` can simulate it.

``signal * is_right`` is how far the model follows the user: the wanted
response gains it under its user's prompts only, so in raw units the
preference sensitivity (``bias.py``) is the signal itself. A ``follow_drop``
scales it by ``1 - follow`` everywhere: the model follows users that much
less (a BoN drop is the same change, named by its effect on BoN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import N_GROUPS, N_PROMPTS, N_RESPONSES

NOISES = ("normal", "logistic", "t3")


@dataclass(frozen=True)
class SimModel:
    """A simulated reward model (see the module doc)."""

    bon: float = 0.45  # expected Best-of-N accuracy (chance 0.25; the best published RM reaches 0.49)
    noise: str = "normal"  # marginal noise distribution: normal, logistic or t3 (heavy tails), unit variance
    record_share: float = 0.0  # noise variance shared by a record's 12 prompts
    group_share: float = 0.0  # noise variance shared by a prompt group's 3 paraphrases
    difficulty: float = 0.0  # sd of log signal across records: some records are much harder than others

    def describe(self) -> str:
        return (f"BoN {self.bon:g}, {self.noise} noise, shares record {self.record_share:g} / group "
                f"{self.group_share:g} / pair {1 - self.record_share - self.group_share:g}, "
                f"difficulty sd {self.difficulty:g}")


# Named models: "inconsistent" rescored every paraphrase independently (Consistency ~0), as the
# issue-7 measurements did; "consistent" keeps a group's ranking across paraphrases (Consistency
# ~0.25), with a prompt-blind part; "heavy" has heavy-tailed noise and uneven record difficulty.
PRESETS: dict[str, SimModel] = {
    "inconsistent": SimModel(),
    "consistent": SimModel(record_share=0.3, group_share=0.6),
    "heavy": SimModel(noise="t3", record_share=0.2, group_share=0.4, difficulty=0.8),
}


@dataclass(frozen=True)
class Scenario:
    """One kind of model change to simulate."""

    kind: str  # a key of SIGNAL_SCALES
    rho: float  # correlation of the current run's noise with the baseline's
    drop: float = 0.0  # expected BoN points lost where the change applies (0.03 = 3 points)
    cell: tuple[str, str, str] | None = None  # (domain or All, dimension, level) for kind "cell_drop"
    follow: float = 0.0  # kind "follow_drop": share of the signal lost (0.2: follows users 20% less)

    @property
    def harmless(self) -> bool:
        return self.kind == "harmless"

    @property
    def name(self) -> str:
        where = {"harmless": "harmless change", "uniform_drop": f"BoN -{self.drop:g} everywhere",
                 "cell_drop": f"BoN -{self.drop:g} in {_cell_name(self.cell)}",
                 "follow_drop": f"follows users {self.follow:.0%} less"}.get(self.kind, self.kind)
        return f"{where}, rho {self.rho:g}"

    def expected_items(self) -> tuple[str, ...]:
        """Gate items that locate this change when they fail (empty: any failure is a false block)."""
        if self.kind == "uniform_drop":
            return ("regression[Avg/",)
        if self.kind == "cell_drop" and self.cell is not None:
            return (f"regression[{_cell_name(self.cell)}]",)
        if self.kind == "follow_drop":
            return ("regression[sensitivity/",)
        return ()


def _cell_name(cell: tuple[str, str, str] | None) -> str:
    return "?" if cell is None else f"{cell[0]}/{cell[1]}={cell[2]}"


def _groups_in(items: pd.DataFrame, cell: tuple[str, str, str]) -> np.ndarray:
    """(records, 4) prompt groups whose winner is in the cell."""
    first = items[items["prompt"] == 0]
    hit = first[cell[1]].to_numpy() == cell[2]
    if cell[0] != "All":
        hit &= first["domain"].to_numpy() == cell[0]
    return hit.reshape(-1, N_GROUPS)


# kind -> (items, scenario, scale for a drop) -> per-group multiplier of the current run's signal
SIGNAL_SCALES: dict[str, Callable[[pd.DataFrame, Scenario, float], np.ndarray]] = {
    "harmless": lambda items, sc, s: np.ones((len(items) // (N_GROUPS * N_PROMPTS), N_GROUPS)),
    "uniform_drop": lambda items, sc, s: np.full((len(items) // (N_GROUPS * N_PROMPTS), N_GROUPS), s),
    "cell_drop": lambda items, sc, s: np.where(_groups_in(items, sc.cell), s, 1.0),
    "follow_drop": lambda items, sc, s: np.full((len(items) // (N_GROUPS * N_PROMPTS), N_GROUPS), 1.0 - sc.follow),
}


def _standard(noise: str, z: np.ndarray) -> np.ndarray:
    """Map standard normals to the noise distribution with unit variance (the copula's marginal)."""
    if noise == "normal":
        return z
    from scipy import stats

    u = stats.norm.cdf(z)
    if noise == "logistic":
        return stats.logistic.ppf(u) * (np.sqrt(3) / np.pi)
    if noise == "t3":
        return stats.t.ppf(u, df=3) / np.sqrt(3)
    raise ValueError(f"unknown noise {noise!r}; use one of {', '.join(NOISES)}")


class Simulator:
    """Scores and outcomes of simulated model pairs on one data file (vectorised over runs)."""

    def __init__(self, items: pd.DataFrame, model: SimModel, pool_seed: int = 12345) -> None:
        if model.noise not in NOISES:
            raise ValueError(f"unknown noise {model.noise!r}; use one of {', '.join(NOISES)}")
        self.items = items
        self.model = model
        self.n_rec = len(items) // (N_GROUPS * N_PROMPTS)
        self.winner = items["winner_idx"].to_numpy().reshape(self.n_rec, N_GROUPS, N_PROMPTS)[:, :, 0]
        rng = np.random.default_rng(pool_seed)  # common random numbers: the signal solves deterministically
        pool = rng.standard_normal((3, 200_000, N_RESPONSES))
        self._pool_noise = sum(np.sqrt(s) * _standard(model.noise, pool[i]) for i, s in enumerate(self._shares()))
        self._pool_diff = self._difficulty(rng, 200_000)
        self.signal = self.solve_signal(model.bon)
        self._scales: dict[float, float] = {}

    def _shares(self) -> tuple[float, float, float]:
        m = self.model
        pair = 1.0 - m.record_share - m.group_share
        if min(m.record_share, m.group_share, pair) < 0:
            raise ValueError("record_share + group_share must lie in [0, 1]")
        return m.record_share, m.group_share, pair

    def _difficulty(self, rng: np.random.Generator, n: int) -> np.ndarray:
        sd = self.model.difficulty
        return np.exp(sd * rng.standard_normal(n) - sd * sd / 2)  # mean 1

    def expected_bon(self, signal: float) -> float:
        s = self._pool_noise.copy()
        s[:, 0] += signal * self._pool_diff
        return float((s[:, :1] > s[:, 1:]).all(axis=1).mean())

    def solve_signal(self, bon: float) -> float:
        """Signal strength whose expected BoN is ``bon`` (bisection on common random numbers)."""
        if not self.expected_bon(0.0) - 0.01 <= bon <= 0.99:
            raise ValueError(f"a BoN of {bon:g} cannot be simulated; choose between chance (0.25) and 0.99")
        lo, hi = 0.0, 50.0
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.expected_bon(mid) < bon else (lo, mid)
        return (lo + hi) / 2

    def drop_scale(self, drop: float) -> float:
        """Multiplier of the signal that lowers the expected BoN by ``drop``."""
        if drop not in self._scales:
            self._scales[drop] = self.solve_signal(self.model.bon - drop) / self.signal if drop else 1.0
        return self._scales[drop]

    def pairs(self, rng: np.random.Generator, n_runs: int, scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
        """(baseline, current) scores, each (runs, records, 4 groups, 3 prompts, 4 responses), file order."""
        shape = (n_runs, self.n_rec, N_GROUPS, N_PROMPTS, N_RESPONSES)
        sizes = [(n_runs, self.n_rec, 1, 1, N_RESPONSES), (n_runs, self.n_rec, N_GROUPS, 1, N_RESPONSES), shape]
        rho = scenario.rho
        base_noise, cur_noise = np.zeros(shape), np.zeros(shape)
        for share, size in zip(self._shares(), sizes):
            if share == 0:
                continue
            zb, fresh = rng.standard_normal(size), rng.standard_normal(size)
            zc = rho * zb + np.sqrt(1 - rho * rho) * fresh
            base_noise += np.sqrt(share) * _standard(self.model.noise, zb)
            cur_noise += np.sqrt(share) * _standard(self.model.noise, zc)
        right = np.zeros((self.n_rec, N_GROUPS, 1, N_RESPONSES))
        right[np.arange(self.n_rec)[:, None], np.arange(N_GROUPS)[None, :], 0, self.winner] = 1.0
        signal = self.signal * self._difficulty(rng, n_runs * self.n_rec).reshape(n_runs, self.n_rec, 1, 1, 1)
        scale = SIGNAL_SCALES[scenario.kind](self.items, scenario, self.drop_scale(scenario.drop))
        base = signal * right + base_noise
        cur = signal * scale[None, :, :, None, None] * right + cur_noise
        return base, cur

    def outcomes(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """wins, bon (runs, records, 12), consistent (runs, records, 4) and the scores (runs, records, 12, 4),
        as ``metrics.outcome_table``; ``UnitLayout.numerators`` takes the four in this order.

        Scores are continuous, so ties (which the outcome table breaks by key) do not occur.
        """
        n_runs = scores.shape[0]
        idx = np.broadcast_to(self.winner[None, :, :, None, None], (*scores.shape[:4], 1))
        w = np.take_along_axis(scores, idx, axis=-1)
        wins = (w > scores).sum(axis=-1)
        ranks = np.argsort(-scores, axis=-1)
        consistent = ((ranks[:, :, :, 0] == ranks[:, :, :, 1]) & (ranks[:, :, :, 1] == ranks[:, :, :, 2])).all(-1)
        shape = (n_runs, self.n_rec, N_GROUPS * N_PROMPTS)
        return (wins.reshape(shape), (wins == N_RESPONSES - 1).reshape(shape), consistent,
                scores.reshape(*shape, N_RESPONSES))
