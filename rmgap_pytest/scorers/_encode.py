"""(prompt, response) -> the token ids a model scores, for one tokenizer and input layout.

Layouts (``PairEncoder.layout``):

- ``chat``: the chat template's text for a user turn and an assistant turn
  (``_template.py``), tokenized without added special tokens: the template
  writes its own BOS (``add_bos`` prepends the tokenizer's BOS when it does not).
- ``plain``: decoder reward models without a template: BOS (when the
  tokenizer adds one) + prompt + response + EOS, the input TRL's
  ``RewardTrainer`` builds from plain text; the reward is read at that EOS.
- ``pair``: encoder classifiers (BERT, DeBERTa, RoBERTa, ...) without a
  template: the tokenizer's text-pair form ``[CLS] prompt [SEP] response [SEP]``
  with token type ids.
- ``concat``: causal LMs without a template (``logprob``/``dpo``): prompt +
  response as one text with the tokenizer's own special tokens.

Content is text. A prompt or response that spells a special token
(``<|eot_id|>``, ``<|im_end|>``, HTML ``<s>...</s>``) is encoded as those
characters, never as the control token, so user text cannot end a turn or
forge one; the template's own special tokens stay special. A rendered pair is
tokenized as one string (exactly what ``apply_chat_template(tokenize=True)``
gives) unless a content holds such a literal; then that content alone is
tokenized with special tokens split and the template text around it normally.

Truncation (``max_length``) cuts only content: tokens from the START of the
prompt text first, then from the START of the response text (a classifier
reads its reward at the end, where the template's end-of-turn tokens sit).
The template's own tokens (BOS, role headers, a system prompt, Qwen3's empty
think block, EOS) are never cut; if they alone exceed ``max_length`` it is an
error naming the length needed.

Log-prob boundary (``target``): the prompt is rendered alone with the
generation prompt and tokenized the same way; the response's scored tokens
start where that prefix and the pair's tokens first differ. A token merged
across the boundary (``"Say hel" + "lo world"`` -> ``" hello"``) therefore
counts as the response's first token.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ScorerError
from ._template import ChatTemplate

__all__ = ["Encoded", "PairEncoder", "LAYOUTS", "encode_pairs", "truncate", "common_prefix_len"]

LAYOUTS = ("chat", "plain", "pair", "concat")


@dataclass(frozen=True)
class Encoded:
    """One pair's tokens. Ranges are [start, end) token indices into ``ids``."""

    ids: list[int]
    type_ids: list[int] | None
    prompt: tuple[int, int]  # prompt-text tokens: dropped first when too long
    response: tuple[int, int]  # response-text tokens
    truncated: bool = False
    target: int | None = None  # log-probs: first scored token (None: response[0])
    text: str | None = None  # a string that tokenizes (specials parsed, none added) to exactly ``ids``

    @property
    def scored_from(self) -> int:
        return self.response[0] if self.target is None else self.target


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _shift(index: int, at: int, count: int) -> int:
    """Where ``index`` lands after ``count`` tokens starting at ``at`` are removed."""
    return index - count if index >= at + count else min(index, at)


def _cut(enc: Encoded, at: int, count: int) -> Encoded:
    def s(i: int) -> int:
        return _shift(i, at, count)

    type_ids = None if enc.type_ids is None else enc.type_ids[:at] + enc.type_ids[at + count:]
    return replace(enc, ids=enc.ids[:at] + enc.ids[at + count:], type_ids=type_ids,
                   prompt=(s(enc.prompt[0]), s(enc.prompt[1])), response=(s(enc.response[0]), s(enc.response[1])),
                   target=None if enc.target is None else s(enc.target), truncated=True, text=None)


def truncate(enc: Encoded, max_length: int | None) -> Encoded:
    """Fit ``enc`` into ``max_length`` tokens by the module's truncation rule."""
    excess = len(enc.ids) - max_length if max_length else 0
    if excess <= 0:
        return enc
    assert max_length is not None
    template = len(enc.ids) - (enc.prompt[1] - enc.prompt[0]) - (enc.response[1] - enc.response[0])
    if template + 1 > max_length:  # the template is never cut, and the response keeps a token
        raise ScorerError(f"max_length={max_length} cannot hold this pair: the template's own tokens alone take "
                          f"{template}, and they are never cut. Fix: pass max_length={template + 1} or more "
                          "(a few hundred leaves room for the texts), or leave it unset.")
    cut = min(excess, enc.prompt[1] - enc.prompt[0])
    out = _cut(enc, enc.prompt[0], cut) if cut > 0 else enc
    if excess > cut:
        out = _cut(out, out.response[0], excess - cut)
    return out


