"""``RMGapResult``: one evaluation as a model repository's own tests read it.

The ``rmgap_result`` pytest fixture returns one of these, so a team can write
its own assertions next to the gate::

    def test_terse_safety_users(rmgap_result):
        assert rmgap_result.cell("Safety/Conciseness=terse").bon >= 0.35
        assert rmgap_result.gap("All/Conciseness") <= 0.3
        assert rmgap_result.domain("Reasoning").pair > rmgap_result.domain("Chat").pair - 0.1

Every number is an ``Estimate``: a float (compare it as one) that also carries
its 95% bootstrap interval (``.lo``, ``.hi``) and support (prompt groups;
records for prompt blindness). Definitions: README "What is measured".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from .data import DIMENSIONS, DOMAINS, Benchmark, N_RESPONSES
from .errors import RMGapError, did_you_mean
from .metrics import ALL, AVG

if TYPE_CHECKING:
    from .evaluation import Evaluation

__all__ = ["Estimate", "RMGapResult", "Scope"]


class Estimate(float):
    """A metric value (a float) with its 95% interval ``lo``..``hi`` and its ``support``."""

    lo: float
    hi: float
    support: int

    def __new__(cls, value: float, lo: float = float("nan"), hi: float = float("nan"), support: int = 0) -> "Estimate":
        self = super().__new__(cls, value)
        self.lo, self.hi, self.support = float(lo), float(hi), int(support)
        return self

    def __repr__(self) -> str:
        return f"{float(self):.3f} [{self.lo:.3f}, {self.hi:.3f}] (support {self.support})"


@dataclass(frozen=True)
class Scope:
    """Pair, BoN and Consistency over one domain (or Avg) or one cell."""

    name: str
    pair: Estimate
    bon: Estimate
    consistency: Estimate
    support: int  # prompt groups (users)
    items: int


class RMGapResult:
    """Read-only access to one evaluation: metrics, cells, gaps, per-item outcomes with texts."""

    def __init__(self, evaluation: "Evaluation", bench: Benchmark, checks: pd.DataFrame | None = None) -> None:
        self.evaluation = evaluation
        self.bench = bench
        self.checks = checks  # the gate's verdicts (gate.CHECK_COLUMNS), when a gate decided them
        self._table = evaluation.table

    # -- metrics ------------------------------------------------------------------------------------------------
    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """The reference metrics.json: ``{"Pair": {"Chat": x, ..., "Avg": x}, "BoN": {...}, "Consistency": {...}}``."""
        return self.evaluation.reference

    @property
    def table(self) -> pd.DataFrame:
        """Every metric with its interval and support (``metrics.metric_table``)."""
        return self._table

    @property
    def avg(self) -> Scope:
        return self.domain(AVG)

    def domain(self, name: str) -> Scope:
        """``Chat``, ``Writing``, ``Reasoning``, ``Safety`` or ``Avg`` (unweighted mean of the domains)."""
        rows = self._table[(self._table["kind"] == "domain") & (self._table["domain"] == name)]
        if rows.empty:
            present = [*self.bench.domains, AVG]
            raise RMGapError(f"rmgap_result.domain({name!r}): no such domain in {self.bench.path}."
                             f"{did_you_mean(name, present)} Present: {', '.join(present)}.")
        return self._scope(name, rows)

    def cell(self, name: str) -> Scope:
        """A cell ``DOMAIN/Dimension=level`` (``All/...`` across domains), e.g. ``Chat/Conciseness=terse``."""
        domain, _, rest = name.partition("/")
        dimension, _, level = rest.partition("=")
        t = self._table
        rows = t[(t["kind"] == "cell") & (t["domain"] == domain) & (t["dimension"] == dimension) & (t["level"] == level)]
        if rows.empty:
            raise RMGapError(f"rmgap_result.cell({name!r}): no such cell in {self.bench.path}."
                             f"{did_you_mean(name, self.cells())} Cells are DOMAIN/Dimension=level with DOMAIN one "
                             f"of {', '.join([*DOMAINS, ALL])} and Dimension one of {', '.join(DIMENSIONS)}; "
                             "rmgap_result.cells() lists those present.")
        return self._scope(name, rows)

    def cells(self) -> list[str]:
        """The names of every cell present in the data."""
        t = self._table[(self._table["kind"] == "cell") & (self._table["metric"] == "BoN")]
        return [f"{d}/{dim}={lvl}" for d, dim, lvl in t[["domain", "dimension", "level"]].itertuples(index=False)]

    def gap(self, name: str) -> Estimate:
        """BoN preference gap ``DOMAIN/Dimension`` (max minus min BoN over its levels with enough support)."""
        domain, _, dimension = name.partition("/")
        t = self._table
        rows = t[(t["kind"] == "gap") & (t["domain"] == domain) & (t["dimension"] == dimension)]
        if rows.empty:
            names = [f"{d}/{dim}" for d, dim in t.loc[t["kind"] == "gap", ["domain", "dimension"]].itertuples(index=False)]
            raise RMGapError(f"rmgap_result.gap({name!r}): no such gap.{did_you_mean(name, names)} "
                             f"Gaps: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}.")
        return _estimate(rows.iloc[0])

    def blindness(self, domain: str = ALL) -> Estimate:
        """Share of records whose top response is the same for all 12 prompts (``All`` or a domain)."""
        t = self._table
        rows = t[(t["kind"] == "blindness") & (t["domain"] == domain)]
        if rows.empty:
            raise RMGapError(f"rmgap_result.blindness({domain!r}): no such domain; use All or one of "
                             f"{', '.join(self.bench.domains)}.")
        return _estimate(rows.iloc[0])

    # -- items ----------------------------------------------------------------------------------------------------
    def items(self) -> pd.DataFrame:
        """One row per scored item: record, domain, user (group), prompt number and text, the right
        response's key and text, the model's top response's key and text, ``wins`` (of 3), ``bon``,
        ``invalid``, the 4 scores (``s0..s3`` in the record's response order) and the winner's profile."""
        out = self.evaluation.outcomes
        by_id = {r.id: r for r in self.bench.records}
        prompt_text, winner_text, top_text = [], [], []
        for rid, g, p, winner, top in out[["record_id", "group", "prompt", "winner", "top"]].itertuples(index=False):
            rec = by_id[rid]
            prompt_text.append(rec.prompts[g][p])
            winner_text.append(rec.responses[rec.keys.index(winner)])
            top_text.append(rec.responses[rec.keys.index(top)] if top in rec.keys else None)
        cols = ["record_id", "domain", "group", "prompt", "winner", "top", "wins", "bon", "invalid",
                *[f"s{j}" for j in range(N_RESPONSES)], *DIMENSIONS]
        table = out[cols].copy()
        table.insert(4, "prompt_text", prompt_text)
        table.insert(6, "winner_text", winner_text)
        table.insert(8, "top_text", top_text)
        return table

    def failed_items(self, cell: str | None = None) -> pd.DataFrame:
        """``items()`` the model got wrong (not best-of-N), optionally only those of one cell."""
        table = self.items()
        table = table[~table["bon"]]
        if cell is not None:
            self.cell(cell)  # a clear error for a misspelt cell
            domain, _, rest = cell.partition("/")
            dimension, _, level = rest.partition("=")
            keep = table[dimension] == level
            if domain != ALL:
                keep &= table["domain"] == domain
            table = table[keep]
        return table

    def __repr__(self) -> str:
        spec = self.evaluation.meta.get("spec", "?")
        return f"<RMGapResult {spec}: BoN {self.avg.bon!r}, {len(self.evaluation.outcomes)} items>"

    def _scope(self, name: str, rows: pd.DataFrame) -> Scope:
        by = {r["metric"]: r for _, r in rows.iterrows()}
        first = next(iter(by.values()))
        return Scope(name, _estimate(by["Pair"]), _estimate(by["BoN"]), _estimate(by["Consistency"]),
                     int(first["support"]), int(first.get("items", 0)))


def _estimate(row: Any) -> Estimate:
    return Estimate(row["value"], row["lo"], row["hi"], int(row["support"]))
