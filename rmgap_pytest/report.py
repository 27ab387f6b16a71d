"""Placeholder: replaced by the report module (terminal, Markdown, HTML, PNG)."""
from __future__ import annotations


def terminal_summary(ev, checks=None, comparison=None, files=None, width: int = 100) -> str:
    lines = ["domain      Pair    BoN     Consistency"]
    for d in ev.reference["Pair"]:
        lines.append(f"{d:<10} {ev.reference['Pair'][d]:.3f}  {ev.reference['BoN'][d]:.3f}  "
                     f"{ev.reference['Consistency'][d]:.3f}")
    return "\n".join(lines)
