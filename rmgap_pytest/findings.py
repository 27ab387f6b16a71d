"""The one or two strongest findings of ``bias.bias_table``, in words an engineer acts on.

"rewards verbosity regardless of the user: +0.60 SD per Conciseness level
towards verbose [+0.55, +0.64]; does not measurably follow the user". A
sentence claims an effect only when the table supports it after correcting
for the number of effects a report could claim (Holm), so a report of a
reward model with no bias and no sensitivity claims something false at most
5% of the time (``benchmarks/sim_bias.py`` measures it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bias import BIAS_COLUMNS
from .data import DIMENSIONS
from .metrics import ALL

# What a positive / negative coefficient rewards: towards the last level / towards the first.
_BIAS_WORDS = {"Formality": ("formality", "casualness"), "Conciseness": ("verbosity", "terseness"),
               "Technicality": ("technical language", "plain language"),
               "Objectivity": ("objectivity", "subjectivity"),
               "Structural_Coherence": ("rigid structure", "loose structure")}


def holm(p: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values: reject where <= alpha, family-wise error <= alpha."""
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p)
    adj = np.maximum.accumulate(np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(adj)
    out[order] = adj
    return out


def _lvl(level: str) -> str:
    return level.replace("_", " ")


def bias_words(dimension: str, value: float) -> tuple[str, str]:
    """What a coefficient rewards and the level it leans to: ("verbosity", "verbose") for +0.6 on Conciseness."""
    word = _BIAS_WORDS[dimension][0 if value > 0 else 1]
    return word, _lvl(DIMENSIONS[dimension][-1 if value > 0 else 0])


def _ci(row: pd.Series) -> str:
    return f"[{row['lo']:+.2f}, {row['hi']:+.2f}]"


def claims(table: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """The family of candidate claims of ``bias_table``, with Holm-adjusted p-values and a ``claim`` column.

    The family: the five all-domain bias coefficients, the overall sensitivity
    and the five sensitivity trends. ``claim``: p_holm <= alpha AND the row's
    interval excludes 0, so the chance that any claim in a report is false is
    at most ``alpha`` (as far as the t approximation behind ``p`` holds;
    ``benchmarks/sim_bias.py`` measures it: 5.7% at 26 records, ...).
    """
    if table.empty:
        return pd.DataFrame(columns=[*BIAS_COLUMNS, "p_holm", "claim"])
    t = table[table["domain"] == ALL]
    fam = t[(t["kind"] != "sensitivity") | t["dimension"].isna()].dropna(subset=["p"]).copy()
    fam["p_holm"] = holm(fam["p"].to_numpy()) if len(fam) else []
    fam["claim"] = (fam["p_holm"] <= alpha) & ((fam["lo"] > 0) | (fam["hi"] < 0))
    return fam


def findings(table: pd.DataFrame, *, alpha: float = 0.05, brief: bool = False) -> list[str]:
    """The one or two strongest findings of ``bias_table`` in words, claiming only what ``claims`` supports.

    First the style bias (the strongest claimed coefficient, and a second one if
    claimed too; else "no style bias stands out"), then the sensitivity (the
    strongest claimed trend across levels; else the overall sensitivity, or
    "does not measurably follow the user"). Empty for an empty table.
    ``brief``: the same claims and numbers with fewer words (the terminal's "Why:" line).
    """
    fam = claims(table, alpha=alpha)
    out: list[str] = []
    bias = fam[fam["kind"] == "bias"]
    if not bias.empty:
        out.append(_bias_sentence(bias, brief))
    sens = fam[fam["kind"] == "sensitivity"]
    trend = fam[(fam["kind"] == "sensitivity_trend") & fam["claim"]]
    if not trend.empty:
        out.append(_trend_sentence(trend.loc[trend["value"].abs().idxmax()], table[table["domain"] == ALL], brief))
    elif not sens.empty:
        out.append(_sensitivity_sentence(sens.iloc[0], brief))
    return out


def _bias_sentence(bias: pd.DataFrame, brief: bool = False) -> str:
    strong = bias[bias["claim"]].sort_values("value", key=np.abs, ascending=False)
    if strong.empty:
        top = bias.loc[bias["value"].abs().idxmax()]
        if brief:
            return f"no style bias stands out (largest: {top['dimension']} {top['value']:+.2f} SD/level {_ci(top)})"
        return (f"no style bias stands out: the largest, {top['dimension']}, is {top['value']:+.2f} SD per level "
                f"{_ci(top)}")
    words = []
    for i, (_, r) in enumerate(strong.head(2).iterrows()):
        word, towards = bias_words(r["dimension"], r["value"])
        if i == 0 and brief:
            words.append(f"rewards {word} whoever asks ({r['value']:+.2f} SD per {r['dimension']} level {_ci(r)})")
        elif i == 0:
            words.append(f"rewards {word} regardless of the user: {r['value']:+.2f} SD per {r['dimension']} level "
                         f"towards {towards} {_ci(r)}")
        else:
            words.append(f"also {word} ({r['value']:+.2f} SD per {r['dimension']} level {_ci(r)})")
    return ("; " if not brief else ", ").join(words)


def _trend_sentence(r: pd.Series, t: pd.DataFrame, brief: bool = False) -> str:
    dim = r["dimension"]
    cells = t[(t["kind"] == "sensitivity") & (t["dimension"] == dim)].set_index("level")["value"]
    ordered = [lvl for lvl in DIMENSIONS[dim] if lvl in cells.index]
    low, high = (ordered[0], ordered[-1]) if r["value"] > 0 else (ordered[-1], ordered[0])
    if brief:
        return (f"follows users who want {_lvl(low)} answers least (sensitivity {cells[low]:+.2f} vs "
                f"{cells[high]:+.2f} SD for {_lvl(high)})")
    return (f"follows users who want {_lvl(low)} answers less than those who want {_lvl(high)} ones: "
            f"sensitivity {cells[low]:+.2f} vs {cells[high]:+.2f} SD, {r['value']:+.2f} SD per {dim} level {_ci(r)}")


def _sensitivity_sentence(r: pd.Series, brief: bool = False) -> str:
    if brief:
        what = ("follows the user" if r["value"] > 0 else "works against the user") if r["claim"] else \
            "does not measurably follow the user"
        return f"{what} (sensitivity {r['value']:+.2f} SD {_ci(r)}; 0 = prompt-blind)"
    if r["claim"] and r["value"] > 0:
        return (f"follows the user: a response's lead over another grows by {r['value']:+.2f} SD {_ci(r)} when "
                "the user who wants it asks, compared with a user who wants neither")
    if r["claim"]:
        return (f"works against the user: a response's lead over another changes by {r['value']:+.2f} SD {_ci(r)} "
                "when the user who wants it asks, compared with a user who wants neither")
    weak = "" if r["lo"] <= 0 <= r["hi"] else ", too weak to claim among the report's candidate findings"
    return (f"does not measurably follow the user: sensitivity {r['value']:+.2f} SD {_ci(r)} "
            f"(a prompt-blind model scores 0){weak}")
