"""Batches of prompts for a decoder LLM, and the pooled hidden state LEADER's teacher reads.

LEADER (arXiv 2402.02803, docs/leader.md#teacher) appends an EOS token to every prompt and takes the
final-layer hidden state of the last non-pad token. Padding may sit on either side; position ids are
derived from the attention mask, so a row's hidden states do not depend on how much padding its
batch needed (left padding would otherwise shift every position).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

Pooling = Literal["last", "mean"]


def encode_prompts(tokenizer, texts: Sequence[str], *, max_tokens: int,
                   padding_side: Literal["left", "right"] = "right") -> dict[str, torch.Tensor]:
    """Token ids with EOS appended, padded to the longest row: input_ids / attention_mask int64 [B, T],
    position_ids int64 [B, T]. A text longer than `max_tokens - 1` tokens is cut at the tail (the
    prompt builder keeps prompts within budget first, so this is only a guard)."""
    rows = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    rows = [row[:max_tokens - 1] + [tokenizer.eos_token_id] for row in rows]
    width = max((len(r) for r in rows), default=1)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.int64)
    mask = torch.zeros((len(rows), width), dtype=torch.int64)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if padding_side == "right" else slice(width - len(row), width)
        ids[i, span] = torch.tensor(row, dtype=torch.int64)
        mask[i, span] = 1
    return {"input_ids": ids, "attention_mask": mask, "position_ids": position_ids(mask)}


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """int64 [B, T]: 0, 1, 2, ... over each row's real tokens (0 on padding)."""
    return (attention_mask.cumsum(dim=1) - 1).clamp(min=0) * attention_mask


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """int64 [B]: position of each row's last real token, for either padding side."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask * positions).argmax(dim=1)


def pool_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling = "last") -> torch.Tensor:
    """hidden [B, T, H], attention_mask [B, T] -> [B, H]: the last real token's state (LEADER), or
    the mean over real tokens (a stronger feature from a frozen decoder; ENVIRONMENT.md)."""
    if pooling == "last":
        return hidden[torch.arange(len(hidden), device=hidden.device), last_token_index(attention_mask)]
    real = attention_mask.unsqueeze(-1).bool()
    # masked_fill, not a product: a padded position's state may be nan (a fully masked attention row)
    total = hidden.masked_fill(~real, 0.0).sum(dim=1)
    return total / real.sum(dim=1).clamp(min=1).to(hidden.dtype)


def length_sorted(texts: Sequence[str]) -> list[int]:
    """Indices of `texts` by length, longest first: batching similar lengths wastes less padding."""
    return sorted(range(len(texts)), key=lambda i: -len(texts[i]))


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int = 0,
                            pool_batches: int = 16) -> list[list[int]]:
    """One epoch of training batches: lists of indices into `lengths` (token counts), every index
    exactly once, each batch of prompts of similar length so that padding to the batch's longest
    wastes little.

    The indices are shuffled, cut into pools of `pool_batches` x `batch_size`, each pool sorted by
    length and cut into batches, and the batches shuffled again: which prompts meet in a pool, and
    the order of batches, stay random; only neighbours in length share a batch. `pool_batches=1`
    gives plain random batches. The same (seed, epoch) gives the same batches; the last batch of the
    last pool may be short (no prompt is dropped).
    """
    if batch_size < 1 or pool_batches < 1:
        raise ValueError(f"batch_size and pool_batches must be >= 1, got {batch_size}, {pool_batches}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths)).tolist()
    pool = batch_size * pool_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        ranked = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [ranked[j:j + batch_size] for j in range(0, len(ranked), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches)).tolist()]

