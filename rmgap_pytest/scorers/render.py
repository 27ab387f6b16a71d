"""How a model directory wants its pairs written, read from its files alone (no torch, no weights).

``model_format`` decides the input layout (``_encode.py``) from config.json
and the tokenizer files, and says so in notes, including where published usage
and the trained format may disagree. ``render_pairs`` is the public entry point
for clients that send pairs to a server (vLLM, SGLang): it gives the exact
token ids the local ``classifier:`` scorer feeds the model, and the text form
when one exists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ScorerError
from ._encode import Encoded, PairEncoder
from ._files import check_max_length, flag, read_config
from ._template import SPECIAL_TOKEN_NAMES, ChatTemplate, read_chat_template

__all__ = ["ModelFormat", "model_format", "render_pairs", "file_encoder", "ENCODER_TYPES"]

# Bidirectional encoders: without a template they read a text pair ([CLS] prompt [SEP] response [SEP]).
# Every other model type is treated as a decoder (plain layout: BOS + prompt + response + EOS).
ENCODER_TYPES = frozenset({
    "bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "deberta", "deberta-v2", "electra", "distilbert",
    "albert", "mpnet", "camembert", "ernie", "modernbert", "nomic_bert", "longformer", "big_bird", "funnel",
    "megatron-bert", "mobilebert", "rembert", "roformer", "squeezebert", "convbert", "data2vec-text", "esm",
    "flaubert", "xlm", "ibert", "luke", "nystromformer", "yoso", "mra", "canine", "xmod", "nezha",
    "roberta-prelayernorm", "layoutlm", "markuplm", "jina_bert", "new", "mega",
})


@dataclass(frozen=True)
class ModelFormat:
    """The input layout a scorer uses for a model directory, and why."""

    layout: str  # chat | plain | pair | concat (see _encode.py)
    template: str | None  # the chat template's source (chat layout)
    template_source: str | None  # where it came from: a file name, or the --rm-chat-template file
    special_tokens: dict[str, str]  # named special tokens, as transformers passes them to a template
    encoder: bool
    pad_equals_eos: bool
    notes: list[str] = field(default_factory=list)


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def special_tokens(path: Path) -> dict[str, str]:
    """Named special tokens from tokenizer_config.json, else special_tokens_map.json."""
    out: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # later files win, as in transformers
        file = path / name
        try:
            data = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
        except ValueError:
            continue
        for key in SPECIAL_TOKEN_NAMES:
            text = _token_text(data.get(key)) if isinstance(data, dict) else None
            if text:
                out[key] = text
    return out


# Tokenizer classes whose model_input_names include token_type_ids (when tokenizer_config.json does not say).
_TYPE_ID_CLASSES = ("Bert", "Electra", "DebertaV2", "Deberta", "Albert", "XLNet", "Funnel", "MobileBert",
                    "SqueezeBert", "ConvBert", "LayoutLM", "RoFormer", "MegatronBert", "Nezha", "RemBert", "Splinter")


def _returns_type_ids(path: Path) -> bool:
    """Whether transformers' tokenizer for ``path`` returns token_type_ids (its ``model_input_names``)."""
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    names = config.get("model_input_names") if isinstance(config, dict) else None
    if isinstance(names, list):
        return "token_type_ids" in names
    cls = str(config.get("tokenizer_class") or "") if isinstance(config, dict) else ""
    return cls.removesuffix("Fast").removesuffix("Tokenizer") in _TYPE_ID_CLASSES


def _post_processor_adds(path: Path, token: str | None) -> bool:
    """Whether tokenizer.json's post-processor puts ``token`` before a single sequence (a BOS it adds)."""
    file = path / "tokenizer.json"
    if not token or not file.is_file():
        return False
    try:
        post = json.loads(file.read_text(encoding="utf-8")).get("post_processor")
    except ValueError:
        return False
    stack = [post]
    while stack:
        proc = stack.pop()
        if not isinstance(proc, dict):
            continue
        if proc.get("type") == "Sequence":
            stack.extend(proc.get("processors") or [])
        elif proc.get("type") == "TemplateProcessing":
            first = (proc.get("single") or [{}])[0]
            if first.get("SpecialToken", {}).get("id") == token:
                return True
    return False


