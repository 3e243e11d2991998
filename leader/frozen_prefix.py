"""A LLaMA-style decoder run in two parts, the frozen lower part cached per prompt.

With LoRA on the top K decoder layers only (`lora_layers`, docs/leader.md#training-speed), or no
LoRA at all, the embeddings and the layers below the first adapted one never change during training.
Their output for a prompt is computed once, without gradients, and kept per prompt text
(`PrefixCache`); later epochs and repeated validation passes run the top layers alone.

The split mirrors `LlamaModel.forward` (transformers 5.x): the causal mask comes from
`create_causal_mask` over the 2-D padding mask, the rotary (cos, sin) from the model's `rotary_emb`
at the batch's position ids, and each decoder layer is called with both; the final RMSNorm follows
the last layer. A row's states at its real tokens do not depend on the padding around it (position
ids come from the mask, padded keys are masked), so states cached from one batch can be re-padded
into another.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bench.errors import UserError

FP16_SAFE = 60000.0  # a state with larger values is kept in fp32 (fp16's largest finite value is 65504)


def decoder_of(body: torch.nn.Module) -> torch.nn.Module:
    """The LlamaModel-like module inside `body` (itself, or under a peft wrapper): it must have
    `embed_tokens`, `layers`, `norm` and `rotary_emb`."""
    model = body.get_base_model() if hasattr(body, "get_base_model") else body
    missing = [name for name in ("embed_tokens", "layers", "norm", "rotary_emb") if not hasattr(model, name)]
    if missing:
        raise UserError(f"leader-teacher: lora_layers (or lora=false caching) needs a LLaMA-style base model; "
                        f"{type(model).__name__} has no {', '.join(missing)}")
    return model


def run_layers(model: torch.nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor,
               position_ids: torch.Tensor, layers: range) -> torch.Tensor:
    """hidden [B, T, H] through `model.layers[i]` for i in `layers`; attention_mask / position_ids
    int64 [B, T] as from `encode_prompts`. Returns [B, T, H] (no final norm)."""
    from transformers.masking_utils import create_causal_mask

    causal = create_causal_mask(config=model.config, inputs_embeds=hidden, attention_mask=attention_mask,
                                cache=None, position_ids=position_ids)
    rotary = model.rotary_emb(hidden, position_ids=position_ids)
    for i in layers:
        hidden = model.layers[i](hidden, attention_mask=causal, position_embeddings=rotary,
                                 position_ids=position_ids)
    return hidden


@torch.no_grad()
def lower_states(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 position_ids: torch.Tensor, n_frozen: int) -> torch.Tensor:
    """[B, T, H]: the embeddings through the first `n_frozen` decoder layers, without gradients."""
    hidden = model.embed_tokens(input_ids)
    return run_layers(model, hidden, attention_mask, position_ids, range(n_frozen))


def upper_states(model: torch.nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor,
                 position_ids: torch.Tensor, n_frozen: int) -> torch.Tensor:
    """[B, T, H]: lower states through the remaining decoder layers and the final norm (what
    `last_hidden_state` of the full forward is)."""
    hidden = run_layers(model, hidden, attention_mask, position_ids, range(n_frozen, len(model.layers)))
    return model.norm(hidden)


def stored_form(state: torch.Tensor) -> torch.Tensor:
    """A row's real-token states [T_i, H] as kept: fp16 (half the memory of fp32, 11-bit mantissa),
    fp32 when a value exceeds fp16's range (SmolLM2-135M's largest states are about 22,600)."""
    state = state.detach()
    if state.abs().max() < FP16_SAFE:
        return state.to(torch.float16)
    return state.float()


class PrefixCache:
    """Lower-part states per prompt text, [T_i, H] over the prompt's real tokens, up to `max_bytes`
    in all (prompts met after it is full are computed every time)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.states: dict[str, torch.Tensor] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> torch.Tensor | None:
        state = self.states.get(key)
        if state is None:
            self.misses += 1
        else:
            self.hits += 1
        return state

    def put(self, key: str, state: torch.Tensor) -> None:
        size = state.numel() * state.element_size()
        if key not in self.states and self.bytes + size <= self.max_bytes:
            self.states[key] = state
            self.bytes += size


def cached_lower_states(model: torch.nn.Module, cache: PrefixCache, keys: Sequence[str], input_ids: torch.Tensor,
                        attention_mask: torch.Tensor, position_ids: torch.Tensor, n_frozen: int) -> torch.Tensor:
    """float32 [B, T, H]: the lower states of the batch (zeros at padding), read from `cache` by key
    (one per row, the prompt text) and computed for the rows it lacks. A computed row goes through
    `stored_form` whether or not the cache keeps it, so a row's states do not depend on hits."""
    real = attention_mask.bool()
    rows = [cache.get(key) for key in keys]
    missing = [i for i, state in enumerate(rows) if state is None]
    if missing:
        pick = torch.tensor(missing, device=input_ids.device)
        computed = lower_states(model, input_ids[pick], attention_mask[pick], position_ids[pick], n_frozen)
        for j, i in enumerate(missing):
            rows[i] = stored_form(computed[j][real[i]])
            cache.put(keys[i], rows[i])
    out = torch.zeros((*input_ids.shape, model.config.hidden_size), dtype=torch.float32, device=input_ids.device)
    for i, state in enumerate(rows):
        out[i, real[i]] = state.to(out.device, torch.float32)
    return out
