"""A judge model from a local directory: greedy generation and answer log-probs with transformers.

Loading goes through ``_hf`` (safetensors only unless ``allow_pickle``, remote
code only with ``trust_remote_code``, missing weights are an error). Prompts
are rendered with the tokenizer's chat template (which writes its own BOS, so
the text is tokenized with ``add_special_tokens=False``); a tokenizer without
a template gets the messages as plain paragraphs. Requests are batched by
length (generation pads on the left, so every row continues from its end; the
verifier's single forward pass pads on the right, as ``_hf.collate`` does);
generation is greedy (``do_sample=False``), the local equivalent of temperature 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batching import default_token_budget, plan_batches
from ..errors import ScorerError
from ._chat import TOP_LOGPROBS, AnswerProb, ChatRequest, Completion, Messages
from ._encode import Encoded, PairEncoder
from ._files import check_max_length, check_model_dir, model_identity, read_config, resolve_device_name, \
    resolve_dtype_name
from ._hf import collate, load_model, load_tokenizer, model_inputs, torch_device, torch_dtype
from .base import ScorerOptions

__all__ = ["LocalChat"]


class LocalChat:
    """``ChatBackend`` over a causal LM directory; weights load on the first question."""

    def __init__(self, target: str, options: ScorerOptions) -> None:
        self.options = options
        self.path = check_model_dir(Path(target), options, role="judge model")
        self.device_name = resolve_device_name(options.device)  # names only: no torch before the first question
        self.dtype_name = resolve_dtype_name(options.dtype, self.device_name)
        self.max_length = check_max_length(options.max_length, read_config(self.path), self.path)
        self.what = f"the judge model at {self.path}"
        self.device: Any = None
        self.tokenizer: Any = None
        self.model: Any = None
        self.encoder: PairEncoder | None = None
        self.ten_is_one_token: bool | None = None
        self.notes: list[str] = []

    def identity(self) -> dict[str, object]:
        # The resolved dtype, not "auto": greedy answers can flip between bf16 and fp32.
        # "contents": message contents are tokenized as text (control-token spellings kept as text);
        # answers cached before that rendered such contents differently.
        return {"model": model_identity(self.path), "dtype": self.dtype_name,
                "trust_remote_code": self.options.trust_remote_code, "contents": "text"}

    # -- loading and rendering ---------------------------------------------------------------------
    def _load(self) -> None:
        if self.model is not None:
            return
        from transformers import AutoModelForCausalLM

        self.device = torch_device(self.device_name, self.options.device)
        self.tokenizer = load_tokenizer(self.path, self.options)
        self.model = load_model(AutoModelForCausalLM, self.path, self.options, torch_dtype(self.dtype_name),
                                self.device)
        self.ten_is_one_token = len(self.tokenizer.encode("10", add_special_tokens=False)) == 1
        # None for a slow (Python) tokenizer: content is then tokenized as the template wrote it.
        self.encoder = (PairEncoder.from_hf(self.tokenizer, "plain")
                        if getattr(self.tokenizer, "backend_tokenizer", None) is not None else None)
        if not getattr(self.tokenizer, "chat_template", None):
            self.notes.append(f"{self.path}: no chat template; judge messages are sent as plain paragraphs")

    def _render(self, messages: Messages) -> list[int]:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            merged = None
            try:
                text = tok.apply_chat_template(messages, tokenize=False, return_dict=False, add_generation_prompt=True)
            except Exception as exc:  # jinja raises TemplateError for e.g. "system role not supported"
                if messages[0]["role"] != "system":
                    raise ScorerError(f"{self.what}: its chat template failed on a judge prompt ({exc}). Fix: "
                                      "use a chat (instruct) model whose template takes user messages.") from None
                merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]},
                          *messages[2:]]
                text = tok.apply_chat_template(merged, tokenize=False, return_dict=False, add_generation_prompt=True)
            # The template wrote BOS, so nothing is added. Message contents are text: an answer holding
            # "<s>" or "<|eot_id|>" must not end the judge's prompt early (shared case 05, for judges).
            if self.encoder is not None:
                return self.encoder.encode_rendered(text, [m["content"] for m in (merged if merged else messages)])
            return list(tok(text, add_special_tokens=False, verbose=False)["input_ids"])
        text = "\n\n".join(m["content"] for m in messages) + "\n\n"
        lead = list(tok("", verbose=False)["input_ids"])  # what the tokenizer adds: BOS, or nothing
        if self.encoder is None or len(lead) > 1:
            return list(tok(text, verbose=False)["input_ids"])
        return lead + self.encoder.encode_rendered(text, [m["content"] for m in messages])

    @property
    def _pad_id(self) -> int:
        tok = self.tokenizer
        return next((i for i in (tok.pad_token_id, tok.eos_token_id) if i is not None), 0)

    def _eos_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return sorted(set(ids))

    def _room(self, n: int, wanted: int) -> int:
        """New tokens a prompt of n tokens leaves within the model's limit, at most ``wanted``."""
        return wanted if self.max_length is None else min(wanted, self.max_length - n)

    def _too_long(self, n: int, need: int) -> str:
        return (f"the judge prompt has {n} tokens, leaving no room for {need} answer token(s) within the model's "
                f"{self.max_length}-token limit")

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        budget = self.options.token_budget or default_token_budget(self.device_name.split(":")[0])
        return plan_batches(lengths, token_budget=budget, batch_size=self.options.batch_size)

    # -- generation ----------------------------------------------------------------------------------
    def complete(self, requests: Sequence[ChatRequest], on_done: Callable[[int], None] | None = None
                 ) -> list[Completion]:
        self._load()
        out: list[Completion | None] = [None] * len(requests)
        ids = [self._render(r.messages) for r in requests]
        groups: dict[tuple[int, bool], list[int]] = {}
        for i, r in enumerate(requests):
            room = self._room(len(ids[i]), r.max_tokens)  # a long prompt gets a shorter budget, not a refusal
            if room < 1:
                out[i] = Completion("", "refused", len(ids[i]), 0, refused=self._too_long(len(ids[i]), 1))
            else:
                groups.setdefault((room, r.logprobs), []).append(i)
        with torch.inference_mode():
            for (max_tokens, logprobs), members in groups.items():
                for batch in self._batches([len(ids[i]) + max_tokens for i in members]):
                    rows = [members[b] for b in batch]
                    for i, c in zip(rows, self._generate([ids[i] for i in rows], max_tokens, logprobs)):
                        out[i] = c
                        if on_done:
                            on_done(i)
        return out  # type: ignore[return-value]

    def _generate(self, prompts: list[list[int]], max_tokens: int, logprobs: bool) -> list[Completion]:
        from transformers import GenerationConfig

        # Generation continues every row from its end, so rows are padded on the LEFT (generate derives
        # the positions from the attention mask).
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):], mask[row, width - len(p):] = torch.tensor(p), 1
        batch = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        eos = self._eos_ids()
        config = GenerationConfig(max_new_tokens=max_tokens, do_sample=False, eos_token_id=eos or None,
                                  pad_token_id=self._pad_id, return_dict_in_generate=True, output_logits=logprobs)
        out = self.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                  generation_config=config)
        width = batch["input_ids"].shape[1]
        generated = out.sequences[:, width:].cpu().numpy()
        tops = None
        if logprobs:
            steps = torch.stack([x.float() for x in out.logits], dim=1).log_softmax(-1)  # (batch, steps, vocab)
            top_lp, top_ids = steps.topk(min(TOP_LOGPROBS, steps.shape[-1]), dim=-1)
            tops = (top_lp.cpu().numpy(), top_ids.cpu().numpy())
        results = []
        for row, prompt in enumerate(prompts):
            gen = [int(t) for t in generated[row]]
            stop = next((j for j, t in enumerate(gen) if t in eos), None)
            kept = gen if stop is None else gen[:stop]
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            c = Completion(text, "length" if stop is None else "stop", len(prompt),
                           len(gen) if stop is None else stop + 1)
            if tops is not None:
                c.tokens = [self.tokenizer.decode([t]) for t in kept]
                c.tops = [self._top_dict(tops[0][row, j], tops[1][row, j]) for j in range(len(kept))]
            results.append(c)
        return results

    def _top_dict(self, lps: np.ndarray, ids: np.ndarray) -> dict[str, float]:
        top: dict[str, float] = {}
        for lp, i in zip(lps.tolist(), ids.tolist()):
            text = self.tokenizer.decode([i])
            top[text] = float(np.logaddexp(top[text], lp)) if text in top else float(lp)  # same text, other id
        return top

    # -- verifier ------------------------------------------------------------------------------------
    def answer_logprob(self, conversations: Sequence[Messages], answer: str) -> list[AnswerProb]:
        """log p(answer | prompt): summed over the single tokens that read ``answer`` (with or without a
        leading space), or the chained log-prob of its tokens when no single token reads it."""
        self._load()
        tok = self.tokenizer
        singles = sorted({ids[0] for v in (answer, " " + answer)
                          if len(ids := tok.encode(v, add_special_tokens=False)) == 1})
        chain = [] if singles else list(tok.encode(answer, add_special_tokens=False))
        heads = [self._render(m) for m in conversations]
        out: list[AnswerProb | None] = [None] * len(heads)
        ok = []
        for i, head in enumerate(heads):
            need = max(1, len(chain))
            if self._room(len(head), need) < need:
                out[i] = AnswerProb(math.nan, notes={"invalid": self._too_long(len(head), need)},
                                    prompt_tokens=len(head), completion_tokens=0)
            else:
                ok.append(i)
        with torch.inference_mode():
            for batch in self._batches([len(heads[ok[b]]) + len(chain) for b in range(len(ok))]):
                rows = [ok[b] for b in batch]
                for i, a in zip(rows, self._answer_batch([heads[i] for i in rows], singles, chain)):
                    out[i] = a
        return out  # type: ignore[return-value]

    def _answer_batch(self, heads: list[list[int]], singles: list[int], chain: list[int]) -> list[AnswerProb]:
        batch = collate([Encoded(h + chain, None, (0, 0), (0, 0)) for h in heads], self._pad_id, self.device)
        logits = self.model(**model_inputs(self.model, batch)).logits.float()  # right-padded rows
        out = []
        for row, head in enumerate(heads):
            at = len(head) - 1  # the head's last position predicts the answer's first token
            lp = logits[row, at].log_softmax(-1)
            first = self.tokenizer.decode([int(lp.argmax())])
            if singles:
                value = float(torch.logsumexp(lp[singles], dim=0))
            else:
                steps = logits[row, at:at + len(chain)].log_softmax(-1)
                value = float(steps.gather(-1, torch.tensor(chain, device=steps.device)[:, None]).sum())
            out.append(AnswerProb(value, True, first, prompt_tokens=len(head), completion_tokens=0))
        return out
