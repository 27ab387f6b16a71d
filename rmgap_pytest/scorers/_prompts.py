"""The judges' prompts: defaults, user templates (``--rm-judge-template``), and repair turns.

The default prompts are our own wording of the reference implementation's
criteria (github.com/nanzhi84/RMGAP, ``src/rmgap/rm/``), so scores stay
comparable with the paper: a response is judged on (1) relevance to the query
(it addresses what was asked, directly and completely, without irrelevant
material) and (2) factual accuracy and helpfulness. The verifier answers
YES/NO, the pointwise judge 1-10 with the same five bands, the listwise judge
a best-to-worst permutation of the labels.

A template file replaces the user message. Variables, written ``{name}``
(``{{`` and ``}}`` for literal braces):

- verifier, judge: ``{prompt}`` (the user's query) and ``{response}``;
- ranker: ``{prompt}``, ``{responses}`` (every response under a ``### Response X``
  heading, in the shown order), ``{labels}`` (``A, B, C, D``), ``{example}``
  (``C>A>D>B``), and ``{response_a}``, ``{response_b}``, ... one by one.

A line holding only ``---`` splits the file: above it the system message
(empty = none), below it the user message. Without it the default system
message is kept. The parsing rules do not change with the template, so a
template must still ask for the answer format shown in docs/judges.md.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScorerError, did_you_mean
from ._parse import labels

__all__ = ["Template", "load_template", "repair_message", "KIND_FORMATS"]

SYSTEM = ("You are an impartial evaluator of AI assistants. You judge how well a response serves the "
          "request it answers.")

_CRITERIA = (
    "Judge on two criteria:\n"
    "1. Relevance to the query: the response addresses what was asked, directly and completely, "
    "and contains nothing irrelevant.\n"
    "2. Factuality and helpfulness: what the response says is correct and useful to the person "
    "who asked.\n")

VERIFIER = (
    "Decide whether the response below is a good response to the query.\n\n" + _CRITERIA +
    "A good response meets both criteria.\n\n"
    "### Query\n{prompt}\n\n"
    "### Response\n{response}\n\n"
    "Is this a good response to the query? Answer with one word: YES or NO.")

JUDGE = (
    "Rate the response below to the query on a scale from 1 to 10.\n\n" + _CRITERIA + "\n"
    "### Query\n{prompt}\n\n"
    "### Response\n{response}\n\n"
    "Scale:\n"
    "1-2: very poor, fails most criteria.\n"
    "3-4: poor, serious problems in several respects.\n"
    "5-6: average, meets the basic need with clear flaws.\n"
    "7-8: good, solid with minor problems.\n"
    "9-10: excellent, close to perfect on every criterion.\n\n"
    "Reply with the rating only: one whole number from 1 to 10, nothing else.")

RANKER = (
    "Rank the responses below to the query from best to worst.\n\n" + _CRITERIA + "\n"
    "### Query\n{prompt}\n\n"
    "{responses}\n\n"
    "Reply with the ranking only: the labels {labels}, best first, joined by '>' with no spaces, "
    "for example {example}. Use every label exactly once and write nothing else.")

DEFAULTS = {"verifier": VERIFIER, "judge": JUDGE, "ranker": RANKER}
KIND_FORMATS = {"verifier": "one word: YES or NO", "judge": "one whole number from 1 to 10",
                "ranker": "the ranking, best first, joined by '>' (for example {example})"}
_VARIABLES = {"verifier": {"prompt", "response"}, "judge": {"prompt", "response"},
              "ranker": {"prompt", "responses", "labels", "example"}
              | {f"response_{c}" for c in "abcdefghijklmnopqrstuvwxyz"}}
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Template:
    """A judge prompt: system message (None = none), user text, its source and hash."""

    kind: str
    system: str | None
    user: str
    source: str  # "default" or the file path
    sha256: str

    def messages(self, **values: str) -> list[dict[str, str]]:
        """The chat messages for one question; ``values`` fill the template's variables."""
        text = _FIELD.sub(lambda m: _fill(m, values), self.user)
        out = [{"role": "system", "content": self.system}] if self.system else []
        return out + [{"role": "user", "content": text}]


