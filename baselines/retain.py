"""`retain`: RETAIN, reverse time attention (Choi et al., NeurIPS 2016, arXiv 1608.05745), as the
medication-recommendation baseline of the SafeDrug, MoleRec and LEADER tables.

Shapes below: B samples, V visits per sample (padded; at most `max_visits`, the last ones, the
current visit included), L codes per visit (padded), D drugs, d = `dim`.

1. Visit vectors v_j, [B, V, d]: the sum of the embeddings of visit j's codes (the paper's linear
   embedding W_emb x_j of a multi-hot x_j): its diagnoses, its procedures and, for an EARLIER visit,
   its drugs. The current visit contributes its diagnoses and procedures only (its drugs are the
   target). Dropout masks every code's embedding before the sum.
2. Reverse time: each sample's real visits are reordered most recent first; two GRUs (d -> d) read
   that sequence: g_j = GRU_alpha, h_j = GRU_beta, [B, V, d] each.
3. Visit-level attention alpha = softmax_j(w_alpha . g_j + b_alpha) over the sample's real visits,
   [B, V]; variable-level attention beta_j = tanh(W_beta h_j + b_beta), [B, V, d].
4. Context c = sum_j alpha_j * beta_j * v_j, [B, d]; logits = W c + b, [B, D]; probabilities =
   sigmoid(logits) (multi-label; the paper's softmax is for a single label). Loss: BCE.

Inputs, as the SafeDrug and MICRON authors fed their RETAIN baseline (their `Retain` model, shared by
both repositories): one embedding table over diagnoses, procedures and drugs, each visit the sum of
its codes' embeddings with dropout on every code's embedding (SafeDrug 0.5, MICRON 0.3), dim 64, BCE.

Differences from that released code, on purpose:
- The visit to predict is in the input with its diagnoses and procedures (not its drugs): the
  released training predicts visit i from visits 0..i-1 only, i.e. without the current visit's
  diagnoses, and cannot predict a first visit. Every model of this benchmark reads the current
  visit's codes, and single-visit patients are kept.
- Attention as the paper: the released code takes its softmax over a size-1 axis, so every alpha is
  1 (no visit-level attention at all), and runs both GRUs forward in time; here alpha is a softmax
  over the visits and the GRUs read them in reverse time.
- Separate diagnosis / procedure / drug tables instead of one table with offsets (the same model),
  initialised U(-0.1, 0.1) instead of N(0, 1) (`embedding_init`, see `RETAINConfig`).
- Mini-batches of padded visit sequences instead of one update per patient, so lr 2e-3 instead of
  5e-4; early stopping on validation PRAUC with `patience`, at most `epochs`; the last `max_visits`
  visits. Both GRUs run together (baselines/stacked_gru.py: torch.nn.GRU's outputs, faster).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.stacked_gru import stacked_gru
from baselines.visits import VisitBatch, VisitEncoder, real_code_sum_embedding
from bench.config import HistoryTrainingConfig
from bench.data import Sample
from bench.progress import Progress
from bench.protocol import FitReport
from bench.tensor_ops import Dropout, segment_sum
from bench.torch_model import EncoderCache, TorchRecommender
from bench.training import fit_minibatch


@dataclass(frozen=True)
class RETAINConfig(HistoryTrainingConfig):
    """dim 64 and dropout 0.5: the RETAIN baseline of the SafeDrug code, whose numbers the SafeDrug and
    MoleRec tables report (the RETAIN paper used 128 on its heart-failure task; PyHealth defaults to
    128; the SafeDrug-era benchmarks all use 64). lr 2e-3 for batches of 32 samples (the released code:
    Adam 5e-4, one update per patient), chosen on synthetic-small's validation PRAUC; at most 100 epochs
    with patience 10 (the released code trains 40). `embedding_init` "uniform": code embeddings drawn
    from U(-0.1, 0.1), as the released GAMENet, SafeDrug and MICRON code draw theirs; "normal" is
    torch's N(0, 1), what the released RETAIN leaves in place (on synthetic-small, seeds 0-2, its
    summed visit vectors are ~10x larger and test PRAUC drops from 0.60 to 0.54-0.57)."""

    lr: float = 2e-3
    epochs: int = 100

    dim: int = 64
    dropout: float = 0.5
    embedding_init: Literal["uniform", "normal"] = "uniform"

    owner: ClassVar[str] = "retain"

    def checks(self) -> dict[str, bool]:
        return super().checks() | {"dim >= 1": self.dim >= 1, "0 <= dropout < 1": 0 <= self.dropout < 1,
                                   "embedding_init uniform|normal": self.embedding_init in ("uniform", "normal")}


def reverse_visits(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x [B, V, ...] right-padded to lengths int64 [B] -> the same shape with each sample's real visits
    in reverse order (out[b, k] = x[b, lengths[b] - 1 - k] for k < lengths[b]), padding left in place."""
    positions = torch.arange(x.shape[1])[None, :]                                 # [1, V]
    real = positions < lengths[:, None]
    source = torch.where(real, lengths[:, None] - 1 - positions, positions)       # [B, V]
    return x[torch.arange(x.shape[0])[:, None], source]


