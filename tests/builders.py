"""Small RMGAP-format records written by the tests (not the release)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

LEVELS = {
    "Formality": ["casual", "informal", "neutral", "formal", "highly_formal"],
    "Conciseness": ["terse", "concise", "moderate", "detailed", "verbose"],
    "Technicality": ["layman", "accessible", "semi_technical", "technical", "highly_specialized"],
    "Objectivity": ["highly_subjective", "subjective", "balanced", "objective", "strictly_objective"],
    "Structural_Coherence": ["fragmented", "loose", "organized", "well_structured", "rigorous"],
}
# Four profiles, pairwise >= 8 apart: level indices per dimension.
PROFILE_INDICES = [(0, 0, 0, 0, 0), (4, 4, 4, 4, 4), (2, 2, 0, 4, 0), (0, 4, 2, 0, 4)]


def make_record(rid: str = "rec-1", domain: str = "Chat", winners: tuple[int, ...] = (3, 1, 4, 2),
                profiles: list[tuple[int, ...]] | None = None) -> dict[str, Any]:
    """A valid record; winners[g] is the 1-based response that wins group g."""
    profiles = profiles or PROFILE_INDICES
    return {
        "id": rid,
        "domain": domain,
        "source": "tests",
        "models": {"response1": "m1"},
        "responses": [{"key": f"response{i}", "text": f"answer {i} of {rid} " + "word " * (5 * i)}
                      for i in range(1, 5)],
        "prompt_groups": [
            {"group": g + 1, "winner": f"response{w}",
             "prompts": [{"role": "base" if j == 0 else "rewrite", "text": f"user {g} of {rid}, wording {j}"}
                         for j in range(3)]}
            for g, w in enumerate(winners)
        ],
        "style_assignments": {f"r{i + 1}": {d: LEVELS[d][p[k]] for k, d in enumerate(LEVELS)}
                              for i, p in enumerate(profiles)},
    }


def write_jsonl(path: Path, records: list[Any], raw_lines: dict[int, str] | None = None) -> Path:
    """Write records one per line; raw_lines replaces line N (1-based) with raw text."""
    lines = [json.dumps(r) for r in records]
    for n, text in (raw_lines or {}).items():
        lines[n - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def small_benchmark(path: Path, per_domain: int = 3) -> Path:
    """A held-back RMGAP-format file with every domain and varied winners."""
    records = []
    orders = [(3, 1, 4, 2), (1, 2, 3, 4), (4, 3, 2, 1), (2, 4, 1, 3)]
    for d, domain in enumerate(["Chat", "Writing", "Reasoning", "Safety"]):
        for i in range(per_domain):
            records.append(make_record(f"{domain.lower()}-{i}", domain, orders[(d + i) % 4]))
    return write_jsonl(path, records)


def mutate(record: dict[str, Any], fn) -> dict[str, Any]:
    rec = copy.deepcopy(record)
    fn(rec)
    return rec
