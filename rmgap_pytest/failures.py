"""A failing gate item's message: short, in the reader's words, with examples chosen for that check.

Each message says what failed (value, 95% interval, threshold, and whether the
interval still reaches the threshold), then a few "most wrong" examples: the
record, an excerpt of the user's prompt, of the response the model preferred
and of the right one. Examples are picked for the check, not for the run: for a
cell, items of that cell where the model preferred a response with another
level of the cell's dimension, most confident first; for a regression, items
the baseline got right. Records repeat across cells, so each message shows
each record at most once.

A release-size run of a weak model fails about a hundred items, and pytest
prints a header line and a summary line for each: examples therefore go to the
most severe failures first, within ``LINE_BUDGET`` lines of messages in all;
``-v`` shows them for every failure, ``-vv`` more of them, with longer excerpts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .data import DIMENSIONS, Benchmark, Record
from .evaluation import Evaluation
from .verdict import excess, row_texts

LINE_BUDGET = 130  # message lines for all FAILURES entries by default (pytest adds ~2 lines per failure)
EXAMPLE_LINES = 3  # prompt, preferred response, right response
DEFAULT_EXAMPLES, VERBOSE_EXAMPLES = 3, 5
MIN_EXAMPLES = 2
# Who gets examples first: a broken user group says more with examples than a whole domain's average.
KIND_ORDER = {"regression": 0, "cell": 1, "gap": 2, "bias": 3, "sensitivity": 3, "domain": 3, "avg": 3,
              "blindness": 4}


# ---- picking examples ------------------------------------------------------------------------------------------

def worst_records(ev: Evaluation, mask: Any = None, n: int = 3, prefer: Any = None,
                  avoid: set[str] | frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Per record, its most wrong item within ``mask``; the ``n`` most wrong records first.

    Only wrong items (not best-of-N) count. Invalid items come first: a NaN score is
    always wrong and usually a scorer bug. ``prefer`` (one bool per outcome row) ranks
    those items ahead of the rest; records in ``avoid`` (shown by another message) come
    after those not yet shown. ``group``/``prompt`` are 0-based; ``top`` is what
    the model preferred: the highest ranked loser (the outcome's own ``top`` is the
    winner when it only tied for first); ``margin`` is that loser's score minus the
    winner's (NaN for invalid items).
    """
    out = ev.outcomes
    sel = np.ones(len(out), bool) if mask is None else np.asarray(mask, dtype=bool)
    if sel.shape != (len(out),):
        raise ValueError(f"mask has shape {sel.shape}; expected one boolean per outcome row ({len(out)})")
    idx = np.flatnonzero(sel & ~out["bon"].to_numpy(bool))
    if not len(idx):
        return []
    key = np.where(out["invalid"].to_numpy(bool)[idx], np.inf, out["margin"].to_numpy(np.float64)[idx])
    first = np.zeros(len(idx)) if prefer is None else np.asarray(prefer, dtype=bool)[idx].astype(float)
    seen = np.isin(out["record_id"].to_numpy()[idx], list(avoid)) if avoid else np.zeros(len(idx), bool)
    order = idx[np.lexsort((idx, -key, seen, -first))]
    rec = out["record_id"].to_numpy()[order]
    _, keep = np.unique(rec, return_index=True)
    picked = order[np.sort(keep)][:n]
    cols = {c: out[c].to_numpy() for c in ("record_id", "domain", "group", "prompt", "winner", "ranking", "margin",
                                           "invalid")}
    return [_record_dict({c: v[i] for c, v in cols.items()}) for i in picked]


def _record_dict(r: dict[str, Any]) -> dict[str, Any]:
    margin = float(r["margin"]) if r["margin"] is not None else math.nan
    return {"record_id": str(r["record_id"]), "domain": str(r["domain"]), "group": int(r["group"]),
            "prompt": int(r["prompt"]), "winner": str(r["winner"]),
            "top": next((k for k in str(r["ranking"]).split(">") if k != r["winner"]), ""),
            "margin": margin, "invalid": bool(r["invalid"])}


def describe_record(rec: dict[str, Any]) -> str:
    """One line without texts; group and prompt counted from 1 as a reader counts them."""
    where = f"{rec['record_id']} (group {rec['group'] + 1}, prompt {rec['prompt'] + 1})"
    if rec["invalid"]:
        return f"{where}: invalid score (NaN/inf), counted wrong"
    return f"{where}: right answer {rec['winner']}, model preferred {rec['top']} by {rec['margin']:.4g}"


