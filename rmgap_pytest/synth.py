"""Schema-valid filler records for scale tests and benchmarks.

The text is word salad; only the shape is real: the release's domain
proportions, four profiles per record at least 8 apart, and response lengths
that follow the Conciseness level (so a length-biased scorer behaves as it
would on real data). Every record says ``"synthetic": true``.

``planted_scores`` simulates a reward model with known style bias and
preference sensitivity on any benchmark: the ground truth that validates
``bias.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .data import DIMENSIONS, DOMAINS, N_GROUPS, N_PROMPTS, N_RESPONSES, Benchmark

RELEASE_COUNTS = {"Chat": 397, "Writing": 253, "Reasoning": 225, "Safety": 222}  # 1,097 records
MIN_DISTANCE = 8
_WORDS = ("the model answer user question data result step value reason plan check note example time way "
          "system change small large first next simple clear short long detail point case rule test report "
          "should would could can will may must often always never quite very more less each every").split()
_WORDS_BY_LEVEL = (15, 40, 90, 160, 260)  # mean response words per Conciseness level


def domain_counts(n: int) -> dict[str, int]:
    """Split n records in the release's proportions (largest remainder)."""
    total = sum(RELEASE_COUNTS.values())
    exact = {d: n * c / total for d, c in RELEASE_COUNTS.items()}
    counts = {d: int(v) for d, v in exact.items()}
    for d in sorted(DOMAINS, key=lambda d: exact[d] - counts[d], reverse=True)[: n - sum(counts.values())]:
        counts[d] += 1
    return counts


def _profiles(rng: np.random.Generator) -> list[np.ndarray]:
    while True:  # rejection sampling; ~a few tries per record
        profs = rng.integers(0, 5, size=(N_RESPONSES, len(DIMENSIONS)))
        dists = np.abs(profs[:, None, :] - profs[None, :, :]).sum(-1)
        if (dists[np.triu_indices(N_RESPONSES, 1)] >= MIN_DISTANCE).all():
            return list(profs)


def _text(rng: np.random.Generator, n_words: int) -> str:
    words = rng.choice(_WORDS, size=max(3, n_words))
    return " ".join(words).capitalize() + "."


def synth_record(rng: np.random.Generator, domain: str, index: int) -> dict:
    profs = _profiles(rng)
    dims = list(DIMENSIONS)
    keys = [f"response{i + 1}" for i in range(N_RESPONSES)]
    conc = dims.index("Conciseness")
    responses = [{"key": k, "text": _text(rng, int(_WORDS_BY_LEVEL[p[conc]] * rng.uniform(0.7, 1.3)))}
                 for k, p in zip(keys, profs)]
    winners = rng.permutation(N_RESPONSES)
    groups = [{"group": g + 1, "winner": keys[w],
               "prompts": [{"role": "base" if j == 0 else "rewrite", "text": _text(rng, int(rng.integers(25, 70)))}
                           for j in range(N_PROMPTS)]}
              for g, w in enumerate(winners[:N_GROUPS])]
    styles = {f"r{i + 1}": {d: DIMENSIONS[d][int(p[k])] for k, d in enumerate(dims)} for i, p in enumerate(profs)}
    return {"id": f"synth-{domain.lower()}-{index:05d}", "domain": domain, "source": "rmgap-pytest synth",
            "synthetic": True, "responses": responses, "prompt_groups": groups, "style_assignments": styles}


def write_synthetic(path: str | Path, n_records: int, seed: int = 0) -> Path:
    """Write ``n_records`` synthetic records to ``path`` (JSONL)."""
    if n_records < 1:
        raise ValueError("n_records must be at least 1")
    rng = np.random.default_rng(seed)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for domain, count in domain_counts(n_records).items():
            for i in range(count):
                fh.write(json.dumps(synth_record(rng, domain, i)) + "\n")
    return p


def planted_scores(bench: Benchmark, *, bias: Mapping[str, float] | None = None, follow: float | Sequence[float] = 0.0,
                   follow_by: str | None = None, noise: float = 1.0, response_noise: float = 0.0,
                   offsets: float = 3.0, seed: int = 0) -> np.ndarray:
    """(n_items, 4) scores of a simulated reward model with known effects, in item-table order.

    score = sum_d bias[d] * level_d(response)                 (style bias, raw units per level)
            + follow * [the prompt's user wants the response]   (preference sensitivity, raw units)
            + offsets * (N(0,1) per record + N(0,1) per prompt)  (shifts every estimator must ignore)
            + response_noise * N(0,1) per response               (the same under all 12 prompts)
            + noise * N(0,1) per pair.
    With ``follow_by`` (a dimension), ``follow`` holds 5 values: the sensitivity
    for users who want each level of that dimension. Levels are indices 0..4.
    The ground truth for ``bias.bias_table``'s raw columns; ``rmgap calibrate``
    can plant a drop with it.
    """
    from .bias import response_levels

    rng = np.random.default_rng(seed)
    levels = response_levels(bench)  # (records, 4, 5)
    n = len(bench.records)
    coef = np.array([(bias or {}).get(d, 0.0) for d in DIMENSIONS])
    wanted = np.array([[rec.keys.index(w) for w in rec.winners] for rec in bench.records]).reshape(n, N_GROUPS)
    is_wanted = wanted[:, :, None, None] == np.arange(N_RESPONSES)  # (r, g, 1, j)
    if follow_by is None:
        gain = np.full((n, N_GROUPS), float(follow))
    else:
        by_level = np.asarray(follow, dtype=np.float64)
        dim = list(DIMENSIONS).index(follow_by)
        gain = by_level[np.take_along_axis(levels[:, :, dim], wanted, axis=1).astype(int)]
    s = (np.nan_to_num(levels) @ coef)[:, None, None, :] + gain[:, :, None, None] * is_wanted
    s = s + offsets * (rng.normal(size=(n, 1, 1, 1)) + rng.normal(size=(n, N_GROUPS, N_PROMPTS, 1)))
    s = s + response_noise * rng.normal(size=(n, 1, 1, N_RESPONSES))
    s = s + noise * rng.normal(size=(n, N_GROUPS, N_PROMPTS, N_RESPONSES))
    return s.reshape(-1, N_RESPONSES)
