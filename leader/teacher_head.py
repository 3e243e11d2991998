"""The teacher's output side: optional feature normalisation, then one logit per drug.

LEADER's output layer (arXiv 2402.02803) is Linear(H, n_drugs) without bias on the pooled hidden
state; that stays the default (`head_bias=none`, `feature_norm=none`). Two options that are NOT in
the paper, for getting a small LLM's features past the drug prior (issue 17: with SmolLM2-135M most
of the pooled state's energy lies in one shared direction, and a bias-free layer first spends its
steps learning each drug's frequency):

- `head_bias=prior`: the layer gets a bias, started at the logit of each drug's training frequency,
  and its weight starts at zero, so the untrained teacher predicts exactly the training prior;
- `feature_norm=center`: subtract a running mean of the pooled features (updated from each training
  batch, kept for inference, saved with the weights); `feature_norm=layernorm`: a LayerNorm(H) with
  its own scale and shift, trained with the output layer.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

HeadBias = Literal["none", "prior"]
FeatureNorm = Literal["none", "center", "layernorm"]
PRIOR_CLIP = 1e-4  # a drug never (or always) prescribed in training gets a finite logit


class RunningCenter(torch.nn.Module):
    """x [B, H] -> x - m, with m a running mean of the training batches' features (the first batch's
    mean, then an exponential average with weight `momentum` per batch). The same m is used in
    training and inference, so a batch of one is centred as in training."""

    def __init__(self, hidden: int, momentum: float = 0.05):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(hidden))
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                batch = x.detach().float().mean(dim=0)
                if self.seen.item() == 0:
                    self.mean.copy_(batch)
                    self.seen.fill_(1.0)
                else:
                    self.mean.lerp_(batch, self.momentum)
        return x - self.mean.to(x.dtype)


def feature_norm_layer(kind: FeatureNorm, hidden: int) -> torch.nn.Module:
    """The module between the pooled state [B, H] and the output layer."""
    if kind == "center":
        return RunningCenter(hidden)
    if kind == "layernorm":
        return torch.nn.LayerNorm(hidden)
    return torch.nn.Identity()


def prior_logits(targets: np.ndarray) -> np.ndarray:
    """float32 [n_drugs]: logit of each drug's frequency in `targets` (bool/0-1 [n, n_drugs]), the
    frequency clipped to [PRIOR_CLIP, 1 - PRIOR_CLIP]."""
    p = np.clip(np.asarray(targets, dtype=np.float64).mean(axis=0), PRIOR_CLIP, 1 - PRIOR_CLIP)
    return np.log(p / (1 - p)).astype(np.float32)


@torch.no_grad()
def start_at_prior(head: torch.nn.Linear, targets: np.ndarray) -> None:
    """Bias <- the training prior's logits, weight <- 0: the layer's first outputs are the prior."""
    if head.bias is None:
        raise ValueError("start_at_prior needs an output layer with a bias (head_bias=prior)")
    head.weight.zero_()
    head.bias.copy_(torch.from_numpy(prior_logits(targets)))