@dataclass(frozen=True)
class Texts:
    """The benchmark's texts by record id, for excerpts."""

    records: dict[str, Record]

    @classmethod
    def of(cls, bench: Benchmark) -> "Texts":
        return cls({r.id: r for r in bench.records})

    def response(self, record_id: str, key: str) -> str:
        r = self.records.get(record_id)
        return r.responses[r.keys.index(key)] if r is not None and key in r.keys else ""

    def level(self, record_id: str, key: str, dimension: str | None) -> str | None:
        r = self.records.get(record_id)
        return (r.profiles or {}).get(key, {}).get(dimension) if r is not None and dimension else None


def chose_other_level(ev: Evaluation, texts: Texts | None, dimension: str, level: str) -> np.ndarray | None:
    """Per item: the model's top loser has another ``dimension`` level than ``level`` (the cell's own bias)."""
    if texts is None:
        return None
    out = ev.outcomes
    scores = out[["s0", "s1", "s2", "s3"]].to_numpy(np.float64)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    scores[np.arange(len(out)), out["winner_idx"].to_numpy()] = -np.inf
    loser = scores.argmax(axis=1)
    want = (out[dimension].to_numpy() == level) & ~out["bon"].to_numpy(bool)
    flag = np.zeros(len(out), bool)
    record_ids = out["record_id"].to_numpy()  # one array, not a pandas lookup per item (issue 11)
    for i in np.flatnonzero(want):
        rec = texts.records.get(str(record_ids[i]))
        if rec is not None and rec.profiles:
            flag[i] = rec.profiles.get(rec.keys[loser[i]], {}).get(dimension) != level
    return flag


