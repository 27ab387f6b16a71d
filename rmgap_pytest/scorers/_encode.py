"""(prompt, response) -> token ids with the structure scoring needs.

Three ways to render a pair, shared by the classifier and log-prob scorers:

- ``chat``: the tokenizer's chat template, user turn + assistant turn. The
  rendered text already holds the template's BOS, so it is tokenized with
  ``add_special_tokens=False`` (otherwise BOS is doubled).
- ``pair``: ``tokenizer(prompt, response)``, the cross-encoder convention for
  classifiers without a template (token type ids included).
- ``concat``: ``prompt + response`` as plain text with the tokenizer's own
  special tokens, for causal LMs without a template.

Boundary rule (where the response starts): render the prompt alone (chat:
the user turn with ``add_generation_prompt=True``; concat: the prompt text),
tokenize it, and take the longest common token prefix with the full pair's
tokens. Everything after that prefix is the response. When a tokenizer merges
characters across the boundary into one token (``"...ab" + "cd..."`` -> ``"bc"``),
the merged token differs from the prompt-only tokens, so it counts as the
response's first token: the response is never scored without its first
characters.

Truncation rule (``truncate``): when a pair exceeds ``max_length`` tokens, drop
tokens from the START of the prompt text first (the template's own tokens,
such as BOS and role headers, stay). If the response alone is still too long,
drop from the START of the response too, keeping its end: a classifier reads
its score at the final token, where the end-of-turn markers it was trained on
sit. Only if the template's own tokens exceed the limit is the sequence cut
from the left as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Encoded", "encode_pairs", "truncate", "common_prefix_len", "render_chat"]


@dataclass(frozen=True)
class Encoded:
    """One pair's tokens. Ranges are [start, end) token indices into ``ids``."""

    ids: list[int]
    type_ids: list[int] | None
    prompt: tuple[int, int]  # prompt-text tokens: dropped first when too long
    response: tuple[int, int]  # response-text tokens; response[0] is the boundary
    truncated: bool = False


