"""LEADER's teacher network: the LLM body (no LM head) and the drug output layer, and how it is built.

`DrugScorer` maps a batch of prompts to the pooled hidden state [B, H] and logits [B, D]
(docs/leader.md#teacher). Given the prompt texts as cache keys (training, validation), it runs the
frozen lower layers through `leader.frozen_prefix`'s per-prompt cache and only the trainable top
layers on every call; without keys (inference) it runs the whole body in fp32 (or under autocast).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import torch

from bench.errors import UserError
from leader.base_models import quiet_transformers, resolve_base_model
from leader.frozen_prefix import PrefixCache, cached_lower_states, decoder_of, upper_states
from leader.llm_inputs import Pooling, pool_hidden
from leader.teacher_head import FeatureNorm, feature_norm_layer

MB = 1 << 20


class DrugScorer(torch.nn.Module):
    """prompts -> pooled hidden [B, H] -> feature norm (identity unless `feature_norm`) -> logits [B, D]
    (LEADER's output layer; a bias only with `head_bias`, leader/teacher_head.py).

    n_frozen: how many lower decoder layers carry no adapter (0: the adapter reaches the first layer,
    so nothing is cached); cache: their per-prompt states; cpu_bf16: bf16 autocast on a CPU device.
    """

    def __init__(self, body: torch.nn.Module, hidden: int, n_drugs: int, pooling: Pooling, *,
                 head_bias: bool = False, feature_norm: FeatureNorm = "none", n_frozen: int = 0,
                 cache: PrefixCache | None = None, cpu_bf16: bool = False):
        super().__init__()
        self.body = body
        self.norm = feature_norm_layer(feature_norm, hidden)
        self.head = torch.nn.Linear(hidden, n_drugs, bias=head_bias)
        self.pooling = pooling
        self.n_frozen = n_frozen
        self.cache = cache
        self.cpu_bf16 = cpu_bf16

    def train(self, mode: bool = True) -> DrugScorer:
        """As nn.Module.train, but frozen lower layers stay in eval mode (no dropout), so that their
        cached states are what a fresh pass would give."""
        super().train(mode)
        if self.n_frozen and self.cache is not None:
            model = decoder_of(self.body)
            model.embed_tokens.eval()
            for layer in model.layers[:self.n_frozen]:
                layer.eval()
        return self

    def _precision(self, device: torch.device):
        if device.type == "cpu" and self.cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                 keys: Sequence[str] | None = None) -> torch.Tensor:
        """float32 [B, H]. input_ids / attention_mask / position_ids int64 [B, T]; keys: one string
        per row naming its prompt (the text) to use the frozen-layer cache, or None."""
        with self._precision(input_ids.device):
            if keys is None or not self.n_frozen or self.cache is None:
                hidden = self.body(input_ids=input_ids, attention_mask=attention_mask,
                                   position_ids=position_ids).last_hidden_state
            else:
                if len(keys) != len(input_ids):
                    raise ValueError(f"{len(keys)} cache keys for a batch of {len(input_ids)} prompts")
                model = decoder_of(self.body)
                lower = cached_lower_states(model, self.cache, keys, input_ids, attention_mask, position_ids,
                                            self.n_frozen)
                hidden = upper_states(model, lower, attention_mask, position_ids, self.n_frozen)
            return pool_hidden(hidden, attention_mask, self.pooling).float()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                keys: Sequence[str] | None = None) -> torch.Tensor:
        """float32 logits [B, D]."""
        return self.head(self.norm(self.features(input_ids, attention_mask, position_ids, keys)))


def build_scorer(config, n_drugs: int, seed: int) -> DrugScorer:
    """A fresh scorer from a `TeacherConfig`: the base model frozen, LoRA on its top `lora_layers`
    decoder layers (0: all, the paper) unless `lora=false`, the output layer (and feature norm)
    seeded by `seed`."""
    from transformers import AutoModel

    quiet_transformers()
    torch.manual_seed(seed)
    c = config
    body = AutoModel.from_pretrained(resolve_base_model(c.base_model), dtype=torch.float32)
    for p in body.parameters():
        p.requires_grad_(False)
    n_layers = int(body.config.num_hidden_layers)
    if c.lora_layers > n_layers:
        raise UserError(f"leader-teacher: lora_layers={c.lora_layers} but {c.base_model} has {n_layers} layers")
    top = c.lora_layers or n_layers
    n_frozen = n_layers - top if c.lora else n_layers
    if c.lora:
        from peft import LoraConfig, get_peft_model

        chosen = dict(layers_to_transform=list(range(n_frozen, n_layers)), layers_pattern="layers") if n_frozen else {}
        body = get_peft_model(body, LoraConfig(
            r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout, bias="none",
            target_modules=[t.strip() for t in c.lora_targets.split(",") if t.strip()], **chosen))
    if c.gradient_checkpointing:
        inner = body.get_base_model() if hasattr(body, "get_base_model") else body
        inner.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    cache = PrefixCache(c.prefix_cache_mb * MB) if n_frozen and c.prefix_cache_mb else None
    if cache is not None:
        decoder_of(body)  # a one-line error now for a base model the split cannot run
    return DrugScorer(body, body.config.hidden_size, n_drugs, c.pooling, head_bias=c.head_bias == "prior",
                      feature_norm=c.feature_norm, n_frozen=n_frozen, cache=cache, cpu_bf16=use_cpu_bf16(c.cpu_bf16))


def use_cpu_bf16(choice: str) -> bool:
    """`cpu_bf16` on|off, or auto: on where the CPU computes bf16 natively (AVX512-BF16 or AMX);
    elsewhere bf16 autocast is emulated and several times slower than fp32 (benchmarks/README.md)."""
    return choice == "on" or (choice == "auto" and cpu_has_native_bf16())


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether /proc/cpuinfo lists avx512_bf16 or amx_bf16 (False where it cannot be read)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
