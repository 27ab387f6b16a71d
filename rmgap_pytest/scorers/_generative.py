"""What the three LLM-judge kinds share: target, template, fingerprint, retries, per-row metadata.

``verifier:``, ``judge:`` and ``ranker:`` differ only in the question they ask
and how they read the answer. This base class turns TARGET into a backend (a
model directory -> ``LocalChat``, an ``http(s)://`` base URL -> ``RemoteChat``),
fingerprints everything that changes an answer, and runs the bounded retry
loop: an answer that cannot be read is asked again (a reply cut by the token
limit with twice the budget, any other with a repair turn that says what was
wrong), and after ``MAX_ATTEMPTS`` it is an invalid score (NaN) whose reason
and raw text go into the row's metadata. Never a default value.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScorerError
from ._chat import ChatBackend, ChatRequest, Completion
from ._http import excerpt
from ._parse import Parsed, strip_reasoning
from ._prompts import load_template, repair_message
from .base import Scored, ScorerOptions, ScoreStats

__all__ = ["GenerativeScorer", "PairGenerativeScorer", "Answer", "make_backend", "MAX_ATTEMPTS", "DEFAULT_MAX_TOKENS"]

# Bump when a change here (prompts, parsing, retries) changes answers, so cached answers expire.
JUDGE_VERSION = 1
MAX_ATTEMPTS = 3  # first answer + 2 retries, as the reference's max_attempts
# Generated tokens per answer. A plain answer takes under 10, but a reasoning model
# thinks first; a reply cut by the limit is retried with twice the budget, up to the cap.
DEFAULT_MAX_TOKENS = 2048
MAX_TOKENS_CAP = 8192
RAW_CHARS = 200  # characters of an answer kept in the metadata (and the report)
_HOST_PORT = re.compile(r"^(localhost|[\w.-]+\.[\w.-]+|\[[0-9a-fA-F:]+\]):\d+(/|$)")


def make_backend(target: str, options: ScorerOptions) -> ChatBackend:
    """An ``http(s)://`` base URL (comma-separated replicas allowed) or a local model directory."""
    if target.startswith(("http://", "https://")):
        from ._chat_remote import RemoteChat

        return RemoteChat(target, options)
    if _HOST_PORT.match(target) and not Path(target).expanduser().exists():
        raise ScorerError(f"{target!r} looks like a server address without its scheme. Fix: write the base URL "
                          f"in full, e.g. http://{target.rstrip('/')}{'' if '/v1' in target else '/v1'}.")
    from ._chat_local import LocalChat

    return LocalChat(target, options)


@dataclass
class Answer:
    """One question's outcome after all attempts."""

    parsed: Parsed
    completion: Completion
    attempts: int = 1
    usage: dict[str, int] | None = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})

    def add_usage(self, c: Completion) -> None:
        if self.usage is None or c.prompt_tokens is None or c.completion_tokens is None:
            self.usage = None  # the server did not say: unknown, not zero
            return
        self.usage["prompt_tokens"] += c.prompt_tokens
        self.usage["completion_tokens"] += c.completion_tokens

    def meta(self) -> dict[str, Any]:
        m: dict[str, Any] = {"raw": raw_excerpt(self.completion.text)}
        if self.usage is not None:
            m["usage"] = dict(self.usage)
        if self.attempts > 1:
            m["attempts"] = self.attempts
        if not self.parsed.ok:
            m["invalid"] = self.parsed.invalid
        return m


def raw_excerpt(text: str) -> str:
    """The answer part of a reply, short; a reasoning block is summarized by its length."""
    answer, offset, problem = strip_reasoning(text)
    if offset and not problem:
        return f"[reasoning: {offset} characters] " + excerpt(answer, limit=RAW_CHARS)
    return excerpt(text, limit=RAW_CHARS)


