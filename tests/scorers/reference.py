"""The textbook computation a scorer must reproduce: transformers, float32, one pair at a time, no padding.

Kept independent of rmgap's encoder: templates are rendered by transformers'
``apply_chat_template`` (with Llama 3.1's ``date_string`` pinned to the date
rmgap pins), tokenized by the transformers tokenizer, and scored by the
model's own forward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

PINNED = "26 Jul 2024"
P_MARK, R_MARK = "\x00P\x00", "\x00R\x00"


def has_special(tok: Any, text: str) -> bool:
    return any(t in text for t in tok.all_special_tokens)


def chat_text(tok: Any, prompt: str, response: str) -> str:
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return tok.apply_chat_template(messages, tokenize=False, return_dict=False, date_string=PINNED)


def reference_ids(tok: Any, prompt: str, response: str, *, encoder: bool = False) -> list[int]:
    """Token ids of the pair as the model was trained to read it, user content always as text."""
    if tok.chat_template:
        if not (has_special(tok, prompt) or has_special(tok, response)):
            return tok(chat_text(tok, prompt, response), add_special_tokens=False)["input_ids"]
        # Content as text (the method of ../shared/cases/05): the template's own text is tokenized
        # normally and each content that spells a special token on its own with special tokens split.
        text = chat_text(tok, P_MARK, R_MARK)
        a, rest = text.split(P_MARK)
        b, c = rest.split(R_MARK)
        ids: list[int] = []
        pieces = [(a, False), (prompt, True), (b, False), (response, True), (c, False)]
        merged: list[tuple[str, bool]] = []
        for piece, content in pieces:  # contents without a special token stay in the surrounding text
            split = content and has_special(tok, piece)
            if merged and not split and not merged[-1][1]:
                merged[-1] = (merged[-1][0] + piece, False)
            else:
                merged.append((piece, split))
        for piece, split in merged:
            ids += tok(piece, add_special_tokens=False, split_special_tokens=split)["input_ids"]
        return ids
    if encoder:
        return tok(prompt, response, split_special_tokens=True)["input_ids"]
    ids = tok(prompt + response, split_special_tokens=True)["input_ids"]  # TRL: BOS (if added) + text + EOS
    return ids if ids[-1:] == [tok.eos_token_id] else ids + [tok.eos_token_id]


class Reference:
    """A fp32 reward model and its tokenizer, scoring ids one sequence at a time."""

    def __init__(self, path: Path, auto: Any = AutoModelForSequenceClassification, **load: Any) -> None:
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = auto.from_pretrained(path, dtype=torch.float32, **load).eval()
        self.encoder = self.model.config.model_type in ("bert", "roberta", "deberta-v2")

    def ids(self, prompt: str, response: str) -> list[int]:
        return reference_ids(self.tok, prompt, response, encoder=self.encoder)

    def score_ids(self, ids: list[int], label: int = 0, token_type_ids: list[int] | None = None) -> float:
        with torch.inference_mode():
            inputs = {"input_ids": torch.tensor([ids])}
            if token_type_ids is not None:
                inputs["token_type_ids"] = torch.tensor([token_type_ids])
            head = getattr(self.model, "score", None)
            if isinstance(head, torch.nn.Linear) and type(self.model).__module__.startswith("transformers."):
                # The reward at the sequence's last token (transformers' own pooling looks for pad ids).
                hidden = self.model.base_model(**inputs)[0][0, -1]
                return float(head(hidden)[label])
            out = self.model(**inputs)
            value = out if isinstance(out, torch.Tensor) else next(
                getattr(out, k) for k in ("score", "logits", "rewards") if getattr(out, k, None) is not None)
            return float(value.reshape(-1)[label])

    def scores(self, prompts: list[str], responses: list[str], label: int = 0) -> np.ndarray:
        out = []
        for p, r in zip(prompts, responses):
            if self.encoder:
                enc = self.tok(p, r, split_special_tokens=True)
                out.append(self.score_ids(enc["input_ids"], label, enc.get("token_type_ids")))
            else:
                out.append(self.score_ids(self.ids(p, r), label))
        return np.array(out)


def reference_logprobs(model: Any, tok: Any, prompt: str, response: str) -> np.ndarray:
    """log p(token | prefix) of the response's tokens, from one unpadded forward of the model's own logits.

    The response's tokens are those after the longest common prefix of the pair's ids and the prompt's
    (chat: the prompt rendered with the generation prompt; plain: the prompt text).
    """
    if tok.chat_template:
        head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, return_dict=False,
                                       add_generation_prompt=True, date_string=PINNED)
        head_ids = tok(head, add_special_tokens=False, split_special_tokens=has_special(tok, prompt))["input_ids"]
        ids = reference_ids(tok, prompt, response)
        if has_special(tok, prompt):  # the template's text around the prompt stays special
            a = head.split(prompt)[0]
            head_ids = (tok(a, add_special_tokens=False)["input_ids"]
                        + tok(prompt, add_special_tokens=False, split_special_tokens=True)["input_ids"]
                        + tok(head[len(a) + len(prompt):], add_special_tokens=False)["input_ids"])
    else:
        head_ids = tok(prompt, split_special_tokens=True)["input_ids"]
        ids = tok(prompt + response, split_special_tokens=True)["input_ids"]
    start = next((i for i, (x, y) in enumerate(zip(ids, head_ids)) if x != y), min(len(ids), len(head_ids)))
    with torch.inference_mode():
        logp = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return np.array([logp[t - 1, ids[t]].item() for t in range(max(start, 1), len(ids))])
