"""What a judge asks a chat model, and what comes back, whatever runs the model.

Two backends answer the same two questions: ``_chat_local.LocalChat``
(transformers, a model directory) and ``_chat_remote.RemoteChat`` (an
OpenAI-compatible server). The judge scorers see only this interface, so a
local run and a server run of the same model go through the same prompts,
parsing, retries and metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["ChatRequest", "Completion", "AnswerProb", "ChatBackend", "TOP_LOGPROBS", "answer_mass"]

# Alternatives returned per generated token when log-probs are asked for: 20 is
# the most the OpenAI API allows, and vLLM's default --max-logprobs.
TOP_LOGPROBS = 20

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to run greedily (temperature 0)."""

    messages: Messages
    max_tokens: int
    logprobs: bool = False  # also return the top-TOP_LOGPROBS alternatives of every generated token
    labels: int = 0  # listwise questions: how many responses it shows (for the repair turn's wording)


@dataclass
class Completion:
    """One answer: its text, why it stopped, token usage, and per-token log-probs when asked.

    ``tokens[j]`` is the j-th generated token's text and ``tops[j]`` maps the
    top alternatives at that position (the token itself included) to log-probs.
    """

    text: str
    finish: str  # "stop", "length" (ran out of max_tokens) or "refused" (see ``refused``)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens: list[str] | None = None
    tops: list[dict[str, float]] | None = None
    refused: str | None = None  # why no answer was generated (a prompt over the model's limit): not retried


@dataclass
class AnswerProb:
    """log p(answer | prompt) for the verifier; ``exact`` False = an upper bound (answer not in the top list)."""

    logprob: float
    exact: bool = True
    first: str = ""  # the token the model itself would write first
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    notes: dict[str, object] = field(default_factory=dict)


class ChatBackend(Protocol):
    """A chat model the judges can question. Constructing one loads nothing and contacts nobody."""

    what: str  # for messages: "the model at PATH" / "the server at URL"
    ten_is_one_token: bool | None  # whether "10" is one token (None: unknown), see _parse.expected_rating

    def identity(self) -> dict[str, object]:
        """What makes this model's answers what they are (for the cache fingerprint)."""
        ...

    def complete(self, requests: Sequence[ChatRequest], on_done: Callable[[int], None] | None = None
                 ) -> list[Completion]: ...

    def answer_logprob(self, conversations: Sequence[Messages], answer: str) -> list[AnswerProb]: ...


def answer_mass(top: dict[str, float], answer: str) -> float | None:
    """log of the total probability of the listed tokens that read ``answer`` (spaces aside), or None."""
    hits = [lp for token, lp in top.items() if token.strip() == answer]
    if not hits:
        return None
    peak = max(hits)
    return peak + math.log(sum(math.exp(lp - peak) for lp in hits))