def _fill(m: re.Match[str], values: dict[str, str]) -> str:
    token = m.group(0)
    if token in ("{{", "}}"):
        return token[0]
    if m.group(1) not in values:  # {response_e} in a template, but this item has 4 responses
        raise ScorerError(f"The judge template uses {token} but this question has no such value "
                          f"(it has {', '.join(sorted(values))}). Fix: use only variables every question has.")
    return values[m.group(1)]


def ranker_values(prompt: str, shown: list[str]) -> dict[str, str]:
    """Template values for one listwise question; ``shown[j]`` is the response labelled j."""
    names = labels(len(shown))
    values = {"prompt": prompt, "labels": ", ".join(names), "example": _example(names),
              "responses": "\n\n".join(f"### Response {c}\n{text}" for c, text in zip(names, shown))}
    values.update({f"response_{c.lower()}": text for c, text in zip(names, shown)})
    return values


def _example(names: str) -> str:
    # A fixed non-identity order, so the example does not suggest "A first".
    order = names[2:3] + names[0:1] + names[3:] + names[1:2] if len(names) >= 4 else names[::-1]
    return ">".join(order)


def load_template(kind: str, path: str | None) -> Template:
    """The default prompt of ``kind``, or the file at ``path`` checked against its variables."""
    if path is None:
        text = DEFAULTS[kind]
        return Template(kind, SYSTEM, text, "default", hashlib.sha256((SYSTEM + "\0" + text).encode()).hexdigest())
    file = Path(path).expanduser()
    try:
        raw = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScorerError(f"Judge template {str(file)!r} does not exist. Fix: pass the path of a text file "
                          "(--rm-judge-template), or leave it unset for the default prompt.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScorerError(f"Cannot read the judge template {str(file)!r} ({exc}). Fix: save it as UTF-8 text.") \
            from None
    lines = raw.splitlines()
    if "---" in (line.strip() for line in lines):
        cut = next(i for i, line in enumerate(lines) if line.strip() == "---")
        system: str | None = "\n".join(lines[:cut]).strip() or None
        user = "\n".join(lines[cut + 1:]).strip()
    else:
        system, user = SYSTEM, raw.strip()
    _check(kind, file, user)
    digest = hashlib.sha256(((system or "") + "\0" + user).encode()).hexdigest()
    return Template(kind, system, user, str(file), digest)


def _check(kind: str, file: Path, user: str) -> None:
    known = _VARIABLES[kind]
    used = set()
    for m in _FIELD.finditer(user):
        if m.group(0) in ("{{", "}}"):
            continue
        name = m.group(1)
        line = user[:m.start()].count("\n") + 1
        if name is None or name not in known:
            shown = m.group(0)
            hint = did_you_mean(name, sorted(known)) if name else ""
            raise ScorerError(f"Judge template {str(file)!r}, line {line} of the user message: {shown!r} is not "
                              f"a {kind} variable.{hint} Fix: use {', '.join('{' + v + '}' for v in _core(kind))}; "
                              "write {{ and }} for literal braces.")
        used.add(name)
    missing = [v for v in ("prompt",) if v not in used]
    if kind in ("verifier", "judge") and "response" not in used:
        missing.append("response")
    if kind == "ranker" and "responses" not in used and "response_a" not in used:
        missing.append("responses")
    if missing:
        raise ScorerError(f"Judge template {str(file)!r} never uses {', '.join('{' + v + '}' for v in missing)}, "
                          f"so the {kind} would not see what it judges. Fix: add "
                          f"{' and '.join('{' + v + '}' for v in missing)} to the template.")


def _core(kind: str) -> list[str]:
    return ["prompt", "response"] if kind != "ranker" else ["prompt", "responses", "labels", "example", "response_a"]


def repair_message(kind: str, reason: str, k: int = 4) -> str:
    """The user turn that asks again after an answer that could not be read."""
    fmt = KIND_FORMATS[kind].format(example=_example(labels(k)))
    return f"Your reply could not be read: {reason}. Reply again with {fmt}, and nothing else."