def render_chat(tokenizer: Any, prompt: str, response: str | None = None) -> str:
    """The chat template's text for a user turn (and the assistant's reply)."""
    messages = [{"role": "user", "content": prompt}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    # transformers 5 returns a dict unless return_dict=False.
    text = tokenizer.apply_chat_template(messages, tokenize=False, return_dict=False,
                                         add_generation_prompt=response is None)
    if not isinstance(text, str):  # pragma: no cover - defensive against API drift
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _token_range(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """Tokens whose first character lies in [start, end); None when there are none."""
    inside = [i for i, (s, e) in enumerate(offsets) if start <= s < end and e > s]
    return (inside[0], inside[-1] + 1) if inside else None


def _find(text: str, needle: str, start: int = 0) -> tuple[int, int]:
    """(position, length) of ``needle`` in ``text``; templates that trim content (Llama 3's
    ``| trim``) are matched by the stripped needle. (-1, 0) when absent."""
    for candidate in (needle, needle.strip()):
        at = text.find(candidate, start) if candidate else -1
        if at >= 0:
            return at, len(candidate)
    return -1, 0


def _tokenize(tokenizer: Any, texts: list[str], add_special: bool, offsets: bool) -> Any:
    # verbose=False: over-long pairs are expected here; truncate() handles them, no warning needed.
    return tokenizer(texts, add_special_tokens=add_special, return_offsets_mapping=offsets,
                     return_attention_mask=False, return_token_type_ids=False, verbose=False)


def _encode_rendered(tokenizer: Any, prompts: Sequence[str], responses: Sequence[str],
                     chat: bool) -> list[Encoded]:
    if chat:
        fulls = [render_chat(tokenizer, p, r) for p, r in zip(prompts, responses)]
        heads = [render_chat(tokenizer, p) for p in prompts]
    else:
        fulls = [p + r for p, r in zip(prompts, responses)]
        heads = list(prompts)
    add_special = not chat  # a template writes its own BOS
    has_offsets = bool(getattr(tokenizer, "is_fast", False))
    full_tok = _tokenize(tokenizer, fulls, add_special, has_offsets)
    head_tok = _tokenize(tokenizer, heads, add_special, False)
    out = []
    for i, (prompt, response, full) in enumerate(zip(prompts, responses, fulls)):
        ids = list(full_tok["input_ids"][i])
        r0 = common_prefix_len(ids, head_tok["input_ids"][i])
        prompt_range, r1 = (0, r0), len(ids)  # without offsets: cut from the left
        if has_offsets:
            offsets = full_tok["offset_mapping"][i]
            pc0, pn = _find(full, prompt) if chat else (0, len(prompt))
            found = _token_range(offsets, pc0, pc0 + pn) if pc0 >= 0 else None
            prompt_range = (found[0], min(found[1], r0)) if found and found[0] < r0 else (r0, r0)
            rc0, rn = _find(full, response, max(pc0 + pn, 0)) if chat else (len(prompt), len(response))
            resp = _token_range(offsets, rc0, rc0 + rn) if rc0 >= 0 else None
            r1 = max(r0, resp[1]) if resp else r0
        out.append(Encoded(ids, None, prompt_range, (r0, r1)))
    return out


def _encode_text_pairs(tokenizer: Any, prompts: Sequence[str], responses: Sequence[str]) -> list[Encoded]:
    enc = tokenizer(list(prompts), list(responses), return_attention_mask=False, verbose=False)
    type_ids = enc.get("token_type_ids")
    out = []
    for i, ids in enumerate(enc["input_ids"]):
        ids = list(ids)
        try:
            seq = enc.sequence_ids(i)
        except (ValueError, AttributeError):  # slow tokenizer: no structure, cut from the left
            seq = [None] * len(ids)
        first = [k for k, s in enumerate(seq) if s == 0]
        second = [k for k, s in enumerate(seq) if s == 1]
        prompt = (first[0], first[-1] + 1) if first else (0, 0)
        response = (second[0], second[-1] + 1) if second else (0, len(ids))
        out.append(Encoded(ids, list(type_ids[i]) if type_ids is not None else None, prompt, response))
    return out


def encode_pairs(tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], *, style: str) -> list[Encoded]:
    """Tokenize pairs as ``chat``, ``pair`` or ``concat`` (see the module docstring)."""
    if style == "pair":
        return _encode_text_pairs(tokenizer, prompts, responses)
    if style in ("chat", "concat"):
        return _encode_rendered(tokenizer, prompts, responses, chat=style == "chat")
    raise ValueError(f"unknown encoding style {style!r}")


def _drop(seq: list[int] | None, start: int, count: int) -> list[int] | None:
    return None if seq is None else seq[:start] + seq[start + count:]


def truncate(enc: Encoded, max_length: int | None) -> Encoded:
    """Fit ``enc`` into ``max_length`` tokens by the module's truncation rule."""
    excess = len(enc.ids) - max_length if max_length else 0
    if excess <= 0:
        return enc
    ids, type_ids = enc.ids, enc.type_ids
    (p0, p1), (r0, r1) = enc.prompt, enc.response
    cut = min(excess, p1 - p0)  # 1. the start of the prompt text
    ids, type_ids = _drop(ids, p0, cut), _drop(type_ids, p0, cut)
    p1, excess = p1 - cut, excess - cut
    if r0 >= p0 + cut:  # the response sits after the prompt (always, for our encodings)
        r0, r1 = r0 - cut, r1 - cut
    cut = min(excess, r1 - r0)  # 2. the start of the response text
    ids, type_ids = _drop(ids, r0, cut), _drop(type_ids, r0, cut)
    r1, excess = r1 - cut, excess - cut
    if excess > 0:  # 3. template tokens alone are too long: cut from the left
        ids = ids[excess:]
        type_ids = type_ids[excess:] if type_ids is not None else None
        p0, p1, r0, r1 = (max(0, x - excess) for x in (p0, p1, r0, r1))
    return replace(enc, ids=ids, type_ids=type_ids, prompt=(p0, p1), response=(r0, r1), truncated=True)
