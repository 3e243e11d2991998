"""The pieces of MoleRec (Yang et al., "MoleRec: Combinatorial Drug Recommendation with
Substructure-Aware Molecular Representation Learning", WWW 2023), kept apart from the recommender
wrapper in `baselines/molerec.py` so each can be tested on hand-checkable inputs.

Notation: B samples, V visits, D drugs (ATC3 classes), M molecules, S BRICS substructures, d = dim.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from baselines.molecules import ATOM_FEATURE_SIZES, BOND_FEATURE_SIZES, CategoricalEncoder
from baselines.stacked_gru import stacked_gru
from baselines.visits import VisitBatch, ddi_pair_score, real_code_sum_embedding
from bench.tensor_ops import Dropout


def anneal_beta(ddi_rate: float, target_ddi: float, kp: float) -> float:
    """MoleRec's DDI weight annealing (docs/methods.md#molerec; the released training loop):
    beta = min(exp(kp * (1 - ddi_rate / target_ddi)), 1). It is exactly 1 at or below the target
    (the accuracy loss alone) and decays exponentially above it, e.g. target 0.06, kp 2.5,
    ddi 0.09 -> exp(-1.25) = 0.287."""
    return min(math.exp(kp * (1.0 - ddi_rate / target_ddi)), 1.0)


def ddi_loss(probs: torch.Tensor, ddi_adj: torch.Tensor, scale: float) -> torch.Tensor:
    """Scalar: scale * mean over the batch of p^T A p (probs [B, D], ddi_adj [D, D] 0/1 symmetric).
    The originals compute, per visit, 0.0005 * sum(outer(p, p) * A) (the same p^T A p, ordered pairs),
    so the per-sample mean here equals their per-visit value. Zero on a graph without edges."""
    return scale * ddi_pair_score(probs, ddi_adj).mean()


def masked_attention(query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax attention weights [M, S] of query rows [M, d] over key rows [S, d], restricted to
    `mask` (bool [M, S]; True = the molecule has that substructure). Masked entries are exactly 0.
    A row without any True attends to nothing: all-zero weights (the released code fills masked
    logits with -2^32, so such a row would attend uniformly to every substructure)."""
    logits = query @ keys.t() / math.sqrt(query.shape[-1])
    empty = ~mask.any(dim=1, keepdim=True)
    logits = logits.masked_fill(~mask, float("-inf")).masked_fill(empty, 0.0)  # no all -inf row: no NaN
    return torch.softmax(logits, dim=-1) * mask.to(logits.dtype)


class GINEncoder(nn.Module):
    """Molecule encoder: the OGB-style GIN the paper uses (4 layers, mean pooling).

    Atom features (int64 [atoms, 9]) and bond features (int64 [edges, 3]) from
    `baselines.molecules.molecule_graphs` are embedded by `CategoricalEncoder`s; each layer is a
    `GINEConv` (message relu(h_j + bond embedding), learnable eps, MLP d -> 2d -> d) followed by
    batch norm, ReLU (not after the last layer) and dropout; a global mean pool gives [M, d].
    Uses only torch_geometric's pure-torch scatter path (no torch-scatter / torch-sparse).
    `previous_path`: torch's dropout and one lookup per feature table (the computation before the
    2026-12 speed-up; the same model)."""

    def __init__(self, dim: int, layers: int, dropout: float, previous_path: bool = False):
        super().__init__()
        from torch_geometric.nn import GINEConv

        self.atoms = CategoricalEncoder(ATOM_FEATURE_SIZES, dim, per_table=previous_path)
        self.bonds = nn.ModuleList(CategoricalEncoder(BOND_FEATURE_SIZES, dim, per_table=previous_path)
                                   for _ in range(layers))
        self.convs = nn.ModuleList(
            GINEConv(nn.Sequential(nn.Linear(dim, 2 * dim), nn.BatchNorm1d(2 * dim), nn.ReLU(),
                                   nn.Linear(2 * dim, dim)), train_eps=True)
            for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(dim) for _ in range(layers))
        self.dropout = nn.Dropout(dropout) if previous_path else Dropout(dropout)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor,
                atom_molecule: torch.Tensor, n_molecules: int) -> torch.Tensor:
        from torch_geometric.nn import global_mean_pool

        h = self.atoms(x)
        for i, (conv, norm, bonds) in enumerate(zip(self.convs, self.norms, self.bonds)):
            h = norm(conv(h, edge_index, bonds(edge_attr)))
            if i < len(self.convs) - 1:
                h = torch.relu(h)
            h = self.dropout(h)
        return global_mean_pool(h, atom_molecule, size=n_molecules)


