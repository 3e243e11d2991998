"""Padded mini-batches of visit sequences, and the pieces the history baselines (GAMENet, SafeDrug,
MoleRec, RETAIN, MICRON) share.

The originals feed one visit at a time; here a batch holds B samples, each the sequence of its
patient's visits up to and including the visit to predict (at most `max_visits`, the LAST ones),
right-padded to the longest sequence in the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bench.data import Sample, Visit, Vocab
from bench.tensor_ops import real_positions, segment_mean, segment_sum


@dataclass(frozen=True)
class VisitBatch:
    """diagnoses / procedures: int64 [B, V, L] code index + 1 (0 = padding);
    history_drugs: float32 [B, V, n_drugs] multi-hot drugs of each EARLIER visit (the current visit's
    row, at index lengths - 1, is all zero: its drugs are the target); visit_mask: bool [B, V];
    lengths: int64 [B] visits per sample (>= 1); target: float32 [B, n_drugs]."""

    diagnoses: torch.Tensor
    procedures: torch.Tensor
    history_drugs: torch.Tensor
    visit_mask: torch.Tensor
    lengths: torch.Tensor
    target: torch.Tensor

    @property
    def last_index(self) -> torch.Tensor:
        """int64 [B]: position of the current visit."""
        return self.lengths - 1


class VisitEncoder:
    """Turns samples into `VisitBatch`es; each visit's code indices are computed once and reused."""

    def __init__(self, vocabs: Mapping[str, Vocab], max_visits: int = 20):
        if max_visits < 1:
            raise ValueError("max_visits must be >= 1")
        self.vocabs = vocabs
        self.max_visits = max_visits
        # Keyed by id(visit); the entry keeps the visit alive so that its id cannot be reused.
        self._cache: dict[int, tuple[Visit, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def _codes(self, visit: Visit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = id(visit)
        if key not in self._cache:
            self._cache[key] = (visit, tuple(np.asarray(self.vocabs[t].encode(visit.codes(t)), dtype=np.int64)
                                             for t in ("diagnosis", "procedure", "drug")))
        return self._cache[key][1]

    def clear(self) -> None:
        """Forget every visit's cached code indices (the timing's cold path, bench.timing)."""
        self._cache.clear()

    def encode(self, samples: Sequence[Sample]) -> VisitBatch:
        n_drugs = len(self.vocabs["drug"])
        sequences = [s.patient.visits[max(0, s.index + 1 - self.max_visits): s.index + 1] for s in samples]
        batch, longest = len(samples), max((len(v) for v in sequences), default=1)
        codes = [[self._codes(v) for v in seq] for seq in sequences]
        width_dx = max((len(c[0]) for seq in codes for c in seq), default=1) or 1
        width_px = max((len(c[1]) for seq in codes for c in seq), default=1) or 1
        dx = np.zeros((batch, longest, width_dx), dtype=np.int64)
        px = np.zeros((batch, longest, width_px), dtype=np.int64)
        history = np.zeros((batch, longest, n_drugs), dtype=np.float32)
        target = np.zeros((batch, n_drugs), dtype=np.float32)
        lengths = np.array([len(seq) for seq in sequences], dtype=np.int64)
        for b, seq in enumerate(codes):
            for v, (d, p, m) in enumerate(seq):
                dx[b, v, :len(d)] = d + 1
                px[b, v, :len(p)] = p + 1
                if v < len(seq) - 1:
                    history[b, v, m] = 1.0
                else:
                    target[b, m] = 1.0
        mask = np.arange(longest)[None, :] < lengths[:, None]
        return VisitBatch(torch.from_numpy(dx), torch.from_numpy(px), torch.from_numpy(history),
                          torch.from_numpy(mask), torch.from_numpy(lengths), torch.from_numpy(target))


def masked_mean_embedding(embedding: torch.nn.Embedding, codes: torch.Tensor) -> torch.Tensor:
    """Mean of the embeddings of the non-padding codes: int64 [B, V, L] -> float [B, V, dim]
    (zero for an empty visit). `embedding` must reserve index 0 for padding."""
    vectors = embedding(codes)                                   # [B, V, L, dim]
    present = (codes > 0).unsqueeze(-1).to(vectors.dtype)        # [B, V, L, 1]
    return (vectors * present).sum(2) / present.sum(2).clamp(min=1.0)


def real_code_mean_embedding(embedding: torch.nn.Embedding, codes: torch.Tensor,
                             dropout: torch.nn.Module | None = None) -> torch.Tensor:
    """`masked_mean_embedding(Sequential(embedding, dropout), codes)` computed on the real codes only:
    int64 [B, V, L] (0 = padding) -> float [B, V, dim] (zero for an empty visit). Only the N real
    codes are embedded and dropped out ([N, dim], not [B, V, L, dim]), then averaged per visit; the
    same values in eval mode (up to summation order) and the same dropout distribution in training."""
    return _real_code_embedding(embedding, codes, dropout, segment_mean)


def real_code_sum_embedding(embedding: torch.nn.Embedding, codes: torch.Tensor,
                            dropout: torch.nn.Module | None = None) -> torch.Tensor:
    """`Sequential(embedding, dropout)(codes).sum(2)` (with a padding index 0 embedded as zeros)
    computed on the real codes only: int64 [B, V, L] -> float [B, V, dim], as `real_code_mean_embedding`."""
    return _real_code_embedding(embedding, codes, dropout, segment_sum)


def _real_code_embedding(embedding, codes, dropout, pool) -> torch.Tensor:
    batch, visits, _ = codes.shape
    ids, slots = real_positions(codes)                           # [N], [N] visit slot b * V + v
    vectors = embedding(ids)                                     # [N, dim]
    if dropout is not None:
        vectors = dropout(vectors)
    return pool(vectors, slots, batch * visits).view(batch, visits, -1)


def ddi_pair_score(probs: torch.Tensor, ddi_adj: torch.Tensor) -> torch.Tensor:
    """float [B]: sum over ordered interacting pairs of p_i * p_j, i.e. p^T A p, per sample.
    probs: [B, D] in [0, 1]; ddi_adj: [D, D] symmetric 0/1 with zero diagonal. Zero on a graph
    without edges; positive when two interacting drugs both have positive probability."""
    return ((probs @ ddi_adj) * probs).sum(dim=1)


def ddi_pair_counts(predicted: torch.Tensor, ddi_adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Interacting and all unordered pairs among each sample's predicted drugs, float [B] each
    (predicted: bool [B, D]); a sample's DDI rate is their ratio (0 when it has < 2 drugs)."""
    x = predicted.to(ddi_adj.dtype)
    k = x.sum(dim=1)
    return ((x @ ddi_adj) * x).sum(dim=1) / 2, k * (k - 1) / 2


def batch_ddi_rate(predicted: torch.Tensor, ddi_adj: torch.Tensor) -> float:
    """Pooled DDI rate of hard predictions bool/0-1 [B, D]: interacting pairs / all pairs (0 if none)."""
    interacting, pairs = (float(c.sum()) for c in ddi_pair_counts(predicted, ddi_adj))
    return interacting / pairs if pairs > 0 else 0.0


def margin_targets(target: torch.Tensor) -> torch.Tensor:
    """Targets for `torch.nn.functional.multilabel_margin_loss`: int64 [B, D] holding each sample's
    positive drug indices first, then -1 padding."""
    positive = target > 0
    # a stable sort on "is negative" puts each row's positive indices first, in increasing order
    order = torch.sort((~positive).to(torch.int8), dim=1, stable=True).indices
    count = positive.sum(dim=1, keepdim=True)
    return torch.where(torch.arange(target.shape[1]) < count, order, torch.full_like(order, -1))
