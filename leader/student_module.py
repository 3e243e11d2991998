"""LEADER(S)'s network (leader/student.py describes it): `StudentModule`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from bench.tensor_ops import segment_mean
from leader.stacked_blocks import Packed, stacked_blocks
from leader.student_layers import ProfileEncoder, StudentBatch, TransformerBlock, masked_mean

if TYPE_CHECKING:
    from leader.student import StudentConfig

KINDS = ("diagnosis", "procedure", "drug")


class StudentModule(torch.nn.Module):
    """forward(batch) -> (logits [B, n_drugs], feature [B, hidden], profile prompt [B, dim]).

    `packed` (default): the transformer blocks run their position-wise parts on the real codes /
    visits only (`TransformerBlock.forward_packed`), the three across-visit blocks in one stacked
    call (leader/stacked_blocks.py); in training the alignment's current drug sets go through the drug set
    block in the same call as the medication history (`forward_with_drug_set`); dropout draws its
    masks from uniform numbers (`bench.tensor_ops.Dropout`). The same network: equal outputs in eval
    mode (up to float rounding), the same dropout distribution in training. False: the padded
    computation as before 2026-12, one block at a time (kept for the old-against-new training
    benchmark, tests/benchmarks/test_training_speed.py)."""

    def __init__(self, table_size: int, n_drugs: int, profile_sizes: Sequence[int], c: StudentConfig,
                 *, packed: bool = True):
        super().__init__()
        self.dim, self.packed = c.dim, packed
        self.embedding = torch.nn.Embedding(table_size, c.dim, padding_idx=0)
        self.set_blocks = torch.nn.ModuleDict({k: TransformerBlock(c.dim, c.heads, c.ffn, c.dropout, not packed)
                                               for k in KINDS})
        self.visit_blocks = torch.nn.ModuleDict({k: TransformerBlock(c.dim, c.heads, c.ffn, c.dropout, not packed)
                                                 for k in KINDS})
        self.profile = ProfileEncoder(profile_sizes, c.dim)
        self.positions = torch.nn.Embedding(c.max_visits, c.dim) if c.visit_positions else None
        self.feature = torch.nn.Linear(3 * c.dim, c.hidden)
        self.output = torch.nn.Linear(c.hidden, n_drugs)

    def encode_set_groups(self, requests: Sequence[tuple[str, torch.Tensor]]) -> list[torch.Tensor]:
        """[(kind, int64 [S, L] shared-table indices, one code set per row, 0 = padding)] -> one float
        [S, dim] per request: the kind's in-visit block, then the mean over each set's codes; an
        empty set gives a zero vector and is not computed at all."""
        dtype = self.embedding.weight.dtype
        outs = [torch.zeros(sets.shape[0], self.dim, dtype=dtype) for _, sets in requests]
        if not self.packed:
            for out, (kind, sets) in zip(outs, requests):
                mask = sets > 0
                rows = mask.any(1)
                if bool(rows.any()):
                    real = mask[rows]
                    encoded = masked_mean(self.set_blocks[kind](self.embedding(sets[rows]), real), real)
                    out.index_put_((rows,), encoded)
            return outs
        jobs = []                       # (request index, non-empty rows, Packed without x, code ids)
        for i, (kind, sets) in enumerate(requests):
            mask = sets > 0
            rows = mask.any(1)
            real = mask[rows]                                                 # [R, L]
            r, c = torch.nonzero(real, as_tuple=True)                         # the T real codes
            if len(r):
                jobs.append((i, rows, r, c, real, sets[rows][r, c]))
        if not jobs:
            return outs
        vectors = self.embedding(torch.cat([job[5] for job in jobs])).split([len(job[5]) for job in jobs])
        # one block at a time: the kinds' sets differ in number and width, and padding them to a common
        # shape for `stacked_blocks` cost more than it saved (measured)
        encoded = [self.set_blocks[requests[i][0]].forward_packed(x, r, c, real)
                   for x, (i, _, r, c, real, _) in zip(vectors, jobs)]
        for (i, rows, r, _, real, _), x in zip(jobs, encoded):
            outs[i] = outs[i].index_put((rows,), segment_mean(x, r, real.shape[0]))
        return outs

    def code_sets(self, kind: str, codes: torch.Tensor) -> torch.Tensor:
        """int64 [B, V, L] shared-table indices -> float [B, V, dim] (`encode_set_groups` per visit)."""
        batch, visits, width = codes.shape
        return self.encode_set_groups([(kind, codes.reshape(batch * visits, width))])[0].view(batch, visits, self.dim)

    def drug_set(self, drugs: torch.Tensor) -> torch.Tensor:
        """int64 [B, L] drug indices of one set per sample -> float [B, dim] (the alignment target)."""
        return self.encode_set_groups([("drug", drugs)])[0]

    def forward(self, batch: StudentBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.forward_with_drug_set(batch, current=False)[:3]

    def forward_with_drug_set(self, batch: StudentBatch, current: bool = True
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """forward's three outputs and, when `current`, `drug_set(batch.current_drugs)` [B, dim] (else None)."""
        mask = batch.visit_mask                                               # [B, V]
        (batch_size, visits), med = mask.shape, batch.medications
        prompt = self.profile(batch.profile)                                  # [B, dim]
        drug_sets = med.reshape(batch_size * visits, med.shape[2])
        if current and self.packed:   # one block call for the history's and the current visit's drug sets
            width = max(med.shape[2], batch.current_drugs.shape[1])
            drug_sets = torch.cat([F.pad(drug_sets, (0, width - drug_sets.shape[1])),
                                   F.pad(batch.current_drugs, (0, width - batch.current_drugs.shape[1]))])
        drugs, dx, px = self.encode_set_groups([("drug", drug_sets), ("diagnosis", batch.diagnoses.flatten(0, 1)),
                                                ("procedure", batch.procedures.flatten(0, 1))])
        drugs_now = drugs[batch_size * visits:] if current and self.packed else None
        medications = drugs[:batch_size * visits].view(batch_size, visits, self.dim)   # row 0 empty
        sequences = {"diagnosis": dx.view(batch_size, visits, self.dim), "procedure": px.view(batch_size, visits, self.dim),
                     "drug": torch.cat([prompt.unsqueeze(1), medications[:, 1:]], dim=1)}
        if self.positions is not None:
            recency = (mask.sum(1, keepdim=True) - 1 - torch.arange(visits)).clamp(min=0)   # [B, V]
            sequences = {k: x + self.positions(recency) for k, x in sequences.items()}
        if self.packed:
            r, c = torch.nonzero(mask, as_tuple=True)                         # the real visits
            encoded = stacked_blocks([self.visit_blocks[k] for k in KINDS],
                                     [Packed(sequences[k][r, c], r, c, mask) for k in KINDS])
            pooled = [segment_mean(x, r, batch_size) for x in encoded]
        else:
            pooled = [masked_mean(self.visit_blocks[k](sequences[k], mask), mask) for k in KINDS]   # 3 x [B, dim]
        feature = self.feature(torch.cat(pooled, dim=1))                      # [B, hidden]
        if current and not self.packed:
            drugs_now = self.drug_set(batch.current_drugs)
        return self.output(F.relu(feature)), feature, prompt, drugs_now
