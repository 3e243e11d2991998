"""Tensor building blocks that make the torch models' training cheaper without changing the models
(benchmarks/README.md, the training profile and the speed-up):

- means over ragged groups of rows ("segments") of a flat tensor: the models embed only the real
  codes of a padded batch as one flat [N, d] tensor and pool them per visit / per set, instead of
  pooling a padded [..., L, d] tensor that is mostly padding;
- `dropout` / `Dropout`: the same inverted dropout as torch's, with its mask drawn from uniform
  numbers (`rand_like >= p`), which costs about a third of torch's `bernoulli_` on CPU.
"""

from __future__ import annotations

import torch
from torch import nn


def real_positions(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The non-padding entries of int64 codes [..., L] (0 = padding), in row-major order:
    (ids int64 [N]: their values, rows int64 [N]: the flat index of their row in codes.reshape(-1, L))."""
    width = codes.shape[-1]
    flat = codes.reshape(-1)
    where = torch.nonzero(flat, as_tuple=True)[0]
    return flat[where], torch.div(where, max(width, 1), rounding_mode="floor")


def segment_sum(values: torch.Tensor, segments: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Sum of the rows of values [N, d] per segment id (segments int64 [N], in [0, n_segments)):
    float [n_segments, d], zero for a segment without rows. Differentiable in values."""
    return values.new_zeros(n_segments, values.shape[1]).index_add(0, segments, values)


def segment_mean(values: torch.Tensor, segments: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Mean of the rows of values [N, d] per segment id (segments int64 [N], in [0, n_segments)):
    float [n_segments, d], zero for a segment without rows. Differentiable in values."""
    sums = segment_sum(values, segments, n_segments)
    counts = torch.bincount(segments, minlength=n_segments).clamp(min=1).to(values.dtype)
    return sums / counts.unsqueeze(1)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout: each element kept with probability 1 - p and scaled by 1 / (1 - p), else zero
    (torch.nn.functional.dropout's distribution; a different random stream). Identity when not
    training or p == 0."""
    if not training or p == 0:
        return x
    if p >= 1:
        return x * 0.0
    keep = torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))   # float 0 or 1 / (1 - p), no autograd
    return x * keep


class Dropout(nn.Module):
    """Drop-in for torch.nn.Dropout (same `p`, no parameters) using `dropout` above."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
