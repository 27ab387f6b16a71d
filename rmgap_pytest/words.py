"""Checks in a reader's words: ``cell[Chat/Conciseness=terse]`` is "Chat users who want terse answers".

The ids stay everywhere (``-k`` selects on them); these phrases go beside
them in failure messages, the reports' tables, the heatmap's tooltips and the
verdict. A cell is named after the winner's profile level, i.e. what that
user asked for (DESIGN.md section 2).
"""

from __future__ import annotations

from typing import Any

from .metrics import ALL, AVG

# What a user whose right answer has this level wants, completing "users who want ...".
WANTS: dict[str, dict[str, str]] = {
    "Formality": {"casual": "a casual tone", "informal": "an informal tone", "neutral": "a neutral tone",
                  "formal": "a formal tone", "highly_formal": "a highly formal tone"},
    "Conciseness": {"terse": "terse answers", "concise": "concise answers", "moderate": "medium-length answers",
                    "detailed": "detailed answers", "verbose": "long, verbose answers"},
    "Technicality": {"layman": "answers for a layman", "accessible": "accessible answers",
                     "semi_technical": "semi-technical answers", "technical": "technical answers",
                     "highly_specialized": "highly specialised answers"},
    "Objectivity": {"highly_subjective": "highly subjective answers", "subjective": "subjective answers",
                    "balanced": "balanced answers", "objective": "objective answers",
                    "strictly_objective": "strictly objective answers"},
    "Structural_Coherence": {"fragmented": "fragmented, list-like answers", "loose": "loosely structured answers",
                             "organized": "organised answers", "well_structured": "well-structured answers",
                             "rigorous": "rigorously structured answers"},
}
# A dimension as a reader says it: "users are served unevenly by the length they want".
DIMENSION_NOUNS = {"Formality": "tone", "Conciseness": "length", "Technicality": "technical depth",
                   "Objectivity": "objectivity", "Structural_Coherence": "structure"}


def _str(x: Any) -> str | None:
    return None if x is None or (isinstance(x, float) and x != x) else str(x)


def users(domain: Any, dimension: Any, level: Any) -> str:
    """'Chat users who want terse answers'; All gives 'users who want terse answers'."""
    dim, lvl = _str(dimension), _str(level)
    wants = WANTS.get(dim or "", {}).get(lvl or "", f"{dim}={lvl}")
    return f"users who want {wants}" if domain == ALL else f"{domain} users who want {wants}"


def who(kind: str, domain: Any, dimension: Any = None, level: Any = None) -> str:
    """The users (or records) a check speaks for, in plain words; '' for kinds it cannot name."""
    dom, dim, lvl = _str(domain), _str(dimension), _str(level)
    if kind == "cell" or (kind == "regression" and lvl is not None):
        return users(dom, dim, lvl)
    if kind == "bias" or (kind == "regression" and dim is not None):
        return f"all users: what the model rewards whoever asks, by {DIMENSION_NOUNS.get(dim or '', dim)}"
    if kind == "sensitivity" or (kind == "regression" and dom == ALL):
        return "all users: how far the model follows them" if dom == ALL else f"{dom} users: how far the model " \
            "follows them"
    if kind in ("avg", "domain", "regression"):
        return "all users (mean over domains)" if dom == AVG else f"{dom} users"
    if kind == "gap":
        where = "" if dom == ALL else f"{dom} "
        return f"{where}users, by the {DIMENSION_NOUNS.get(dim or '', dim)} they want"
    if kind == "blindness":
        return "all records" if dom == ALL else f"{dom} records"
    return ""


def gap_words(domain: Any, dimension: Any, levels: Any) -> str:
    """'users who want long, verbose answers vs users who want terse answers' from 'verbose vs terse'."""
    best, _, worst = str(levels).partition(" vs ")
    if not worst:
        return who("gap", domain, dimension)
    return f"{users(domain, dimension, best)} vs {users(ALL, dimension, worst).removeprefix('users ')}"
