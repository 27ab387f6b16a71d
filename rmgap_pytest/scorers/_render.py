"""Client-side rendering for remote reward models: the token ids a local ``classifier:`` run scores.

``--rm-tokenizer=DIR`` points at the served model's tokenizer files and its
config.json (no weights are needed). Pairs are rendered and truncated here by
the same code and rules as the local classifier scorer (``_encode.py``: chat
template without a doubled BOS, or a text pair without a template; prompt start
dropped first when too long; the length limit from the tokenizer and
``max_position_embeddings``), and the server receives token ids, so it scores
exactly the tokens a local run would.

This module reads files only and never imports torch. When the ``scorers``
branch's public render function lands, ``ClientRenderer.render`` becomes a
one-line call to it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ScorerError
from ._encode import Encoded, encode_pairs, truncate

__all__ = ["ClientRenderer"]

# Files whose bytes decide the rendered tokens (and the length limit): they go into the fingerprint.
_TOKENIZER_PREFIXES = ("tokenizer", "special_tokens", "added_tokens", "vocab", "merges", "chat_template",
                       "spiece", "sentencepiece")


class ClientRenderer:
    """Renders (prompt, response) pairs to token ids with a model's local tokenizer files.

    Construction reads config.json and hashes the tokenizer files (cheap); the
    tokenizer itself loads on the first ``render``.
    """

    def __init__(self, directory: str | Path, *, trust_remote_code: bool = False) -> None:
        path = Path(directory).expanduser()
        if not path.is_dir():
            raise ScorerError(f"--rm-tokenizer {str(path)!r} is not a directory. Fix: point it at a copy of the "
                              "served model's tokenizer files and config.json (the weights are not needed).")
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.startswith(_TOKENIZER_PREFIXES))
        if not files:
            raise ScorerError(f"--rm-tokenizer {str(path)!r} holds no tokenizer files (tokenizer.json, "
                              "tokenizer_config.json, ...). Fix: copy them from the served model's directory, or "
                              "save them with tokenizer.save_pretrained(dir).")
        config_path = path / "config.json"
        if not config_path.is_file():
            raise ScorerError(f"--rm-tokenizer {str(path)!r} has no config.json. Fix: copy the served model's "
                              "config.json next to the tokenizer files: its length limit and label count decide "
                              "the truncation and the score, as in a local run.")
        try:
            self.config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ScorerError(f"{config_path} is not valid JSON ({exc}). Fix: copy it again from the served "
                              "model.") from None
        self.path, self.trust_remote_code = path.resolve(), trust_remote_code
        h = hashlib.sha256()
        for f in [*files, config_path]:
            h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
        self.identity = h.hexdigest()
        self.num_labels = len(self.config["id2label"]) if self.config.get("id2label") \
            else int(self.config.get("num_labels", 2))
        self._tokenizer: Any = None
        self.style = "chat"
        # One rendering at a time: a fast tokenizer's Rust state is not safe to share across threads.
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(str(self.path), trust_remote_code=self.trust_remote_code)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ScorerError(f"Cannot load a tokenizer from --rm-tokenizer {str(self.path)!r}: {exc}. Fix: copy "
                                  "the served model's tokenizer files there.") from None
            # The local classifier's rule: the chat template when the tokenizer has one, else a text pair.
            self.style = "chat" if getattr(tok, "chat_template", None) else "pair"
            self._tokenizer = tok
        return self._tokenizer

    def max_length(self, option: int | None) -> int | None:
        """``option``, else the model's own limit: the smaller of the tokenizer's and the position limit."""
        if option is not None:
            if option < 8:
                raise ScorerError(f"max_length={option} is too small to hold a prompt and a response. "
                                  "Fix: pass a value of at least a few hundred tokens, or leave it unset.")
            return int(option)
        tok = self._load()
        limits = [getattr(tok, "model_max_length", None), self.config.get("max_position_embeddings")]
        usable = [int(x) for x in limits if isinstance(x, (int, float)) and 0 < x < 10_000_000]
        return min(usable) if usable else None

    def render(self, prompts: Sequence[str], responses: Sequence[str], max_length: int | None) -> list[Encoded]:
        """One ``Encoded`` per pair (``ids`` is what the server must score; ``truncated`` says if it was cut)."""
        tok = self._load()
        with self._lock:
            encs = [truncate(e, max_length) for e in encode_pairs(tok, list(prompts), list(responses),
                                                                  style=self.style)]
        if self.style == "pair" and int(self.config.get("type_vocab_size", 0) or 0) > 1 \
                and any(any(e.type_ids or ()) for e in encs):
            raise ScorerError(f"{self.path}: this tokenizer encodes (prompt, response) as a text pair with token "
                              "type ids, which the model uses and a token-id request cannot carry. Fix: serve a "
                              "model with a chat template, or score this cross-encoder locally (classifier:PATH).")
        return encs