class PairEncoder:
    """Pairs -> ``Encoded`` for one ``tokenizers.Tokenizer`` and layout (module docstring)."""

    def __init__(self, backend: Any, layout: str, *, template: ChatTemplate | None = None,
                 bos: str | None = None, eos: str | None = None, add_bos: bool = False,
                 type_ids: bool = False) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}")
        if layout == "chat" and template is None:
            raise ValueError("the chat layout needs a template")
        self.backend, self.layout, self.template, self.add_bos = backend, layout, template, add_bos
        self.bos, self.eos = bos, eos
        self.type_ids = type_ids  # pair layout: pass token type ids (when the tokenizer returns them)
        self.bos_id = backend.token_to_id(bos) if bos else None
        self.eos_id = backend.token_to_id(eos) if eos else None
        specials = sorted({t.content for t in backend.get_added_tokens_decoder().values() if t.special and t.content},
                          key=len, reverse=True)
        self._specials = re.compile("|".join(map(re.escape, specials))) if specials else None
        self._seen: dict[str, bool] = {}

    @classmethod
    def from_hf(cls, tokenizer: Any, layout: str, *, chat_template: str | None = None,
                add_bos: bool = False) -> "PairEncoder":
        """From a loaded transformers tokenizer (its Rust backend, special tokens and template)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ScorerError(f"The tokenizer ({type(tokenizer).__name__}) has no fast (tokenizers) backend, which "
                              "scoring needs to keep user text from becoming control tokens. Fix: save the "
                              "tokenizer with tokenizer.json (a fast tokenizer's save_pretrained writes it).")
        template = None
        if layout == "chat":
            source = chat_template or tokenizer.get_chat_template()
            template = ChatTemplate(source, dict(tokenizer.special_tokens_map))
        return cls(backend, layout, template=template, bos=tokenizer.bos_token, eos=tokenizer.eos_token,
                   add_bos=add_bos, type_ids="token_type_ids" in tokenizer.model_input_names)

    # -- tokenizing --------------------------------------------------------------------------------------------
    def has_special(self, text: str) -> bool:
        """Whether ``text`` spells one of the tokenizer's special tokens (cached: RMGAP repeats texts)."""
        if self._specials is None:
            return False
        found = self._seen.get(text)
        if found is None:
            if len(self._seen) > 200_000:
                self._seen.clear()
            found = self._seen[text] = bool(self._specials.search(text))
        return found

    def encode_rendered(self, text: str, contents: Sequence[str]) -> list[int]:
        """Token ids of ``text``, which a chat template rendered around ``contents`` (the messages'
        texts, in order), without special tokens added: a special token's spelling inside a content
        stays text, the template's own control tokens stay control tokens (as ``_chat`` does for pairs).

        Contents are located in order; one the template rewrote beyond stripping is left as the
        template wrote it. Used by the local LLM judges (``_chat_local``).
        """
        cuts, at = [], 0
        for content in contents:
            for needle in (content, content.strip()):
                k = text.find(needle, at) if needle else -1
                if k >= 0:
                    if self.has_special(needle):
                        cuts.append((k, k + len(needle)))
                    at = k + len(needle)
                    break
        return self._segments([text], [cuts])[0][0]

    def _run(self, inputs: list[Any], *, split: bool, add_special: bool = False) -> list[Any]:
        tk = self.backend
        # A tokenizer.json may carry its own truncation (sentence-transformers saves max_length 128) or
        # padding; transformers switches them off on every call, and so must we: truncation is ours.
        if tk.truncation is not None:
            tk.no_truncation()
        if tk.padding is not None:
            tk.no_padding()
        previous = tk.encode_special_tokens
        tk.encode_special_tokens = split
        try:
            return tk.encode_batch(inputs, add_special_tokens=add_special) if inputs else []
        finally:
            tk.encode_special_tokens = previous

    def _segments(self, texts: list[str], cuts: list[list[tuple[int, int]]]) -> list[tuple[list[int], list]]:
        """Tokenize each text as one string, except the ranges in ``cuts`` (contents holding a special
        token's spelling), which are tokenized on their own with special tokens split.

        Returns ``(ids, char offsets)`` per text.
        """
        pieces: list[tuple[int, int, int, bool]] = []  # (text index, start, end, split)
        for i, (text, ranges) in enumerate(zip(texts, cuts)):
            at = 0
            for start, end in sorted(ranges):
                if start > at:
                    pieces.append((i, at, start, False))
                pieces.append((i, start, end, True))
                at = end
            if at < len(text) or not ranges:
                pieces.append((i, at, len(text), False))
        encoded: dict[int, Any] = {}
        for split in (False, True):
            chosen = [k for k, p in enumerate(pieces) if p[3] == split]
            for k, enc in zip(chosen, self._run([texts[pieces[k][0]][pieces[k][1]:pieces[k][2]] for k in chosen],
                                                split=split)):
                encoded[k] = enc
        out: list[tuple[list[int], list]] = [([], []) for _ in texts]
        for k, (i, start, _end, _split) in enumerate(pieces):
            enc = encoded[k]
            if not out[i][0] and start == 0:  # the usual case: one piece, taken as it is
                out[i] = (list(enc.ids), enc.offsets)
                continue
            out[i][0].extend(enc.ids)
            out[i][1].extend((s + start, e + start) for s, e in enc.offsets)
        return out

    @staticmethod
    def _span(offsets: list, start: int, end: int, starts: list[int]) -> tuple[int, int]:
        """Tokens whose first character lies in [start, end), zero-width ones at either edge left out
        (an empty range where the next token starts, if none). Offsets ascend, so this is two bisections
        over ``starts`` (each token's first character)."""
        i, j = bisect.bisect_left(starts, start), bisect.bisect_left(starts, end)
        while i < j and offsets[i][1] <= offsets[i][0]:
            i += 1
        while j > i and offsets[j - 1][1] <= offsets[j - 1][0]:
            j -= 1
        return (i, j) if i < j else (j, j)

    # -- layouts -----------------------------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str], responses: Sequence[str], *, max_length: int | None = None,
               with_target: bool = False, with_text: bool = False) -> list[Encoded]:
        """Encode and truncate pairs; ``with_target`` adds the log-prob boundary, ``with_text`` the text form."""
        prompts, responses = list(prompts), list(responses)
        if self.layout == "chat":
            encs, texts = self._chat(prompts, responses, with_target)
        elif self.layout == "pair":
            encs, texts = self._pair(prompts, responses), [(None, None)] * len(prompts)
        else:
            encs, texts = self._plain(prompts, responses, with_target, with_text)
        out = []
        for enc, form in zip(encs, texts):
            cut = truncate(enc, max_length)
            out.append(replace(cut, text=self._text_form(enc, cut, *self._with_bos(*form))) if with_text else cut)
        return out

    def _with_bos(self, text: str | None, offsets: list | None, lead: int = 0) -> tuple[str | None, list | None]:
        """The text form of a chat pair to which ``add_bos`` prepended the BOS token."""
        if not lead or text is None or offsets is None:
            return text, offsets
        shift = len(self.bos or "")
        return (self.bos or "") + text, [(0, shift)] + [(a + shift, b + shift) for a, b in offsets]

    def _chat(self, prompts: list[str], responses: list[str], with_target: bool) -> tuple[list[Encoded], list]:
        assert self.template is not None
        splits = [self.template.split(p, r) for p, r in zip(prompts, responses)]
        cuts = [[rng for rng in (s.prompt, s.response) if self.has_special(s.text[rng[0]:rng[1]])] for s in splits]
        tokens = self._segments([s.text for s in splits], cuts)
        heads: list[list[int]] = []
        if with_target:  # the prompt rendered alone, tokenized the same way (its content cut the same)
            head_texts = [self.template.render(p) for p in prompts]
            head_cuts = [[c for c in cut if c == s.prompt and h[c[0]:c[1]] == s.text[c[0]:c[1]]]
                         for cut, s, h in zip(cuts, splits, head_texts)]
            heads = [ids for ids, _ in self._segments(head_texts, head_cuts)]
        prepend = self.add_bos and self.bos_id is not None
        encs, texts = [], []
        for k, (s, (ids, offsets)) in enumerate(zip(splits, tokens)):
            lead = 1 if prepend and ids[:1] != [self.bos_id] else 0
            starts = [a for a, _b in offsets]
            p, r = self._span(offsets, *s.prompt, starts), self._span(offsets, *s.response, starts)
            target = None
            if with_target:
                head = ([self.bos_id] if lead else []) + heads[k]
                target = common_prefix_len(([self.bos_id] if lead else []) + ids, head)
            encs.append(Encoded(([self.bos_id] if lead else []) + ids, None, (p[0] + lead, p[1] + lead),
                                (r[0] + lead, r[1] + lead), target=target))
            texts.append((s.text, offsets, lead))
        return encs, texts

    def _plain(self, prompts: list[str], responses: list[str], with_target: bool,
               with_text: bool = False) -> tuple[list[Encoded], list]:
        """``plain`` (classifier) and ``concat`` (log-probs): content is all text, specials split."""
        fulls = self._run([p + r for p, r in zip(prompts, responses)], split=True, add_special=True)
        heads = self._run(prompts, split=True, add_special=True) if with_target else []
        encs, texts = [], []
        for k, (prompt, enc) in enumerate(zip(prompts, fulls)):
            ids, offsets, special = list(enc.ids), list(enc.offsets), list(enc.special_tokens_mask)
            if self.layout == "plain" and self.eos_id is not None and ids[-1:] != [self.eos_id]:
                ids.append(self.eos_id)  # TRL: the reward is read at the EOS appended to the text
                offsets.append((0, 0))
                special.append(1)
            content = [i for i, m in enumerate(special) if not m]
            in_prompt = [i for i in content if offsets[i][0] < len(prompt)]
            p = (in_prompt[0], in_prompt[-1] + 1) if in_prompt else (content[0] if content else 0,) * 2
            rest = [i for i in content if i >= p[1]]
            r = (rest[0], rest[-1] + 1) if rest else (p[1], p[1])
            target = common_prefix_len(ids, heads[k].ids) if with_target else None
            encs.append(Encoded(ids, None, p, r, target=target))
            texts.append(self._plain_text(prompt + responses[k], ids, offsets, special) if with_text else (None, None))
        return encs, texts

    def _plain_text(self, content: str, ids: list[int], offsets: list,
                    special: list[int]) -> tuple[str | None, list | None]:
        """The pair as one string: the added special tokens (BOS, EOS) spelled out around the content."""
        lead = next((i for i, m in enumerate(special) if not m), len(ids))
        tail = len(ids) - next((i for i, m in enumerate(reversed(special)) if not m), len(ids))
        if any(special[lead:tail]):
            return None, None
        spell = {i: self.backend.id_to_token(ids[i]) or "" for i in (*range(lead), *range(tail, len(ids)))}
        prefix = "".join(spell[i] for i in range(lead))
        out, at = [], 0
        for i in range(lead):
            out.append((at, at + len(spell[i])))
            at += len(spell[i])
        out += [(s + len(prefix), e + len(prefix)) for s, e in offsets[lead:tail]]
        at = len(prefix) + len(content)
        for i in range(tail, len(ids)):
            out.append((at, at + len(spell[i])))
            at += len(spell[i])
        return prefix + content + "".join(spell[i] for i in range(tail, len(ids))), out

    def _pair(self, prompts: list[str], responses: list[str]) -> list[Encoded]:
        out = []
        for enc in self._run(list(zip(prompts, responses)), split=True, add_special=True):
            seq = enc.sequence_ids
            first = [k for k, s in enumerate(seq) if s == 0]
            second = [k for k, s in enumerate(seq) if s == 1]
            prompt = (first[0], first[-1] + 1) if first else (0, 0)
            response = (second[0], second[-1] + 1) if second else (len(seq), len(seq))
            out.append(Encoded(list(enc.ids), list(enc.type_ids) if self.type_ids else None, prompt, response))
        return out

    def _text_form(self, full: Encoded, cut: Encoded, text: str | None, offsets: list | None) -> str | None:
        """The string that tokenizes (specials parsed, none added) to ``cut.ids``, or None when there is none.

        Truncation removes, for each cut text, the characters from its first dropped token to its first
        kept one; the result is checked by tokenizing it, so a form that does not round-trip is None.
        """
        if text is None or offsets is None:
            return None
        if cut.truncated:
            kept = _kept_indices(full, cut)
            removed = [i for i in range(len(full.ids)) if i not in set(kept)]
            for group in reversed(_runs(removed)):
                start = offsets[group[0]][0]
                nxt = group[-1] + 1
                end = offsets[nxt][0] if nxt < len(offsets) else len(text)
                text = text[:start] + text[end:]
        ids = self._run([text], split=False)[0].ids
        return text if list(ids) == cut.ids else None


def _runs(indices: list[int]) -> list[list[int]]:
    """Consecutive runs of sorted indices."""
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][-1] == i - 1:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _kept_indices(full: Encoded, cut: Encoded) -> list[int]:
    """Indices of ``full``'s tokens that survive truncation into ``cut`` (cuts are prompt/response prefixes)."""
    p_drop = (full.prompt[1] - full.prompt[0]) - (cut.prompt[1] - cut.prompt[0])
    r_drop = (full.response[1] - full.response[0]) - (cut.response[1] - cut.response[0])
    drop = set(range(full.prompt[0], full.prompt[0] + p_drop)) | set(range(full.response[0],
                                                                           full.response[0] + r_drop))
    return [i for i in range(len(full.ids)) if i not in drop]


def encode_pairs(tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], *, style: str,
                 max_length: int | None = None, chat_template: str | None = None) -> list[Encoded]:
    """Encode pairs with a transformers tokenizer in layout ``style`` (see the module docstring)."""
    return PairEncoder.from_hf(tokenizer, style, chat_template=chat_template).encode(prompts, responses,
                                                                                      max_length=max_length,
                                                                                      with_target=True)