def model_format(path: Path, config: dict[str, Any], kind: str, *, chat_template: str | None = None,
                 add_bos: bool = False) -> ModelFormat:
    """Decide the layout for ``kind`` (classifier, logprob, dpo) from the files (see _encode.py).

    ``chat_template``: a Jinja file that replaces the tokenizer's template.
    Raises ScorerError for a template file that cannot be read or used.
    """
    tokens = special_tokens(path)
    if chat_template:
        file = Path(chat_template).expanduser()
        try:
            template, source = file.read_text(encoding="utf-8"), f"{file} ({flag('chat_template').split(';')[0]})"
        except (OSError, UnicodeDecodeError) as exc:
            raise ScorerError(f"Cannot read the chat template {str(file)!r}: {exc}. Fix: pass a Jinja template "
                              f"file ({flag('chat_template')}).") from None
    else:
        template, source = read_chat_template(path)
    encoder = config.get("model_type") in ENCODER_TYPES or bool(config.get("is_encoder_decoder"))
    pad_eos = bool(tokens.get("pad_token")) and tokens.get("pad_token") == tokens.get("eos_token")
    notes: list[str] = []
    if template is not None:
        chat = ChatTemplate(template, tokens)  # compiles and checks it now, not after loading the model
        layout = "chat"
        notes.append(f"input layout: the chat template from {source}, one user turn and one assistant turn"
                     + (", reward read at the last token" if kind == "classifier" else ""))
        bos = tokens.get("bos_token")
        if bos and not chat.before.startswith(bos) and _post_processor_adds(path, bos):
            notes.append(f"warning: the tokenizer adds {bos} to text it encodes, but the chat template does not "
                         "write it. Rule: score the template's text as written (what apply_chat_template("
                         "tokenize=True) gives). If the model was trained with the BOS, pass add_bos=True "
                         f"({flag('add_bos')})." if not add_bos else
                         f"add_bos: {bos} is prepended to the template's text.")
        if kind == "classifier" and pad_eos and chat.after.endswith(tokens["eos_token"]):
            notes.append(_PAD_EOS_NOTE.format(eos=tokens["eos_token"]))
    elif kind != "classifier":
        layout = "concat"
        notes.append("input layout: no chat template: prompt + response as plain text with the tokenizer's own "
                     f"special tokens. Pass a template with {flag('chat_template')} if the model was tuned on one.")
    elif encoder:
        layout = "pair"
        notes.append(f"input layout: no chat template; {config.get('model_type')} is an encoder, so the pair is a "
                     "text pair ([CLS] prompt [SEP] response [SEP] or the tokenizer's equivalent)")
    else:
        layout = "plain"
        notes.append("input layout: no chat template; a decoder reward model reads BOS (when its tokenizer adds "
                     "one) + prompt + response + EOS, as TRL's RewardTrainer builds plain-text inputs, and the "
                     f"reward is read at that EOS. Pass a template with {flag('chat_template')} if the model was "
                     "trained on one.")
        if pad_eos:
            notes.append(_PAD_EOS_NOTE.format(eos=tokens["eos_token"]))
    return ModelFormat(layout, template, source, tokens, encoder, pad_eos, notes)


_PAD_EOS_NOTE = ("warning: the pad token is the EOS {eos} and the input ends with it. Rule: the reward is read "
                 "at the last token of the pair (that EOS), found from the attention mask. transformers' "
                 "model(**inputs) reads the last token that is not the pad id instead (the one before it); if the "
                 f"model was trained that way, pass pool='last_non_pad' ({flag('pool')}).")


def file_encoder(path: Path, fmt: ModelFormat, *, add_bos: bool = False) -> PairEncoder:
    """A ``PairEncoder`` built from ``tokenizer.json`` (the ``tokenizers`` library only)."""
    from tokenizers import Tokenizer

    file = path / "tokenizer.json"
    if not file.is_file():
        raise ScorerError(f"{str(path)!r} has no tokenizer.json, which rendering without transformers needs. "
                          "Fix: load and re-save the tokenizer with transformers (AutoTokenizer.from_pretrained("
                          "dir).save_pretrained(dir) writes tokenizer.json).")
    backend = Tokenizer.from_file(str(file))
    template = ChatTemplate(fmt.template, fmt.special_tokens) if fmt.layout == "chat" and fmt.template else None
    return PairEncoder(backend, fmt.layout, template=template, bos=fmt.special_tokens.get("bos_token"),
                       eos=fmt.special_tokens.get("eos_token"), add_bos=add_bos, type_ids=_returns_type_ids(path))


def render_pairs(model_dir: str | Path, prompts: Sequence[str], responses: Sequence[str], *,
                 chat_template: str | None = None, max_length: int | None = None,
                 add_bos: bool = False) -> list[Encoded]:
    """The exact inputs ``classifier:MODEL_DIR`` scores, from the directory's files alone.

    Reads config.json, tokenizer.json, tokenizer_config.json and the chat
    template (or ``chat_template``, a Jinja file); imports neither torch nor
    transformers and loads no weights. For each pair, in order, an
    ``Encoded`` with:

    - ``ids``: the token ids the local scorer feeds the model (same layout,
      content-as-text rule, pinned template date and truncation as
      ``classifier:``; ``max_length`` as the scorer's option, checked against
      the model's positions; unset = the model's own limit);
    - ``type_ids``: token type ids (``pair`` layout of encoders), else None;
    - ``prompt`` / ``response``: the content token ranges; ``truncated``;
    - ``text``: a string that tokenizes, with special tokens parsed and none
      added, to exactly ``ids``, or None when there is none (a content that
      spells a special token, an encoder text pair, or a truncation that does
      not round-trip). Send ``text`` only when it is not None; else send ids.

    The reward is read at the last id (``pool='last'``). Exact where
    transformers uses tokenizer.json as it is (tokenizers saved by transformers
    5 and ``PreTrainedTokenizerFast`` ones); the tests compare the ids with
    what the classifier feeds the model for every family in docs/scoring.md.
    Raises ScorerError for a directory without tokenizer.json or a template
    that cannot render a pair.
    """
    path = Path(model_dir).expanduser()
    config = read_config(path)
    limit = check_max_length(max_length, config, path)
    fmt = model_format(path, config, "classifier", chat_template=chat_template, add_bos=add_bos)
    encoder = file_encoder(path, fmt, add_bos=add_bos)
    return encoder.encode(prompts, responses, max_length=limit, with_text=True)
