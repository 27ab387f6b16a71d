"""Tiny, real transformers models built in a second, for testing scorers without a model hub.

A byte-level BPE tokenizer trained on a few sentences (so any text encodes),
wrapped as a transformers fast tokenizer with BOS/EOS/PAD and a chat template
that writes BOS and ends every turn with EOS (the layout that breaks naive
classifier pooling when pad == eos), plus small Llama models saved with
``save_pretrained`` (safetensors) so the scorers load them from disk exactly as
they would a real checkpoint.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, PreTrainedTokenizerFast

from rmgap_pytest.scorers.base import ScorerOptions

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

SENTENCES = [
    "hello world, hello there, hello again",
    "The reward model prefers concise answers to verbose ones.",
    "Explain how photosynthesis turns sunlight into chemical energy.",
    "A terse reply: yes. A detailed reply covers every step in order.",
    "Write a formal letter to the committee about the budget.",
    "Plants use chlorophyll to capture light; the Calvin cycle fixes carbon.",
    "Dear committee, I write to request an extension of the deadline.",
    "hello hello hello helpful helper help",
]
SPECIALS = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>"]


def build_tokenizer(*, chat: bool = True, pad_is_eos: bool = False, vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """A BPE tokenizer whose post-processor adds BOS, as Llama's does."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(SENTENCES * 4, trainer)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A </s> $B:1", special_tokens=[("<s>", bos), ("</s>", eos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
        pad_token="</s>" if pad_is_eos else "<pad>",
        additional_special_tokens=["<|user|>", "<|assistant|>"],
        chat_template=CHAT_TEMPLATE if chat else None, model_max_length=512)


def llama_config(tokenizer: PreTrainedTokenizerFast, **overrides: object) -> LlamaConfig:
    kwargs: dict[str, object] = dict(
        vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def _save(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_classifier(path: Path, tokenizer: PreTrainedTokenizerFast, *, num_labels: int = 1,
                     seed: int = 0) -> Path:
    """A random LlamaForSequenceClassification saved at ``path``; larger init so scores spread."""
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(llama_config(tokenizer, num_labels=num_labels, initializer_range=0.2))
    return _save(model.eval(), tokenizer, path)


def build_causal_lm(path: Path, tokenizer: PreTrainedTokenizerFast, *, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(tokenizer, initializer_range=0.1))
    return _save(model.eval(), tokenizer, path)


def build_softcapped_lm(path: Path, tokenizer: PreTrainedTokenizerFast, *, seed: int = 0) -> Path:
    """A tiny Gemma 2: its forward soft-caps the logits after the output head."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(seed)
    config = Gemma2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
                          final_logit_softcapping=0.5, initializer_range=0.5, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return _save(Gemma2ForCausalLM(config).eval(), tokenizer, path)


def make_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Prompts and responses of varied lengths (3 to ~60 words), deterministic."""
    rng = random.Random(seed)
    words = " ".join(SENTENCES).split()
    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))
    return [text(3, 40) for _ in range(n)], [text(3, 25) for _ in range(n)]


def options(**kw: object) -> ScorerOptions:
    """Test defaults: float32 (exact comparisons) and no progress bar."""
    kw.setdefault("dtype", "float32")
    kw.setdefault("progress", False)
    return ScorerOptions(**kw)  # type: ignore[arg-type]