def excerpt(text: str, n: int) -> str:
    """The start of ``text`` on one line, cut at a word boundary within ``n`` characters, quoted."""
    flat = re.sub(r"\s+", " ", str(text)).strip()
    n = max(n, 5)  # a terminal too narrow for words still gets its lines within the width
    if len(flat) + 2 <= n:
        return f'"{flat}"'
    cut = flat[: n - 3]
    cut = cut[: cut.rfind(" ")] if " " in cut[n // 2:] else cut
    return f'"{cut.rstrip(" ,.;:")}…"'


def example_lines(rec: dict[str, Any], texts: Texts | None, dimension: str | None, width: int) -> list[str]:
    """Three lines: where and the prompt, the preferred response, the right one; each fits ``width``."""
    head = f"  {rec['record_id']}, user {rec['group'] + 1}, prompt {rec['prompt'] + 1}"
    if rec["invalid"]:
        return [f"{head}: invalid score (NaN/inf), counted wrong"]
    if texts is None:
        return [f"{head}: model preferred {rec['top']} over {rec['winner']} by {rec['margin']:.3g}"]
    r = texts.records[rec["record_id"]]

    def tag(key: str, extra: str = "") -> str:
        level = texts.level(rec["record_id"], key, dimension)
        inside = ", ".join(x for x in (level, extra) if x)
        return f"{key} ({inside})" if inside else key

    by = f"by {rec['margin']:.0f}" if abs(rec["margin"]) >= 100 else f"by {rec['margin']:.3g}"
    preferred = f"    preferred {tag(rec['top'], by)}: "
    right = f"    right {tag(rec['winner'])}: "
    return [f"{head}: {excerpt(r.prompts[rec['group']][rec['prompt']], width - len(head) - 2)}",
            preferred + excerpt(texts.response(rec["record_id"], rec["top"]), width - len(preferred)),
            right + excerpt(texts.response(rec["record_id"], rec["winner"]), width - len(right))]


# ---- the message -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """Which items a check speaks for."""

    kind: str
    domain: str
    dimension: str | None = None
    level: str | None = None
    lean_last: bool | None = None  # a style bias: True when it leans towards the dimension's last level


def target_mask(ev: Evaluation, t: Target, base_bon: np.ndarray | None = None) -> np.ndarray:
    out = ev.outcomes
    mask = np.ones(len(out), bool) if t.domain in ("Avg", "All") else out["domain"].to_numpy() == t.domain
    if t.dimension and t.level:
        mask &= out[t.dimension].to_numpy() == t.level
    if t.kind == "blindness":
        from .metrics import ITEMS_PER_RECORD, prompt_blindness

        mask &= np.repeat(prompt_blindness(out), ITEMS_PER_RECORD)
    if t.kind == "regression" and base_bon is not None:
        mask &= np.asarray(base_bon, bool) & ~out["bon"].to_numpy(bool)  # the items this change broke
    return mask


def target_of(spec: Any, rows: pd.DataFrame) -> Target:
    """A gap speaks for its worst level ("verbose vs terse" -> terse); anything else for its own items."""
    level = spec.level
    reason = " ".join(str(x) for x in rows["reason"] if isinstance(x, str))
    if spec.kind == "gap":
        m = re.match(r"\s*(\S+) vs (\S+?):", reason)
        level = m.group(2) if m else None
    if spec.kind == "bias" and spec.dimension in DIMENSIONS:
        last = DIMENSIONS[spec.dimension][-1].replace("_", " ")
        return Target(spec.kind, spec.domain, spec.dimension, None, f"towards {last})" in reason)
    return Target(spec.kind, spec.domain, spec.dimension, level)


def leaned(ev: Evaluation, texts: Texts | None, dimension: str, last: bool) -> np.ndarray | None:
    """Per item: the model's top loser lies further towards the bias's side of ``dimension`` than the right
    answer (a verbosity bias: it preferred a longer answer than the one the user wanted)."""
    if texts is None:
        return None
    out = ev.outcomes
    scores = np.where(np.isfinite(s := out[["s0", "s1", "s2", "s3"]].to_numpy(np.float64)), s, -np.inf)
    scores[np.arange(len(out)), out["winner_idx"].to_numpy()] = -np.inf
    loser = scores.argmax(axis=1)
    order = {lvl: i for i, lvl in enumerate(DIMENSIONS[dimension])}
    flag = np.zeros(len(out), bool)
    for i in np.flatnonzero(~out["bon"].to_numpy(bool)):
        rec = texts.records.get(str(out["record_id"].iat[i]))
        if rec is not None and rec.profiles:
            lv = [order.get(rec.profiles.get(rec.keys[j], {}).get(dimension), -1)
                  for j in (loser[i], int(out["winner_idx"].iat[i]))]
            flag[i] = min(lv) >= 0 and (lv[0] > lv[1] if last else lv[0] < lv[1])
    return flag


def examples_for(ev: Evaluation, target: Target, texts: Texts | None, n: int, width: int,
                 base_bon: np.ndarray | None = None, avoid: set[str] | None = None) -> list[str]:
    """Up to ``n`` examples as lines; the records shown are added to ``avoid``."""
    if n <= 0:
        return []
    mask = target_mask(ev, target, base_bon)
    prefer = chose_other_level(ev, texts, target.dimension, target.level) if target.dimension and target.level \
        else leaned(ev, texts, target.dimension, target.lean_last) if target.lean_last is not None else None
    recs = worst_records(ev, mask, n=n, prefer=prefer, avoid=avoid if avoid is not None else frozenset())
    if not recs:
        return []
    if avoid is not None:
        avoid.update(r["record_id"] for r in recs)
    wrong = int((mask & ~ev.outcomes["bon"].to_numpy(bool)).sum())
    what = "newly wrong (right in the baseline)" if target.kind == "regression" and base_bon is not None \
        else "most wrong"
    lines = [f"{what}: {len(recs)} of {wrong} wrong items, one per record:"]
    for rec in recs:
        lines += example_lines(rec, texts, target.dimension, width)
    return lines


def message(rows: pd.DataFrame, *, mde: dict[str, float] | None = None, examples: list[str] = (),
            verbose: int = 0, width: int = 100) -> str:
    """The failing rows, then the examples; every line fits ``width``.

    By default the most severe row takes one line and names the check's other failing
    metrics in a few words ("; Pair too"), so a hundred failures stay a few hundred
    lines; with ``verbose`` every failing row gets its own line.
    """
    failed = rows[rows["status"] == "fail"]
    failed = failed.iloc[np.argsort([-excess(r.value, r.threshold, r.direction)
                                     for r in failed.itertuples(index=False)], kind="stable")]
    texts = [_row_variants(r, mde) for r in failed.itertuples(index=False)]
    support = next((int(x) for x in failed["support"] if isinstance(x, (int, float)) and math.isfinite(x)), None)
    unit = "records" if (failed["kind"] == "blindness").any() else "groups"
    groups = f" ({support} {unit})" if support is not None else ""
    if verbose <= 0 and len(texts) > 1:  # -q (verbosity -1) reads as the default
        others = ", ".join(str(m) for m in failed["metric"].iloc[1:])
        one = _fit([texts[0], [f"; also {'; '.join(t[-1] for t in texts[1:])}", f"; {others} too"], [groups, ""]],
                   width)
        if one is not None:
            return "\n".join([one, *examples])
    lines = [_fit([variants, [groups, ""]], width) or variants[-1] for variants in texts]
    return "\n".join([*lines, *examples])


def _fit(parts: list[list[str]], width: int) -> str | None:
    """The most informative concatenation (one choice per part, earlier parts first) that fits ``width``."""
    import itertools

    for choice in itertools.product(*parts):
        if len("".join(choice)) <= width:
            return "".join(choice)
    return None


def _row_variants(r: Any, mde: dict[str, float] | None) -> list[str]:
    texts = row_texts(r)
    if r.kind == "regression" and mde is not None:
        m = mde.get(str(r.metric), math.nan)
        # MDE: the smallest drop this unit could be called a regression at this data size.
        what = "changes" if r.metric == "Style bias" else "drops"
        texts = [t + (f"; can flag {what} > {m:.3f} (MDE)" if math.isfinite(m) else "; MDE unknown") for t in texts]
    return texts


def severity(rows: pd.DataFrame) -> float:
    failed = rows[rows["status"] == "fail"]
    return max((excess(r.value, r.threshold, r.direction) for r in failed.itertuples(index=False)), default=-math.inf)


def example_quota(checks: pd.DataFrame, selected: set[str] | None, verbose: int) -> dict[str, int]:
    """Examples per failing check, most telling first: every check with -v; else within LINE_BUDGET lines."""
    failed = checks[checks["status"] == "fail"]
    if selected is not None:
        failed = failed[failed["id"].isin(selected)]
    by_check = {cid: rows for cid, rows in failed.groupby("id", sort=False)}
    order = sorted(by_check, key=lambda c: (KIND_ORDER.get(by_check[c]["kind"].iloc[0], 9), -severity(by_check[c])))
    if verbose > 0:
        return {cid: VERBOSE_EXAMPLES if verbose > 1 else DEFAULT_EXAMPLES for cid in order}
    left = LINE_BUDGET - len(by_check)  # one line per failing check comes first
    quota = {}
    for cid in order:
        for n in (DEFAULT_EXAMPLES, MIN_EXAMPLES):
            cost = 1 + n * EXAMPLE_LINES
            if cost <= left:
                quota[cid], left = n, left - cost
                break
    return quota


def plan_examples(gate: Any, selected: set[str] | None, verbose: int, width: int,
                  texts: Texts | None) -> dict[str, list[str]]:
    """Every failing item's example lines, decided together: the budget goes to the most telling
    failures, and a record shown for one check is shown for another only when nothing else is left."""
    checks = gate.result.checks
    specs = {s.id: s for s in gate.checks}
    avoid: set[str] = set()
    out = {}
    for cid, n in example_quota(checks, selected, verbose).items():
        target = target_of(specs[cid], checks[checks["id"] == cid])
        out[cid] = examples_for(gate.result.evaluation, target, texts, n, width, getattr(gate, "base_bon", None),
                                avoid)
    return out


def _mde_of(gate: Any, spec: Any) -> dict[str, float] | None:
    comparison = gate.result.comparison
    if spec.kind != "regression" or comparison is None:
        return None
    from .verdict import with_family_columns

    from .regression import item_ids

    c = with_family_columns(comparison)
    sel = c[np.array(item_ids(c), dtype=object) == spec.id] if len(c) else c
    return {str(m): float(x) for m, x in zip(sel["metric"], pd.to_numeric(sel["mde"], errors="coerce"))}


def gate_message(gate: Any, check_id: str, rows: pd.DataFrame, *, examples: list[str] | None = None,
                 width: int = 100, texts: Texts | None = None, verbose: int = 0) -> str:
    """The message of one failing gate item (``GateSession`` holds the evaluation, checks and baseline).

    ``examples``: lines from ``plan_examples``; None picks up to DEFAULT_EXAMPLES for this check alone.
    """
    spec = next(s for s in gate.checks if s.id == check_id)
    if examples is None:
        examples = examples_for(gate.result.evaluation, target_of(spec, rows), texts, DEFAULT_EXAMPLES, width,
                                getattr(gate, "base_bon", None))
    return message(rows, mde=_mde_of(gate, spec), examples=examples, verbose=verbose, width=width)
