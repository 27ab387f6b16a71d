"""Chat templates without transformers: load, render, and find where the contents sit.

Rendering mirrors ``transformers`` 5 (``utils/chat_template_utils.py``): a
sandboxed Jinja environment with ``trim_blocks``/``lstrip_blocks``, the
``loopcontrols`` and ``{% generation %}`` extensions, a ``tojson`` filter that
does not escape HTML, ``raise_exception``, and the tokenizer's named special
tokens as variables. One thing differs on purpose: ``strftime_now`` is pinned
to ``PINNED_DATE``. Llama 3.1-3.3 templates write "Today Date: ..." from it;
with the real clock every day would score a different input and a cached
score would not equal a fresh one.

``ChatTemplate.split`` renders a pair with sentinel contents to learn the
template's own text around them (``before + prompt + between + response +
after``) and checks that the real rendering is exactly that with the
contents in place. Truncation and the "content is text" rule then act on the
contents alone, never on the template's copy of the same words (a prompt that
is just "user", or a sentence of the default system prompt).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ScorerError

__all__ = ["PINNED_DATE", "ChatTemplate", "Split", "read_chat_template", "SPECIAL_TOKEN_NAMES"]

PINNED_DATE = datetime(2024, 7, 26)  # Llama 3.1's own fallback ("26 Jul 2024") when the clock is unavailable
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# Contents for the sentinel rendering. NUL never occurs in loaded data (data.py refuses it).
_PROMPT, _RESPONSE = "\x00rmgap-prompt\x00", "\x00rmgap-response\x00"


def read_chat_template(model_dir: Path) -> tuple[str | None, str | None]:
    """``(template, source)`` as transformers 5 finds it in a tokenizer directory.

    ``chat_template.jinja`` wins over ``tokenizer_config.json``'s
    ``chat_template`` (a string, or a list of named templates whose
    ``default`` is used); ``(None, None)`` when there is none.
    """
    file = model_dir / "chat_template.jinja"
    if file.is_file():
        return file.read_text(encoding="utf-8"), file.name
    config_file = model_dir / "tokenizer_config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    except ValueError as exc:
        raise ScorerError(f"{config_file} is not valid JSON ({exc}). Fix: re-save the tokenizer with "
                          "save_pretrained().") from None
    value = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        value = named.get("default")
    return (value, "tokenizer_config.json") if isinstance(value, str) and value else (None, None)


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    import jinja2
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):  # {% generation %} marks assistant text for masks; it renders its body
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = PINNED_DATE.strftime
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise ScorerError(f"The chat template does not compile: {exc}. Fix: correct the template, or pass a "
                          "working one with chat_template=FILE (pytest --rm-chat-template FILE; rmgap eval "
                          "--chat-template FILE).") from None


@dataclass(frozen=True)
class Split:
    """A rendered pair: ``text == before + prompt + between + response + after``."""

    text: str
    prompt: tuple[int, int]  # character range of the prompt as rendered (a template may trim it)
    response: tuple[int, int]
    exact: bool  # False: the template rewrote the contents; ranges were found by search


class ChatTemplate:
    """A compiled chat template and the special tokens it may print."""

    def __init__(self, source: str, special_tokens: dict[str, str]) -> None:
        self.source = source
        self.special_tokens = {k: v for k, v in special_tokens.items() if k in SPECIAL_TOKEN_NAMES and v}
        self._template = _compile(source)
        sentinel = self.render(_PROMPT, _RESPONSE)
        if sentinel.count(_PROMPT) != 1 or sentinel.count(_RESPONSE) != 1 or \
                sentinel.index(_PROMPT) > sentinel.index(_RESPONSE):
            raise ScorerError("The chat template does not write the user's message and then the assistant's "
                              "message exactly once each, so a (prompt, response) pair cannot be placed in it. "
                              "Fix: pass a template that does (chat_template=FILE; pytest --rm-chat-template "
                              "FILE; rmgap eval --chat-template FILE).")
        self.before, rest = sentinel.split(_PROMPT)
        self.between, self.after = rest.split(_RESPONSE)
        self._prompts: dict[str, str | None] = {}
        self._responses: dict[str, str | None] = {}

    def render(self, prompt: str, response: str | None = None) -> str:
        """The template's text for a user turn and, unless None, the assistant's reply."""
        messages = [{"role": "user", "content": prompt}]
        if response is not None:
            messages.append({"role": "assistant", "content": response})
        import jinja2

        try:
            return self._template.render(messages=messages, tools=None, documents=None,
                                         add_generation_prompt=response is None, **self.special_tokens)
        except jinja2.TemplateError as exc:
            raise ScorerError(f"The chat template failed on a (user, assistant) conversation: {exc}. Fix: pass "
                              "a template that renders one user turn and one assistant turn (chat_template="
                              "FILE; pytest --rm-chat-template FILE; rmgap eval --chat-template FILE).") from None

    def _rendered_prompt(self, prompt: str) -> str | None:
        """The prompt as the template writes it (e.g. trimmed), or None if it cannot be isolated."""
        if prompt not in self._prompts:
            text, tail = self.render(prompt, _RESPONSE), self.between + _RESPONSE + self.after
            ok = text.startswith(self.before) and text.endswith(tail) and len(text) >= len(self.before) + len(tail)
            self._prompts[prompt] = text[len(self.before):len(text) - len(tail)] if ok else None
        return self._prompts[prompt]

    def _rendered_response(self, response: str) -> str | None:
        if response not in self._responses:
            text, head = self.render(_PROMPT, response), self.before + _PROMPT + self.between
            ok = text.startswith(head) and text.endswith(self.after) and len(text) >= len(head) + len(self.after)
            self._responses[response] = text[len(head):len(text) - len(self.after)] if ok else None
        return self._responses[response]

    def split(self, prompt: str, response: str) -> Split:
        """Render a pair and locate its contents (see the module docstring)."""
        text = self.render(prompt, response)
        p, r = self._rendered_prompt(prompt), self._rendered_response(response)
        if p is not None and r is not None and text == self.before + p + self.between + r + self.after:
            p0 = len(self.before)
            r0 = p0 + len(p) + len(self.between)
            return Split(text, (p0, p0 + len(p)), (r0, r0 + len(r)), True)
        # The template rewrote a content depending on the other (or moved part of it, such as Qwen3 moving
        # a response's "<think>...</think>" into its reasoning block): find the contents by search.
        return Split(text, *_search(text, prompt, response, len(self.before)), False)


def _search(text: str, prompt: str, response: str, start: int) -> tuple[tuple[int, int], tuple[int, int]]:
    def find(needle: str, at: int) -> tuple[int, int]:
        for candidate in (needle, needle.strip()):
            pos = text.find(candidate, at) if candidate else -1
            if pos >= 0:
                return pos, pos + len(candidate)
        return at, at

    p = find(prompt, start)
    return p, find(response, p[1])