class RETAINModule(nn.Module):
    """The network of the module docstring: `forward(VisitBatch) -> logits [B, D]`."""

    def __init__(self, n_diagnoses: int, n_procedures: int, n_drugs: int, config: RETAINConfig):
        super().__init__()
        d = config.dim
        self.diagnosis_embedding = nn.Embedding(n_diagnoses + 1, d, padding_idx=0)
        self.procedure_embedding = nn.Embedding(n_procedures + 1, d, padding_idx=0)
        self.drug_embedding = nn.Embedding(n_drugs, d)
        self.dropout = Dropout(config.dropout)
        self.alpha_gru = nn.GRU(d, d, batch_first=True)
        self.beta_gru = nn.GRU(d, d, batch_first=True)
        self.alpha = nn.Linear(d, 1)
        self.beta = nn.Linear(d, d)
        self.output = nn.Linear(d, n_drugs)
        if config.embedding_init == "uniform":
            with torch.no_grad():
                for table in (self.diagnosis_embedding, self.procedure_embedding, self.drug_embedding):
                    table.weight.uniform_(-0.1, 0.1)
                    if table.padding_idx is not None:
                        table.weight[table.padding_idx].zero_()

    def visit_vectors(self, batch: VisitBatch) -> torch.Tensor:
        """float [B, V, d]: each visit's summed code embeddings (earlier visits' drugs included)."""
        batch_size, visits, n_drugs = batch.history_drugs.shape
        slots, drugs = torch.nonzero(batch.history_drugs.reshape(-1, n_drugs), as_tuple=True)
        drug_sums = segment_sum(self.dropout(self.drug_embedding(drugs)), slots, batch_size * visits)
        return (real_code_sum_embedding(self.diagnosis_embedding, batch.diagnoses, self.dropout)
                + real_code_sum_embedding(self.procedure_embedding, batch.procedures, self.dropout)
                + drug_sums.view(batch_size, visits, -1))

    def attention(self, batch: VisitBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(alpha [B, V], beta [B, V, d], v [B, V, d]), all in REVERSE time: position 0 is the current
        visit, position k the k-th visit before it; alpha is zero at the padding."""
        v = reverse_visits(self.visit_vectors(batch), batch.lengths)
        g, h = stacked_gru([self.alpha_gru, self.beta_gru], [v, v], batch.lengths)
        real = torch.arange(v.shape[1])[None, :] < batch.lengths[:, None]             # [B, V]
        alpha = torch.softmax(self.alpha(g).squeeze(-1).masked_fill(~real, float("-inf")), dim=1)
        return alpha, torch.tanh(self.beta(h)), v

    def forward(self, batch: VisitBatch) -> torch.Tensor:
        alpha, beta, v = self.attention(batch)
        context = (alpha.unsqueeze(-1) * beta * v).sum(dim=1)                          # [B, d]
        return self.output(context)


class RETAIN(EncoderCache, TorchRecommender):
    name: ClassVar[str] = "retain"
    needs: ClassVar[frozenset[str]] = frozenset()
    Config = RETAINConfig
    smoke_options: ClassVar[dict[str, str]] = {"epochs": "1", "dim": "16"}

    def __init__(self, config: RETAINConfig, resources):
        self.encoder = VisitEncoder(resources.vocabs, config.max_visits)
        super().__init__(config, resources)

    def build_module(self) -> RETAINModule:
        v = self.resources.vocabs
        return RETAINModule(len(v["diagnosis"]), len(v["procedure"]), len(v["drug"]), self.config)

    def logits(self, samples: Sequence[Sample]) -> torch.Tensor:
        return self.module(self.encoder.encode(samples))

    @torch.no_grad()
    def visit_attention(self, samples: Sequence[Sample]) -> np.ndarray:
        """float32 [n, V]: alpha over each sample's visits in reverse time (column 0 = the current
        visit; zero past a sample's own visits), what RETAIN offers to interpret a prediction."""
        self.module.eval()
        return self.module.attention(self.encoder.encode(samples))[0].numpy()

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int,
            progress: Progress) -> FitReport:
        torch.manual_seed(seed)
        self.module = self.build_module()

        def batch_loss(indices: np.ndarray) -> torch.Tensor:
            batch = self.encoder.encode([train[i] for i in indices])
            return F.binary_cross_entropy_with_logits(self.module(batch), batch.target)

        report = fit_minibatch(self.module, self.config, train=train, valid=valid, batch_loss=batch_loss,
                               predict=self.predict_proba, drug_vocab=self.resources.vocabs["drug"],
                               seed=seed, progress=progress, description="fit retain")
        history = [s for s in valid if s.index > 0]
        if history:   # how much weight the trained model puts on the current visit when it has a past
            size = self.predict_batch_size
            current = np.concatenate([self.visit_attention(history[i:i + size])[:, 0]
                                      for i in range(0, len(history), size)])
            report.notes["valid_current_visit_alpha"] = float(current.mean())
        return report
