"""LEADER's training signals besides BCE (Liu et al., arXiv 2402.02803; docs/leader.md#distillation).

- Feature-level distillation (offline): the student's 128-d feature, projected by
  Linear(128, teacher_hidden), is pulled towards the teacher's cached last-token hidden state with a
  mean squared error; weight alpha (0.4 MIMIC-III, 0.8 MIMIC-IV).
- Profile alignment: symmetric InfoNCE (cosine similarity, temperature tau, in-batch negatives)
  between the profile prompt and an encoding of the current visit's TRUE medication set; training
  only, weight 0.005-0.01.

Both need modules that are used in training only (`TrainingHeads`); they are not part of the saved
student, so a saved LEADER(S) is exactly what runs at inference.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def distill_mse(projected: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element: projected, teacher float [N, H] -> scalar (0 for N = 0)."""
    if projected.shape[0] == 0:
        return projected.sum() * 0.0
    return F.mse_loss(projected, teacher)


def info_nce(x: torch.Tensor, y: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Symmetric InfoNCE with in-batch negatives: x, y float [B, d], row i of x and y a positive pair.

    S = cos(x_i, y_j) / tau [B, B]; loss = (CE(S, diag) + CE(S^T, diag)) / 2, each the mean over the
    batch of -log softmax. The released code (models/utils.py) leaves the positive out of the
    denominator and sums the two directions; this is the standard form (the positive is in the
    denominator, as CLIP). One row gives 0."""
    sim = F.cosine_similarity(x.unsqueeze(1), y.unsqueeze(0), dim=2) / tau
    labels = torch.arange(x.shape[0], device=x.device)
    return (F.cross_entropy(sim, labels) + F.cross_entropy(sim.t(), labels)) / 2


def kd_subset(n: int, k: int, seed: int) -> np.ndarray:
    """bool [n]: which training samples are distilled; all when k <= 0 or k >= n, else a seeded
    random subset of k (the others train on BCE and alignment only)."""
    mask = np.zeros(n, dtype=bool)
    if k <= 0 or k >= n:
        mask[:] = True
    else:
        mask[np.random.default_rng(seed).choice(n, size=k, replace=False)] = True
    return mask


class TrainingHeads(torch.nn.Module):
    """Training-only layers: `projector` Linear(feature, teacher_hidden) for distillation (None when
    not distilling); `align_drugs`, `align_profile` Linear(dim, dim) projecting the medication-set
    encoding and the profile prompt before the InfoNCE (None when alignment is off), as the released
    code's contrastive loss with project=True."""

    def __init__(self, feature: int, teacher_hidden: int | None, dim: int, align: bool):
        super().__init__()
        self.projector = torch.nn.Linear(feature, teacher_hidden) if teacher_hidden else None
        self.align_drugs = torch.nn.Linear(dim, dim) if align else None
        self.align_profile = torch.nn.Linear(dim, dim) if align else None

    def alignment(self, drug_sets: torch.Tensor, prompts: torch.Tensor, tau: float) -> torch.Tensor:
        """drug_sets, prompts float [B, dim] -> scalar symmetric InfoNCE of their projections."""
        return info_nce(self.align_drugs(drug_sets), self.align_profile(prompts), tau)


def standardise(features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """features float32 [n, H] z-scored per dimension with the mean and std of `rows` (bool [n]):
    an option for teachers whose hidden states have a few huge dimensions that dominate the MSE."""
    ref = features[rows]
    mean, std = ref.mean(0, keepdims=True), ref.std(0, keepdims=True)
    return ((features - mean) / np.where(std > 1e-6, std, 1.0)).astype(np.float32)