class SetAttentionBlock(nn.Module):
    """Set Transformer SAB (Lee et al. 2019), as MoleRec applies it to the substructure set:
    H = LN(X + MultiHead(X, X, X)); out = LN(H + relu(Linear(H))). [S, d] -> [S, d]."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0)
        h = self.norm1(x + self.attention(x, x, x, need_weights=False)[0])
        return self.norm2(h + torch.relu(self.ffn(h))).squeeze(0)


class MoleRecModule(nn.Module):
    """MoleRec's network. `forward(batch)` -> logits [B, D].

    1. Patient: per visit, the SUM of the diagnosis and of the procedure code embeddings [B, V, d]
       (dropout on each code's embedding before the sum, as the originals), one GRU per code type;
       the two hidden states at the current visit, concatenated [B, 2d] -> ReLU -> Linear -> query
       q [B, d]. Earlier visits' drugs are not an input (as the paper).
    2. Relevance of each substructure to the patient: w = sigmoid(Linear(q)) [B, S].
    3. Molecules: GIN over every molecular graph -> g [M, d]. Substructures: a learned embedding
       table [S, d] -> SAB -> u [S, d].
    4. Molecule -> own-substructure attention: a = masked_attention(Wq g, Wk u, mask) [M, S]; the
       substructure part of molecule m for sample b is sum_s a[m, s] * w[b, s] * u[s] [B, M, d].
    5. Molecule representation = [g_m ; substructure part] ([B, M, 2d]; `use_global=false`: the
       substructure part alone, as the released code scores it), averaged per ATC3 with the
       row-normalised drug x molecule matrix P [D, M], then the score head
       Linear(., d/2) -> ReLU -> Linear(., 1) -> logits [B, D].
    Steps 4-5 are linear up to the score head, so the average over molecules is taken first:
    drug part = ((P a) * w_b) u, computed as [D, S] @ [B, S, d] (exactly equal, much cheaper).
    Everything batch-independent (GIN, SAB, attention) runs once per forward call, not per sample.

    Computation (the same model either way): the per-visit sums embed and drop out only the real
    codes (`real_code_sum_embedding`), the two GRUs run as one stacked GRU (`stacked_gru`), dropout
    masks come from uniform numbers (`bench.tensor_ops.Dropout`) and the atom / bond feature
    tables are looked up as one. `previous_path=True` keeps the computation from before the 2026-12
    speed-up (padded [B, V, L, d] embeddings, torch's GRU and dropout, one lookup per table) for the
    same-run training benchmark.
    """

    def __init__(self, *, n_diagnoses: int, n_procedures: int, graphs, drug_molecule: torch.Tensor,
                 molecule_substructure: torch.Tensor, ddi_adj: torch.Tensor, dim: int, dropout: float,
                 gin_layers: int, gin_dropout: float, heads: int, use_global: bool, previous_path: bool = False):
        super().__init__()
        n_sub = molecule_substructure.shape[1]
        self.use_global = use_global
        self.previous_path = previous_path
        self.diagnosis_embedding = nn.Embedding(n_diagnoses + 1, dim, padding_idx=0)
        self.procedure_embedding = nn.Embedding(n_procedures + 1, dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout) if previous_path else Dropout(dropout)
        self.diagnosis_gru = nn.GRU(dim, dim, batch_first=True)
        self.procedure_gru = nn.GRU(dim, dim, batch_first=True)
        self.query = nn.Sequential(nn.ReLU(), nn.Linear(2 * dim, dim))
        self.relevance = nn.Linear(dim, n_sub)
        self.gin = GINEncoder(dim, gin_layers, gin_dropout, previous_path)
        self.substructure_embedding = nn.Parameter(torch.empty(n_sub, dim))
        nn.init.xavier_uniform_(self.substructure_embedding)
        self.sab = SetAttentionBlock(dim, heads)
        self.attn_query, self.attn_key = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.score = nn.Sequential(nn.Linear(2 * dim if use_global else dim, max(dim // 2, 1)), nn.ReLU(),
                                   nn.Linear(max(dim // 2, 1), 1))
        # Fixed inputs, rebuilt from the resources on load: buffers that are not saved.
        for name, value in {"atom_x": graphs.x, "edge_index": graphs.edge_index, "edge_attr": graphs.edge_attr,
                            "atom_molecule": graphs.batch, "drug_molecule": drug_molecule,
                            "substructure_mask": molecule_substructure > 0, "ddi_adj": ddi_adj}.items():
            self.register_buffer(name, value, persistent=False)

    @property
    def n_molecules(self) -> int:
        return self.drug_molecule.shape[1]

    def patient_query(self, batch: VisitBatch) -> torch.Tensor:
        """[B, d]: the query at each sample's current visit (GRUs are causal: padding after it is inert)."""
        rows = torch.arange(len(batch.lengths))
        if self.previous_path:
            dx = self.dropout(self.diagnosis_embedding(batch.diagnoses)).sum(2)   # [B, V, L, d] -> [B, V, d]
            px = self.dropout(self.procedure_embedding(batch.procedures)).sum(2)  # [B, V, d]
            hx = self.diagnosis_gru(dx)[0][rows, batch.last_index]                # [B, d]
            hp = self.procedure_gru(px)[0][rows, batch.last_index]
            return self.query(torch.cat([hx, hp], dim=-1))
        dx = real_code_sum_embedding(self.diagnosis_embedding, batch.diagnoses, self.dropout)   # [B, V, d]
        px = real_code_sum_embedding(self.procedure_embedding, batch.procedures, self.dropout)
        hx, hp = stacked_gru([self.diagnosis_gru, self.procedure_gru], [dx, px], batch.lengths)  # [B, V, d] each
        return self.query(torch.cat([hx[rows, batch.last_index], hp[rows, batch.last_index]], dim=-1))

    def molecules(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch-independent parts: g [M, d] GIN embeddings, u [S, d] substructures after the SAB,
        a [M, S] molecule -> own-substructure attention weights."""
        g = self.gin(self.atom_x, self.edge_index, self.edge_attr, self.atom_molecule, self.n_molecules)
        u = self.sab(self.substructure_embedding)
        a = masked_attention(self.attn_query(g), self.attn_key(u), self.substructure_mask)
        return g, u, a

    def molecule_representations(self, relevance: torch.Tensor) -> torch.Tensor:
        """[B, M, 2d] (or [B, M, d] without use_global): step 5 before the per-ATC3 average.
        For tests and inspection; `forward` takes the equivalent drug-level path."""
        g, u, a = self.molecules()
        part = a @ (relevance.unsqueeze(-1) * u)                              # [B, M, d]
        if not self.use_global:
            return part
        return torch.cat([g.expand(len(relevance), -1, -1), part], dim=-1)

    def drug_pieces(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch-independent drug-level parts: P g [D, d], P a [D, S], u [S, d] (P = drug x molecule)."""
        g, u, a = self.molecules()
        return self.drug_molecule @ g, self.drug_molecule @ a, u

    def drug_logits(self, relevance: torch.Tensor, pieces=None) -> torch.Tensor:
        """relevance w [B, S] -> logits [B, D]; `pieces` = `drug_pieces()` when already computed."""
        drug_global, drug_attention, u = self.drug_pieces() if pieces is None else pieces
        if self.previous_path:
            part = drug_attention @ (relevance.unsqueeze(-1) * u)            # [D, S] @ [B, S, d] -> [B, D, d]
            if self.use_global:
                part = torch.cat([drug_global.expand(len(relevance), -1, -1), part], dim=-1)
            return self.score(part).squeeze(-1)
        # The score head's first layer is linear, so it is applied to u [S, d] before the per-sample
        # product (width h = d/2 instead of d there) and to the global part once per drug, not per
        # sample: the same first-layer output [B, D, h], computed with half the multiply-adds.
        first, _, last = self.score
        weight = first.weight                                                 # [h, 2d] or [h, d]
        part_weight = weight[:, -u.shape[1]:]
        hidden = drug_attention @ (relevance.unsqueeze(-1) * (u @ part_weight.t()))   # [B, D, h]
        fixed = first.bias if not self.use_global else drug_global @ weight[:, :drug_global.shape[1]].t() + first.bias
        return last(torch.relu(hidden + fixed)).squeeze(-1)

    def forward(self, batch: VisitBatch, pieces=None) -> torch.Tensor:
        return self.drug_logits(torch.sigmoid(self.relevance(self.patient_query(batch))), pieces)
