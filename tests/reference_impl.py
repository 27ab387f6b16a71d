"""DESIGN.md section 2, written as plainly as possible: loops, no numpy tricks.

The package's vectorized metrics are tested against this.
"""

from __future__ import annotations

import math


def reference_metrics(records: list[dict], score) -> dict:
    """records: raw JSON records; score(prompt, response_text) -> float."""
    per = {}
    for rec in records:
        d = per.setdefault(rec["domain"], {"wins": 0, "cmp": 0, "bon": 0, "items": 0, "cons": 0, "groups": 0})
        texts = {r["key"]: r["text"] for r in rec["responses"]}
        for group in rec["prompt_groups"]:
            rankings = []
            group_ok = True
            for prompt in group["prompts"]:
                s = {k: score(prompt["text"], t) for k, t in texts.items()}
                valid = all(math.isfinite(v) for v in s.values())
                w = s[group["winner"]]
                losers = [v for k, v in s.items() if k != group["winner"]]
                wins = sum(1 for v in losers if w > v) if valid else 0
                d["wins"] += wins
                d["cmp"] += 3
                d["bon"] += 1 if valid and wins == 3 else 0
                d["items"] += 1
                group_ok = group_ok and valid
                rankings.append(sorted(s, key=lambda k: (-s[k], k)))
            d["cons"] += 1 if group_ok and rankings[0] == rankings[1] == rankings[2] else 0
            d["groups"] += 1
    order = [x for x in ("Chat", "Writing", "Reasoning", "Safety") if x in per]
    out = {"Pair": {}, "BoN": {}, "Consistency": {}}
    for dom in order:
        v = per[dom]
        out["Pair"][dom] = v["wins"] / v["cmp"]
        out["BoN"][dom] = v["bon"] / v["items"]
        out["Consistency"][dom] = v["cons"] / v["groups"]
    for m in out:
        out[m]["Avg"] = sum(out[m][d] for d in order) / len(order)
    return out
