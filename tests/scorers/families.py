"""Tiny random-weight models in the formats of published reward-model families, built locally.

Each family has its own special tokens, chat template (close to the published
one: Llama 3's trimmed headers, Llama 3.1's date line and system block,
Qwen2.5's default system prompt, Qwen3's empty think block, Gemma 2's
``model`` role, Mistral's ``[INST]``), architecture and position scheme.
Nothing is downloaded: tokenizers are byte-level BPEs trained on a few
sentences, weights are random, and everything is saved with
``save_pretrained`` and loaded back through the Auto classes as a real
checkpoint would be.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent

CORPUS = [
    "hello world, hello there, hello again",
    "The reward model prefers concise answers to verbose ones.",
    "Explain how photosynthesis turns sunlight into chemical energy.",
    "A terse reply: yes. A detailed reply covers every step in order.",
    "Plants use chlorophyll to capture light; the Calvin cycle fixes carbon.",
    "Dear committee, I write to request an extension of the deadline.",
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    "Cutting Knowledge Date: December 2023 Today Date: 26 Jul 2024 system user assistant model",
    "caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \U0001f600 \u0645\u0631\u062d\u0628\u0627",
]

LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
          "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
          "{{ content }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

LLAMA31 = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

QWEN25 = """{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- else %}
    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant") %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

QWEN3 = """{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}
"""

GEMMA2 = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
          "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + "
          "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}"
          "{{'<start_of_turn>model\\n'}}{% endif %}")

MISTRAL = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
           "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")

ZEPHYR_NO_BOS = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@dataclass
class Family:
    name: str
    template: str | None
    specials: list[str]  # special tokens (special=True), the first ones are named below
    named: dict[str, str]  # bos_token/eos_token/pad_token/... -> token
    config_class: str
    model_class: str
    config: dict[str, Any] = field(default_factory=dict)
    post: str = "none"  # tokenizer post-processor: none | bos | cls_sep | roberta
    metaspace: bool = False  # SentencePiece-style pre-tokenizer ("\u2581" for spaces) instead of byte-level
    extra: list[str] = field(default_factory=list)  # added tokens that are not special (Qwen3's <think>)
    literal: str = ""  # a special token a user might type

    @property
    def encoder(self) -> bool:
        return self.post in ("cls_sep", "roberta")


LLAMA_CFG = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512)
L3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
L3_NAMED = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|end_of_text|>"}
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_NAMED = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
ENC_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ENC_NAMED = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
             "mask_token": "[MASK]"}
ENC_CFG = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)

FAMILIES = {
    "llama3": Family("llama3", LLAMA3, L3_SPECIALS, L3_NAMED, "LlamaConfig", "LlamaForSequenceClassification",
                     LLAMA_CFG, post="bos", literal="<|eot_id|>"),
    "llama31": Family("llama31", LLAMA31, L3_SPECIALS, L3_NAMED, "LlamaConfig", "LlamaForSequenceClassification",
                      LLAMA_CFG, post="bos", literal="<|start_header_id|>"),
    "qwen25": Family("qwen25", QWEN25, QWEN_SPECIALS, QWEN_NAMED, "Qwen2Config", "Qwen2ForSequenceClassification",
                     LLAMA_CFG, literal="<|im_end|>"),
    "qwen3": Family("qwen3", QWEN3, QWEN_SPECIALS, QWEN_NAMED, "Qwen3Config", "Qwen3ForSequenceClassification",
                    {**LLAMA_CFG, "head_dim": 12}, extra=["<think>", "</think>"], literal="<|im_start|>"),
    "gemma2": Family("gemma2", GEMMA2, ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
                     {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"}, "Gemma2Config",
                     "Gemma2ForSequenceClassification",
                     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                          num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
                          final_logit_softcapping=0.5, attn_logit_softcapping=50.0),
                     post="bos", literal="<end_of_turn>"),
    "mistral": Family("mistral", MISTRAL, ["<unk>", "<s>", "</s>"], {"bos_token": "<s>", "eos_token": "</s>",
                      "unk_token": "<unk>"}, "MistralConfig", "MistralForSequenceClassification", LLAMA_CFG,
                      post="bos", literal="</s>"),
    "mistral_spm": Family("mistral_spm", MISTRAL, ["<unk>", "<s>", "</s>"], {"bos_token": "<s>", "eos_token": "</s>",
                          "unk_token": "<unk>"}, "MistralConfig", "MistralForSequenceClassification", LLAMA_CFG,
                          post="bos", literal="</s>", metaspace=True),
    "zephyr_no_bos": Family("zephyr_no_bos", ZEPHYR_NO_BOS, ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>"],
                            {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>"}, "LlamaConfig",
                            "LlamaForSequenceClassification", LLAMA_CFG, post="bos", literal="<|assistant|>"),
    "plain_llama": Family("plain_llama", None, ["<unk>", "<s>", "</s>", "<pad>"],
                          {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}, "LlamaConfig",
                          "LlamaForSequenceClassification", LLAMA_CFG, post="bos", literal="</s>"),
    "plain_qwen": Family("plain_qwen", None, QWEN_SPECIALS, {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
                         "Qwen2Config", "Qwen2ForSequenceClassification", LLAMA_CFG, literal="<|endoftext|>"),
    "bert": Family("bert", None, ENC_SPECIALS, ENC_NAMED, "BertConfig", "BertForSequenceClassification",
                   {**ENC_CFG, "max_position_embeddings": 512, "pad_token_id": 0}, post="cls_sep", literal="[SEP]"),
    "roberta": Family("roberta", None, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                      {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "cls_token": "<s>",
                       "sep_token": "</s>", "unk_token": "<unk>", "mask_token": "<mask>"}, "RobertaConfig",
                      "RobertaForSequenceClassification",
                      {**ENC_CFG, "max_position_embeddings": 514, "pad_token_id": 1, "bos_token_id": 0,
                       "eos_token_id": 2, "type_vocab_size": 1}, post="roberta", literal="</s>"),
    "deberta": Family("deberta", None, ENC_SPECIALS, ENC_NAMED, "DebertaV2Config",
                      "DebertaV2ForSequenceClassification",
                      {**ENC_CFG, "max_position_embeddings": 512, "pad_token_id": 0, "relative_attention": True,
                       "position_biased_input": False, "pos_att_type": ["p2c", "c2p"], "max_relative_positions": -1,
                       "position_buckets": 64, "type_vocab_size": 0}, post="cls_sep", literal="[CLS]"),
}


def tokenizer(family: Family) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=family.named.get("unk_token")))
    if family.metaspace:  # Llama 2 / Mistral v0.1 style: "\u2581" marks spaces, prepended to the first word
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
        alphabet = sorted(set("".join(CORPUS)) | set("[]/<>|_-.,:;!?'\"()$0123456789\n"))
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=family.specials, initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    named = family.named
    if family.post == "bos":
        bos = named["bos_token"]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    elif family.post == "cls_sep":
        cls_, sep = named["cls_token"], named["sep_token"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls_} $A {sep}", pair=f"{cls_} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls_, tok.token_to_id(cls_)), (sep, tok.token_to_id(sep))])
    elif family.post == "roberta":
        tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                          ("<s>", tok.token_to_id("<s>")))
    if family.extra:
        tok.add_tokens(family.extra)  # added but not special, as Qwen3's <think>
    extra_specials = [t for t in family.specials if t not in named.values()]
    kw: dict[str, Any] = {"model_input_names": ["input_ids", "token_type_ids", "attention_mask"]} \
        if family.name == "bert" else {}  # as BERT's own tokenizer: it returns token type ids
    return PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=family.template, model_max_length=512,
                                   additional_special_tokens=extra_specials, **named, **kw)


