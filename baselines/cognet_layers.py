"""Pieces of COGNet (Wu et al., WWW 2022, "Conditional Generation Net for Medication
Recommendation"): attention pooling of a visit's codes, the drug memory over the co-prescription and
DDI graphs, the decoder layer, the copy distribution over earlier visits' drugs and the copy-or-predict
mixture. baselines/cognet.py assembles them; baselines/set_beam_search.py decodes.

Shapes: N rows (samples, or samples x beams), L codes of a visit, T decoder positions, S history drug
slots (earlier visits x drugs per visit, flattened), D drugs, O = D + 1 output classes (the drugs,
then END), d the model dimension.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.tensor_ops import Dropout


def attendable(present: torch.Tensor) -> torch.Tensor:
    """bool [..., L]: `present` with the first slot turned on in rows that have no present slot, so
    that attention over such a row (an empty or padded visit) stays finite; what it yields there is
    never used."""
    empty = ~present.any(dim=-1, keepdim=True)
    first = torch.zeros_like(present)
    first[..., 0] = True
    return present | (empty & first)


class AttentionPool(nn.Module):
    """The released code's `SelfAttend`: a gate g = w2 . tanh(W1 x + b1) + b2 per code (W1: d -> 32),
    softmax of g over the present codes, and the weighted sum: x [N, L, d], present bool [N, L] ->
    [N, d] (zero where a row has no present code)."""

    def __init__(self, dim: int, hidden: int = 32):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        gates = self.gate(x).squeeze(-1).masked_fill(~attendable(present), float("-inf"))
        weights = torch.softmax(gates, dim=-1) * present        # zero for a row without codes
        return torch.einsum("nl,nld->nd", weights, x)


class SetEncoderLayer(nn.Module):
    """One post-norm transformer encoder layer over a set of codes (torch's TransformerEncoderLayer
    with ReLU, which the released code uses with `ffn` 2048), computed at the present codes only:
        x = LN1(x + dropout(SelfAttn(x)))  with absent keys masked,
        x = LN2(x + dropout(FFN(x))),      FFN = Linear(d, ffn) -> ReLU -> dropout -> Linear(ffn, d).
    x [N, L, d], present bool [N, L] -> [N, L, d], zero at absent positions. Only the attention runs on
    the padded tensor; the norms and the feed-forward run on the P present codes ([P, d]), since the
    padded positions' outputs are never read: the same values there, without the padding's cost."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), Dropout(dropout), nn.Linear(ffn, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        attended = self.attn(x, x, x, key_padding_mask=~attendable(present), need_weights=False)[0]
        real = present.reshape(-1).nonzero(as_tuple=True)[0]
        flat = self.norm1(x.reshape(-1, x.shape[-1])[real] + self.dropout(attended.reshape(-1, x.shape[-1])[real]))
        flat = self.norm2(flat + self.dropout(self.ffn(flat)))
        return x.new_zeros(x.shape[0] * x.shape[1], x.shape[-1]).index_copy(0, real, flat).view_as(x)


class DrugMemory(nn.Module):
    """Drug memory [D, d] = H_ehr - w * H_ddi, two-layer GCNs over fixed normalised adjacencies
    Â [D, D] (buffers) whose FIRST layer is shared (the released code's `gcn1`, applied to the identity
    node features, i.e. a learned [D, d] table W1):
        H_g = Â_g (dropout(ReLU(Â_g W1 + b1)) W2_g) + b2_g,   g in {ehr, ddi};
    w is a learned scalar. Without a DDI adjacency the memory is H_ehr alone."""

    def __init__(self, ehr_adj: torch.Tensor, ddi_adj: torch.Tensor | None, dim: int, dropout: float):
        super().__init__()
        n = ehr_adj.shape[0]
        self.register_buffer("ehr_adj", ehr_adj)
        self.register_buffer("ddi_adj", ddi_adj if ddi_adj is not None else torch.zeros(0, 0))
        self.first = nn.Linear(n, dim)
        self.ehr_second = nn.Linear(dim, dim)
        self.ddi_second = nn.Linear(dim, dim) if ddi_adj is not None else None
        # the released code leaves w uninitialised (torch.FloatTensor(1)); GAMENet's U(-0.1, 0.1) here
        self.ddi_weight = nn.Parameter(torch.empty(1).uniform_(-0.1, 0.1)) if ddi_adj is not None else None
        self.dropout = Dropout(dropout)

    def _gcn(self, adj: torch.Tensor, second: nn.Linear) -> torch.Tensor:
        # Â (I W1) + b1 = Â W1^T + b1 with nn.Linear's [d, D] weight
        hidden = self.dropout(torch.relu(adj @ self.first.weight.T + self.first.bias))
        return adj @ (hidden @ second.weight.T) + second.bias

    def forward(self) -> torch.Tensor:
        memory = self._gcn(self.ehr_adj, self.ehr_second)
        if self.ddi_second is not None:
            memory = memory - self.ddi_weight * self._gcn(self.ddi_adj, self.ddi_second)
        return memory


