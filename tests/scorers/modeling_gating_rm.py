"""Repository code of a tiny test reward model (loaded through auto_map with trust_remote_code).

A Llama trunk and, after it, a multi-objective regression layer with a softmax
gate (the layout of ArmoRM-style checkpoints). Like them it finds each row's
last token from the pad id: the token before the first pad, or the last token
when there is none. ``config.reward_output`` picks what the forward returns:
``gating`` (rewards (batch, k), gate, and the preference ``score`` (batch,)),
``value`` (a bare (batch,) tensor) or ``logits1`` (only ``logits`` (batch, 1)).
"""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers import LlamaModel, LlamaPreTrainedModel
from transformers.utils import ModelOutput


@dataclass
class GatingOutput(ModelOutput):
    rewards: Optional[torch.FloatTensor] = None
    gating_output: Optional[torch.FloatTensor] = None
    score: Optional[torch.FloatTensor] = None


@dataclass
class LogitsOutput(ModelOutput):
    logits: Optional[torch.FloatTensor] = None


class GatingRewardModel(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        k = config.num_objectives
        self.regression_layer = nn.Linear(config.hidden_size, k, bias=False)
        self.gating = nn.Sequential(nn.Linear(config.hidden_size, 16), nn.ReLU(), nn.LayerNorm(16),
                                    nn.Linear(16, k))
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        is_pad = (input_ids == self.config.pad_token_id).int()
        last = torch.where(is_pad.any(-1), is_pad.argmax(-1) - 1, torch.full_like(is_pad[:, 0], input_ids.shape[1] - 1))
        h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        rewards = self.regression_layer(h) * 8.0 + 12.0  # real-RM magnitudes: bf16 would round these
        gate = torch.softmax(self.gating(h), dim=-1)
        score = (gate * rewards).sum(-1)
        if self.config.reward_output == "value":
            return score
        if self.config.reward_output == "logits1":
            return LogitsOutput(logits=score[:, None])
        return GatingOutput(rewards=rewards, gating_output=gate, score=score)


class TinyLMForRewardModel(GatingRewardModel):
    """The same model under a reward-model class name, as registered for AutoModel (InternLM2's layout)."""