def _config(family: Family, tok: PreTrainedTokenizerFast, **over: Any) -> Any:
    kw: dict[str, Any] = dict(vocab_size=len(tok), initializer_range=0.2, num_labels=1)
    if not family.encoder:
        kw.update(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                  tie_word_embeddings=False)
    kw.update(family.config)
    kw.update(over)
    return getattr(transformers, family.config_class)(**kw)


def build(family: str | Family, root: Path, *, kind: str = "classifier", seed: int = 0, **config: Any) -> Path:
    """Save a tiny ``kind`` model (classifier or causal) of ``family`` under ``root``; returns its directory."""
    fam = FAMILIES[family] if isinstance(family, str) else family
    path = Path(root) / f"{fam.name}-{kind}-{seed}" if not config else Path(root) / f"{fam.name}-{kind}-{seed}-x"
    if (path / "config.json").is_file():
        return path
    tok = tokenizer(fam)
    torch.manual_seed(seed)
    if kind == "classifier":
        model = getattr(transformers, fam.model_class)(_config(fam, tok, **config))
    else:
        cls = fam.model_class.replace("ForSequenceClassification", "ForCausalLM")
        model = getattr(transformers, cls)(_config(fam, tok, **{"initializer_range": 0.05, **config}))
    path.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_custom(root: Path, *, output: str = "gating", pad_is_eos: bool = False, arch: str | None = None,
                 auto: str = "AutoModelForSequenceClassification") -> Path:
    """A reward model shipped as repository code (auto_map), read through its own forward.

    ``output``: ``gating`` (ArmoRM-like: rewards (B, k), gate, score (B,)), ``value`` (a plain (B,) tensor),
    ``logits1`` (an output with logits (B, 1) only).
    """
    fam = FAMILIES["llama3"]
    named = dict(fam.named, pad_token=fam.named["eos_token"]) if pad_is_eos else fam.named
    fam = Family(f"custom_{output}{'_padeos' if pad_is_eos else ''}_{auto}", LLAMA3, fam.specials, named, "LlamaConfig",
                 "LlamaForSequenceClassification", LLAMA_CFG, post="bos", literal="<|eot_id|>")
    path = Path(root) / fam.name
    if (path / "config.json").is_file():
        return path
    import importlib.util

    spec = importlib.util.spec_from_file_location("modeling_gating_rm", HERE / "modeling_gating_rm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tok = tokenizer(fam)
    cfg = _config(fam, tok)
    cfg.num_objectives, cfg.reward_output = 4, output
    torch.manual_seed(0)
    model = module.GatingRewardModel(cfg).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    shutil.copy(HERE / "modeling_gating_rm.py", path / "modeling_gating_rm.py")
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = [arch or "LlamaForRewardModelWithGating"]
    config["auto_map"] = {auto: "modeling_gating_rm.GatingRewardModel"}
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return path
