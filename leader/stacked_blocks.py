"""Several of the student's transformer blocks (`TransformerBlock`, same sizes, each its own weights)
run at once on packed input: what `TransformerBlock.forward_packed` computes for each, with every
step shared by the blocks (batched matrix products over a leading G dimension). At the student's
batch size of 16 a block's cost is mostly per-operation overhead, so running its three across-visit
blocks (diagnoses, procedures, drugs: the same visits, so the same layout) as one stacked call takes
fewer operations than three separate ones. (Its in-visit blocks are not stacked: their sets differ
in number and width, and the padding to a common shape cost more than the saved overhead.)

Layouts: group g has T_g real elements (float [T_g, dim]), element t at (rows_g[t], cols_g[t]) of a
padded [R_g, L_g] layout whose real positions are mask_g. Position-wise parts run on [G, T, dim]
(T = max T_g; the filler rows of a shorter group are computed and dropped), the attention on
[G * R, L] (R, L the largest R_g, L_g).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.tensor_ops import dropout
from leader.student_layers import TransformerBlock


@dataclass(frozen=True)
class Packed:
    """One group's packed input: x float [T, dim]; rows, cols int64 [T]; mask bool [R, L] (True
    exactly at the (rows, cols) positions; every row holds at least one)."""

    x: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    mask: torch.Tensor


def _stacked(blocks: Sequence[TransformerBlock], name: str) -> torch.Tensor:
    """The blocks' parameter `name` (a dotted path), stacked: [G, ...]."""
    def get(block: TransformerBlock) -> torch.Tensor:
        value = block
        for part in name.split("."):
            value = getattr(value, part)
        return value

    return torch.stack([get(b) for b in blocks])


def _linear(x: torch.Tensor, blocks: Sequence[TransformerBlock], layer: str) -> torch.Tensor:
    """x [G, T, in] through each group's Linear `layer` -> [G, T, out]."""
    return torch.baddbmm(_stacked(blocks, f"{layer}.bias").unsqueeze(1), x,
                         _stacked(blocks, f"{layer}.weight").transpose(1, 2))


def _norm(x: torch.Tensor, blocks: Sequence[TransformerBlock], layer: str) -> torch.Tensor:
    """x [G, T, dim] through each group's LayerNorm `layer`."""
    first = getattr(blocks[0], layer)
    normed = F.layer_norm(x, first.normalized_shape, eps=first.eps)
    return torch.addcmul(_stacked(blocks, f"{layer}.bias").unsqueeze(1), normed,
                         _stacked(blocks, f"{layer}.weight").unsqueeze(1))


def stacked_blocks(blocks: Sequence[TransformerBlock], groups: Sequence[Packed]) -> list[torch.Tensor]:
    """blocks[g] on groups[g] for every g, computed together: one float [T_g, dim] per group, equal to
    `blocks[g].forward_packed(...)` (same values in eval mode up to float rounding; in training the
    same dropout distribution). The blocks must share their sizes, dropout and mode."""
    first = blocks[0]
    counts = [len(g.x) for g in groups]
    n_groups, longest, dim = len(groups), max(counts), groups[0].x.shape[1]
    n_rows = max(g.mask.shape[0] for g in groups)
    width = max(g.mask.shape[1] for g in groups)
    group = torch.cat([torch.full((n,), i, dtype=torch.int64) for i, n in enumerate(counts)])   # [N]
    slot = torch.cat([torch.arange(n) for n in counts])                                        # [N]
    rows = torch.cat([g.rows for g in groups])
    cols = torch.cat([g.cols for g in groups])
    # each real element's place in the flat attention layout [G * R * L]; a filler element points at
    # one extra sink row (written, never read back)
    place = torch.full((n_groups, longest), n_groups * n_rows * width, dtype=torch.int64)
    place[group, slot] = (group * n_rows + rows) * width + cols
    place = place.view(-1)
    mask = torch.zeros(n_groups * n_rows * width + 1, dtype=torch.bool)
    mask[place] = True
    mask = mask[:-1].view(n_groups * n_rows, width)
    mask[:, 0] |= ~mask.any(1)   # filler rows attend to one zero key: no NaN; their output is never read

    x = torch.cat([g.x for g in groups]).new_zeros(n_groups, longest, dim).index_put(
        (group, slot), torch.cat([g.x for g in groups]))                                      # [G, T, dim]
    p, training = first.dropout_p, first.training
    qkv = _linear(_norm(x, blocks, "norm_attention"), blocks, "qkv")                          # [G, T, 3 dim]
    flat = qkv.new_zeros(n_groups * n_rows * width + 1, 3 * dim).index_put((place,), qkv.reshape(-1, 3 * dim))
    attended = first.attend(flat[:-1].view(n_groups * n_rows, width, 3 * dim), mask)          # [G R, L, dim]
    attended = attended.reshape(-1, dim)[place.clamp(max=n_groups * n_rows * width - 1)].view(n_groups, longest, dim)
    x = x + dropout(_linear(attended, blocks, "out"), p, training)
    hidden = dropout(F.gelu(_linear(_norm(x, blocks, "norm_ffn"), blocks, "ffn.0")), p, training)
    x = x + dropout(_linear(hidden, blocks, "ffn.3"), p, training)
    return [x[i, :n] for i, n in enumerate(counts)]