class GenerativeScorer:
    """Base of ``VerifierScorer``, ``JudgeScorer`` and ``RankerScorer``. Construction is cheap."""

    kind = "generative"

    def __init__(self, target: str, spec: str, options: ScorerOptions) -> None:
        self.spec, self.options = spec, options
        self.stats = ScoreStats()
        self.max_tokens = options.judge_max_tokens if options.judge_max_tokens is not None else DEFAULT_MAX_TOKENS
        if self.max_tokens < 1:
            raise ScorerError(f"{spec}: judge_max_tokens must be at least 1, got {self.max_tokens}. Fix: leave it "
                              f"unset ({DEFAULT_MAX_TOKENS}) or give room for the answer (and any reasoning).")
        self.template = load_template(self.kind, options.judge_template)
        self.backend = make_backend(target.strip(), options)
        self.fingerprint: str | None = self._fingerprint()

    def _settings(self) -> dict[str, object]:
        """The options that change this kind's answers (besides the model and the template)."""
        return {}

    def _fingerprint(self) -> str:
        doc = {"kind": self.kind, "judge_version": JUDGE_VERSION, "backend": self.backend.identity(),
               "template": self.template.sha256, "settings": self._settings(),
               "max_length": self.options.max_length, "version": self.options.version}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()

    # -- asking ----------------------------------------------------------------------------------------
    def ask(self, requests: Sequence[ChatRequest], parse: Callable[[Completion], Parsed]) -> list[Answer]:
        """Ask every request, re-asking unreadable answers up to ``MAX_ATTEMPTS`` times in all."""
        current = list(requests)
        answers: list[Answer | None] = [None] * len(current)
        pending = list(range(len(current)))
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if not pending:
                break
            completions = self.backend.complete([current[i] for i in pending])
            retry = []
            for i, c in zip(pending, completions):
                parsed = Parsed(invalid=c.refused, final=True) if c.refused else parse(c)
                answer = answers[i]
                if answer is None:
                    answer = answers[i] = Answer(parsed, c)
                else:
                    answer.parsed, answer.completion, answer.attempts = parsed, c, attempt
                answer.add_usage(c)
                if not parsed.ok and not parsed.final and attempt < MAX_ATTEMPTS:
                    current[i] = self._again(current[i], c, parsed)
                    retry.append(i)
            pending = retry
        self._after_backend_use()
        return answers  # type: ignore[return-value]

    def _again(self, request: ChatRequest, c: Completion, parsed: Parsed) -> ChatRequest:
        if c.finish == "length":  # cut off (usually while reasoning): the same question, more room
            return replace(request, max_tokens=min(request.max_tokens * 2, MAX_TOKENS_CAP))
        turn = [{"role": "assistant", "content": c.text},
                {"role": "user", "content": repair_message(self.kind, str(parsed.invalid), request.labels or 4)}]
        return replace(request, messages=request.messages + turn)

    def _after_backend_use(self) -> None:
        self.stats.model_loaded = True
        for note in getattr(self.backend, "notes", []):
            if note not in self.stats.notes:
                self.stats.notes.append(note)


def check_choice(spec: str, name: str, value: str, choices: Sequence[str]) -> str:
    from ..errors import did_you_mean

    if value not in choices:
        raise ScorerError(f"{spec}: {name}={value!r} is not one of {', '.join(choices)}."
                          f"{did_you_mean(value, choices)}")
    return value


class PairGenerativeScorer(GenerativeScorer):
    """Base of the pair-level kinds (verifier, judge): one score per (prompt, response)."""

    unit = "pair"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        return self.score_detailed(prompts, responses).values

    def score_detailed(self, prompts: Sequence[str], responses: Sequence[str]) -> Scored:
        """Scores and per-pair metadata for parallel lists; ScorerError when their lengths differ."""
        if len(prompts) != len(responses):
            raise ScorerError(f"{self.spec}: got {len(prompts)} prompts but {len(responses)} responses; "
                              "they must be parallel lists.")
        return self._score_pairs(prompts, responses)

    def _score_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> Scored:
        raise NotImplementedError
