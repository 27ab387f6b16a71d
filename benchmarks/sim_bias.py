"""How often bias.py's 95% intervals cover a planted truth, and how often ``findings`` claims a false effect.

Simulated reward models (``synth.planted_scores``) with a known style bias and
preference sensitivity, scored on synthetic RMGAP-format records (or the
embedded sample with ``--records 0``). Each replicate draws new scores and a
new bootstrap seed (noise differs between scenarios too); the truth stays fixed. Prints, per scenario and estimate,
the share of replicates whose interval covers the truth, with the range a
correct 95% interval lands in 99% of the time at this number of replicates.

    .venv/bin/python benchmarks/sim_bias.py [--records 200] [--reps 400] [--boot 1000]

Scenarios (raw score units; noise sd 1 per pair, record and prompt offsets sd 3):
  formality  Formality bias +0.3, follows nobody
  mix        Formality -0.5 and Conciseness +0.2, follows every user by +0.4
  trend      no bias; follows users by 0.0, 0.1, ..., 0.4 by the Conciseness level they want
  null       noise only: every estimate is 0; also the rate of reports with any claim
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rmgap_pytest.bias import bias_table, response_levels
from rmgap_pytest.findings import claims  # noqa: E402
from rmgap_pytest.data import item_table, load_benchmark, response_keys  # noqa: E402
from rmgap_pytest.metrics import outcome_table  # noqa: E402
from rmgap_pytest.synth import planted_scores, write_synthetic  # noqa: E402

CONC = ("terse", "concise", "moderate", "detailed", "verbose")
SCENARIOS = {
    "formality": (dict(bias={"Formality": 0.3}),
                  {("bias", "Formality", None): 0.3, ("bias", "Conciseness", None): 0.0,
                   ("sensitivity", None, None): 0.0}),
    "mix": (dict(bias={"Formality": -0.5, "Conciseness": 0.2}, follow=0.4),
            {("bias", "Formality", None): -0.5, ("bias", "Conciseness", None): 0.2,
             ("sensitivity", None, None): 0.4, ("sensitivity_trend", "Conciseness", None): 0.0}),
    "trend": (dict(follow=[0.0, 0.1, 0.2, 0.3, 0.4], follow_by="Conciseness"),
              {("sensitivity_trend", "Conciseness", None): 0.1, ("bias", "Conciseness", None): 0.0,
               **{("sensitivity", "Conciseness", lvl): 0.1 * i for i, lvl in enumerate(CONC)}}),
    "null": (dict(), {("bias", "Formality", None): 0.0, ("sensitivity", None, None): 0.0,
                      ("sensitivity_trend", "Technicality", None): 0.0}),
}


def run(bench, reps: int, n_boot: int) -> None:
    out = outcome_table(item_table(bench), np.zeros((bench.n_items, 4)), response_keys(bench))
    levels = response_levels(bench)
    ok_lo, ok_hi = binom.ppf(0.005, reps, 0.95) / reps, binom.ppf(0.995, reps, 0.95) / reps
    print(f"{len(bench.records)} records, {reps} replicates, {n_boot} draws; a correct 95% interval covers "
          f"{ok_lo:.3f}..{ok_hi:.3f} of replicates (99% range)")
    for index, (name, (planted, truth)) in enumerate(SCENARIOS.items()):
        started = time.perf_counter()
        hits = {key: 0 for key in truth}
        any_claim = 0
        for rep in range(reps):
            scores = planted_scores(bench, seed=100_000 * (index + 1) + rep, **planted)  # fresh noise per scenario
            for j in range(4):
                out[f"s{j}"] = scores[:, j]
            table = bias_table(out, levels, n_boot=n_boot, seed=rep)
            every = table[table["domain"] == "All"]
            for (kind, dim, lvl), value in truth.items():
                row = every[(every["kind"] == kind) & (every["dimension"].fillna("") == (dim or ""))
                            & (every["level"].fillna("") == (lvl or ""))].iloc[0]
                hits[(kind, dim, lvl)] += bool(row["raw_lo"] <= value <= row["raw_hi"])
            any_claim += bool(claims(table)["claim"].any())
        print(f"\n{name} ({time.perf_counter() - started:.0f}s)")
        for (kind, dim, lvl), value in truth.items():
            label = " ".join(x for x in (kind, dim, lvl) if x)
            print(f"  {label:<40} truth {value:+.2f}  coverage {hits[(kind, dim, lvl)] / reps:.3f}")
        if name == "null":
            print(f"  reports with any claim (family-wise error, target <= 0.05): {any_claim / reps:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200, help="synthetic records; 0 = the embedded sample")
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--boot", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_synthetic(Path(tmp) / "synth.jsonl", args.records, seed=7) if args.records else None
        run(load_benchmark(path), args.reps, args.boot)


if __name__ == "__main__":
    main()