class MedDecoderLayer(nn.Module):
    """The released `MedTransformerDecoder` (one post-norm layer, `heads` heads):
        x = LN1(x + SelfAttn(x) under a causal mask)
        x = LN2(x + Attn(x -> current diagnoses) + Attn(x -> current procedures))
        x = LN3(x + FFN(x)),  FFN = Linear(d, ffn) -> ReLU -> dropout -> Linear(ffn, d)
    with dropout on each branch. x [N, T, d]; diagnoses [N, Ld, d] with present bool [N, Ld];
    procedures likewise; returns [N, T, d]. No positional encoding (as released): order reaches the
    decoder through the causal mask only."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.diag_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.proc_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), Dropout(dropout), nn.Linear(ffn, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, diagnoses: torch.Tensor, diag_present: torch.Tensor,
                procedures: torch.Tensor, proc_present: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)  # True = blocked
        attended = self.self_attn(x, x, x, attn_mask=causal, need_weights=False)[0]
        x = self.norms[0](x + self.dropout(attended))
        to_diag = self.diag_attn(x, diagnoses, diagnoses, key_padding_mask=~attendable(diag_present),
                                 need_weights=False)[0]
        to_proc = self.proc_attn(x, procedures, procedures, key_padding_mask=~attendable(proc_present),
                                 need_weights=False)[0]
        x = self.norms[1](x + self.dropout(to_diag) + self.dropout(to_proc))
        return self.norms[2](x + self.dropout(self.ffn(x)))


def copy_distribution(query: torch.Tensor, keys: torch.Tensor, visit_scores: torch.Tensor,
                      slot_drugs: torch.Tensor, n_out: int) -> torch.Tensor:
    """COGNet's copy probabilities over the output classes, float [N, T, O].

    query [N, T, d] (W_c h); keys [N, S, d] (the encoded drugs of the earlier visits); visit_scores
    [N, S]: the visit-level score of the visit each slot belongs to, -inf at slots that hold no
    drug; slot_drugs int64 [N, S]: the drug index of each slot (any index where empty).
    The weight of slot s is softmax_s(q.k_s / sqrt(d) + v_s): the drug-level attention times the
    visit-level attention of its visit, renormalised (the released code multiplies the two softmaxes
    and divides by the sum, which is the same distribution). Weights are summed per drug (a drug
    given in several earlier visits collects all its slots). Rows with no drug slot get all zeros;
    the others sum to 1 (END gets nothing: it is never copied)."""
    scores = torch.einsum("ntd,nsd->nts", query, keys) / math.sqrt(query.shape[-1]) + visit_scores[:, None, :]
    has_slot = torch.isfinite(visit_scores).any(dim=1)                       # [N]
    scores = scores.masked_fill(~has_slot[:, None, None], 0.0)                # keep empty rows finite
    weights = torch.softmax(scores, dim=-1) * has_slot[:, None, None]
    out = query.new_zeros(query.shape[0], query.shape[1], n_out)
    return out.scatter_add(2, slot_drugs[:, None, :].expand_as(weights), weights)


def mixed_log_probs(generate_logits: torch.Tensor, copy_probs: torch.Tensor, switch_logits: torch.Tensor,
                    has_history: torch.Tensor) -> torch.Tensor:
    """log P(next token), float [N, T, O]: z * softmax(generate_logits) + (1 - z) * copy_probs with
    the generate probability z = sigmoid(switch_logits) ([N, T, 1]) for rows with an earlier visit
    (has_history bool [N]); softmax(generate_logits) alone for the others (no drug to copy), as the
    released code does for a patient's first visit. Computed in log space (stable in its gradients)."""
    log_generate = F.log_softmax(generate_logits, dim=-1)
    # copy probabilities are often exactly 0 (a drug of no earlier visit): the clamp keeps log's
    # gradient finite there; 1e-30 is far below any probability that matters
    log_copy = torch.log(copy_probs.clamp_min(1e-30))
    mixed = torch.logaddexp(F.logsigmoid(switch_logits) + log_generate, F.logsigmoid(-switch_logits) + log_copy)
    return torch.where(has_history[:, None, None], mixed, log_generate)
