"""`gamenet`: GAMENet, graph-augmented memory networks (Shang et al., AAAI 2019, arXiv 1809.01852).

Shapes below: B samples, V visits per sample (padded; at most `max_visits`, the last ones, the
current visit included), L codes per visit (padded), D drugs, d = `dim`.

1. Visit encoding: mean of the (dropout) embeddings of a visit's diagnoses and of its procedures,
   [B, V, d] each; one GRU over the diagnosis sequence and one over the procedure sequence, [B, V, 2d]
   each; query q_t = Linear(ReLU([h_dx, h_px])), [B, V, d]. The query of the current visit is q.
2. Memory bank M = GCN_ehr(A_ehr) - w * GCN_ddi(A_ddi), [D, d] (w a learnable scalar; GCN = two
   graph-convolution layers over the row-normalised adjacency with self loops, D^-1 (A + I), whose
   input is a learned node embedding). A_ehr = the co-prescription graph of the TRAINING split,
   binarised (> 0); A_ddi = the DDI graph. `ddi_in_memory=false` drops the DDI term.
3. Static read: o_s = softmax(q M^T) M, [B, d].
   Dynamic read over past visits: keys = the queries of the earlier visits, values = their multi-hot
   drugs; o_d = (softmax(q K^T) V) M, [B, d]. Samples without an earlier visit get o_d = 0 (masked).
4. Output: logits = MLP(ReLU -> Linear(3d, 2d) -> ReLU -> Linear(2d, D)) of [q, o_s, o_d], [B, D].

Loss (the paper's DDI-controlled training; Algorithm 1 of the paper, per visit there):
L_acc = 0.9 BCE(logits, y) + 0.01 multilabel_margin(sigmoid(logits), y);
L_ddi = p^T A_ddi p / D^2 (GAMENet's `.mean()` over the D x D matrix (p p^T) * A_ddi). With r the
DDI rate of the predictions at 0.5: if r <= target_ddi the loss is L_acc; otherwise it is L_ddi with
probability exp((target_ddi - r) / T) and L_acc otherwise, a uniform number from a generator seeded
by the fit seed deciding. T_k = temperature * decay^k in the k-th epoch (k = 0, 1, ...).
`ddi_decision=sample` (default) takes this decision for every sample of a batch on its own DDI rate
and averages the chosen per-sample losses, so a batch update has the expectation of the paper's
per-visit updates; `ddi_decision=batch` takes one decision for the whole batch on its pooled DDI
rate. The batch version is not faithful: a pooled rate is above the target far more often than a
single visit's rate (most visits have no interacting pair), so on the synthetic dataset it trained
on the DDI loss in ~80% of the batches of the first 15 epochs and learned much more slowly.

Differences from the released code, on purpose:
- Mini-batches of samples with padding and masks replace one update per visit, so the default lr is
  larger (see `GAMENetConfig`); the paper's values stay reachable with `--set`.
- Single-visit samples are kept; their dynamic read is zero (the released code reuses the static read).
- The co-prescription graph is built from the training split only (given by the harness). The DDI
  graph of MIMIC datasets is the pinned one of the project's resources, which IS the released
  preprocessing's graph: its "top-40 severe side effects" filter actually keeps the 40 LEAST frequent
  TWOSIDES side-effect types (GAMENet issue #18, docs/datasets.md#the-ddi-graph). It is kept as it is, for
  comparability with the published numbers; `bench resources build-ddi --keep most-frequent` builds
  the alternative. The DDI matrix is held in memory rather than re-read from disk on every visit.
- Early stopping on validation PRAUC with `patience`; the best epoch's weights are kept; at most
  100 epochs (the paper trains 40).
- Computation only (the same network and losses): each visit's mean code embedding is computed
  over its real codes only (embedded and dropped out as one flat [N, d] tensor, then averaged per
  visit) instead of over the padded [B, V, L, d] tensor; the two GRUs run together
  (baselines/stacked_gru.py, zero at padded visits, which are never read); dropout masks come from
  uniform numbers (bench.tensor_ops). Outputs in eval mode are equal up to float rounding; in
  training the random stream differs, so seeds do not reproduce runs made before 2026-12 bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.stacked_gru import stacked_gru
from baselines.visits import (VisitBatch, VisitEncoder, ddi_pair_counts, ddi_pair_score, margin_targets,
                             masked_mean_embedding, real_code_mean_embedding)
from bench.config import HistoryTrainingConfig
from bench.data import Sample
from bench.progress import Progress
from bench.tensor_ops import Dropout
from bench.protocol import FitReport
from bench.torch_model import EncoderCache, TorchRecommender
from bench.training import fit_minibatch


@dataclass(frozen=True)
class GAMENetConfig(HistoryTrainingConfig):
    """Defaults from the paper (dim 64, dropout 0.4, target DDI 0.05, T 0.5 decayed x0.85 per epoch,
    loss weights 0.9 / 0.01) except for batching and the epoch cap: the paper trains with Adam at lr 2e-4,
    one update per visit; here one update covers `batch_size` = 32 samples, i.e. 32x fewer steps per
    epoch, so the default lr is 1e-3 (chosen on the validation PRAUC history of the synthetic
    dataset; `--set lr=2e-4 --set batch_size=1` is the paper's setting). `gcn_dropout` 0.3 is the
    released code's dropout between the two GCN layers. `max_visits` caps the history fed to the
    GRUs (the last visits are kept). `epochs` is a cap of 100 (the paper: 40): early stopping with
    `patience` 10 on validation PRAUC decides, since at 40 epochs the model was still improving on
    the synthetic cohort (best epoch 37-39 of 40, seeds 0-2)."""

    lr: float = 1e-3
    epochs: int = 100

    dim: int = 64
    dropout: float = 0.4
    gcn_dropout: float = 0.3
    target_ddi: float = 0.05
    ddi_in_memory: bool = True
    use_ddi_loss: bool = True
    ddi_decision: Literal["sample", "batch"] = "sample"
    ddi_loss_weight: float = 1.0
    temperature: float = 0.5
    decay: float = 0.85
    bce_weight: float = 0.9
    margin_weight: float = 0.01

    owner: ClassVar[str] = "gamenet"

    def checks(self) -> dict[str, bool]:
        return super().checks() | {
            "dim >= 1": self.dim >= 1,
            "0 <= dropout < 1": 0 <= self.dropout < 1, "0 <= gcn_dropout < 1": 0 <= self.gcn_dropout < 1,
            "0 <= target_ddi <= 1": 0 <= self.target_ddi <= 1, "temperature > 0": self.temperature > 0,
            "0 < decay <= 1": 0 < self.decay <= 1, "bce_weight >= 0": self.bce_weight >= 0,
            "margin_weight >= 0": self.margin_weight >= 0, "ddi_loss_weight >= 0": self.ddi_loss_weight >= 0,
            "ddi_decision sample|batch": self.ddi_decision in ("sample", "batch"),
        }


def normalized_adjacency(adj: np.ndarray) -> torch.Tensor:
    """float32 [D, D]: D^-1 (A' + I) with A' = (A > 0) with its diagonal cleared: every row sums to 1."""
    binary = (np.asarray(adj) > 0).astype(np.float32)
    np.fill_diagonal(binary, 1.0)
    return torch.from_numpy(binary / binary.sum(axis=1, keepdims=True))


def temperature_at(epoch_index: int, temperature: float = 0.5, decay: float = 0.85) -> float:
    """T_k = temperature * decay^k, the temperature of epoch k (k = 0 for the first epoch)."""
    return temperature * decay ** epoch_index


def ddi_loss_probability(ddi_rate, target_ddi: float, temperature: float):
    """Probability of training on the DDI loss instead of the accuracy loss, for a float or an array
    of DDI rates: 0 where the rate is at or below the target, else exp((target_ddi - rate) / T) < 1."""
    rate = np.asarray(ddi_rate, dtype=np.float64)
    p = np.where(rate > target_ddi, np.exp(np.minimum(target_ddi - rate, 0.0) / temperature), 0.0)
    return float(p) if p.ndim == 0 else p


def ddi_loss_mask(rates: np.ndarray, target_ddi: float, temperature: float,
                  rng: np.random.Generator) -> np.ndarray:
    """bool [n]: which of n decisions (samples, or one batch) use the DDI loss; draws n uniforms."""
    return rng.random(len(rates)) < ddi_loss_probability(rates, target_ddi, temperature)


def ddi_loss(probs: torch.Tensor, ddi_adj: torch.Tensor) -> torch.Tensor:
    """float [B]: p^T A p / D^2 per sample (GAMENet's mean over the D x D matrix (p p^T) * A).
    probs: [B, D]; ddi_adj: float [D, D]. Zero on a graph without edges."""
    return ddi_pair_score(probs, ddi_adj) / probs.shape[1] ** 2


class GCN(nn.Module):
    """Two graph-convolution layers over a fixed normalised adjacency Â [D, D] (a buffer, saved with
    the weights), input = a learned node embedding: H = Â (dropout(ReLU(Â W1 + b1)) W2) + b2, [D, d]."""

    def __init__(self, adj: torch.Tensor, dim: int, dropout: float, torch_dropout: bool = False):
        super().__init__()
        n = adj.shape[0]
        self.register_buffer("adj", adj)
        self.w1, self.b1 = nn.Parameter(torch.empty(n, dim)), nn.Parameter(torch.empty(dim))
        self.w2, self.b2 = nn.Parameter(torch.empty(dim, dim)), nn.Parameter(torch.empty(dim))
        bound = 1.0 / math.sqrt(dim)
        for p in (self.w1, self.b1, self.w2, self.b2):
            nn.init.uniform_(p, -bound, bound)
        self.dropout = nn.Dropout(dropout) if torch_dropout else Dropout(dropout)

    def forward(self) -> torch.Tensor:
        h = self.dropout(torch.relu(self.adj @ self.w1 + self.b1))
        return self.adj @ (h @ self.w2) + self.b2


class GAMENetModule(nn.Module):
    """The network of the module docstring: `forward(VisitBatch) -> logits [B, D]`."""

    def __init__(self, n_diag: int, n_proc: int, ehr_adj: torch.Tensor, ddi_adj: torch.Tensor | None,
                 config: GAMENetConfig, *, padded_codes: bool = False):
        super().__init__()
        # True: the pre-2026-12 computation (visit encoding over the padded [B, V, L, d] tensor, torch's
        # dropout): the same model, slower; kept for the old-against-new training benchmark
        # (tests/benchmarks/test_training_speed.py)
        self.padded_codes = padded_codes
        d, n_drugs = config.dim, ehr_adj.shape[0]
        self.diag_embedding = nn.Embedding(n_diag + 1, d, padding_idx=0)
        self.proc_embedding = nn.Embedding(n_proc + 1, d, padding_idx=0)
        with torch.no_grad():  # the released code's initialisation: U(-0.1, 0.1)
            for emb in (self.diag_embedding, self.proc_embedding):
                emb.weight.uniform_(-0.1, 0.1)
                emb.weight[0].zero_()
        self.dropout = nn.Dropout(config.dropout) if padded_codes else Dropout(config.dropout)
        self.diag_gru = nn.GRU(d, 2 * d, batch_first=True)
        self.proc_gru = nn.GRU(d, 2 * d, batch_first=True)
        self.query = nn.Sequential(nn.ReLU(), nn.Linear(4 * d, d))
        self.ehr_gcn = GCN(ehr_adj, d, config.gcn_dropout, padded_codes)
        self.ddi_gcn = GCN(ddi_adj, d, config.gcn_dropout, padded_codes) if ddi_adj is not None else None
        self.ddi_weight = nn.Parameter(torch.empty(1).uniform_(-0.1, 0.1)) if ddi_adj is not None else None
        self.output = nn.Sequential(nn.ReLU(), nn.Linear(3 * d, 2 * d), nn.ReLU(), nn.Linear(2 * d, n_drugs))

    def memory(self) -> torch.Tensor:
        """The drug memory bank [D, d]: GCN(co-prescription) - w * GCN(DDI)."""
        bank = self.ehr_gcn()
        if self.ddi_gcn is not None:
            bank = bank - self.ddi_weight * self.ddi_gcn()
        return bank

    def forward(self, batch: VisitBatch) -> torch.Tensor:
        dx, px = self.visit_codes(batch)                                           # [B, V, d] each
        # GRUs are causal, so outputs at a sample's real visits do not depend on the right padding.
        if self.padded_codes:
            hidden = torch.cat([self.diag_gru(dx)[0], self.proc_gru(px)[0]], dim=-1)  # [B, V, 4d]
        else:   # the same GRUs, computed together (zero at the padding, which is never read)
            hidden = torch.cat(stacked_gru([self.diag_gru, self.proc_gru], [dx, px], batch.lengths), dim=-1)
        queries = self.query(hidden)                                               # [B, V, d]
        last = batch.last_index
        query = queries[torch.arange(len(last)), last]                             # [B, d]
        bank = self.memory()                                                       # [D, d]
        static = torch.softmax(query @ bank.T, dim=-1) @ bank                      # [B, d]
        dynamic = self.dynamic_read(query, queries, batch.history_drugs, last) @ bank
        return self.output(torch.cat([query, static, dynamic], dim=-1))

    def visit_codes(self, batch: VisitBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean of the dropped-out embeddings of each visit's diagnoses and procedures, [B, V, d] each."""
        if self.padded_codes:
            return (masked_mean_embedding(nn.Sequential(self.diag_embedding, self.dropout), batch.diagnoses),
                    masked_mean_embedding(nn.Sequential(self.proc_embedding, self.dropout), batch.procedures))
        return (real_code_mean_embedding(self.diag_embedding, batch.diagnoses, self.dropout),
                real_code_mean_embedding(self.proc_embedding, batch.procedures, self.dropout))

    @staticmethod
    def dynamic_read(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                     last: torch.Tensor) -> torch.Tensor:
        """Attention of query [B, d] over the EARLIER visits' keys [B, V, d] (positions < last [B]),
        returning the weighted sum of their multi-hot drugs values [B, V, D] -> [B, D]. A sample with
        no earlier visit gets an all-zero row (no NaN in the forward or backward pass)."""
        earlier = torch.arange(keys.shape[1])[None, :] < last[:, None]          # [B, V]
        scores = torch.einsum("bd,bvd->bv", query, keys).masked_fill(~earlier, float("-inf"))
        scores = scores.masked_fill(~earlier.any(dim=1, keepdim=True), 0.0)    # all-masked rows
        weights = torch.softmax(scores, dim=-1) * earlier                      # zero where masked
        return torch.einsum("bv,bvd->bd", weights, values)


class GAMENet(EncoderCache, TorchRecommender):
    name: ClassVar[str] = "gamenet"
    needs: ClassVar[frozenset[str]] = frozenset({"ddi", "ehr_graph"})
    Config = GAMENetConfig
    smoke_options: ClassVar[dict[str, str]] = {"epochs": "1", "dim": "16"}
    # True: train as before the 2026-12 speed-up (padded visit encoding, for-loop Adam); same model,
    # for the old-against-new benchmark only (tests/benchmarks/test_training_speed.py)
    _previous_path: bool = False

    def __init__(self, config: GAMENetConfig, resources):
        if resources.ehr_graph is None or resources.ddi_adj is None:
            raise ValueError("gamenet needs the co-prescription graph and the DDI matrix (needs ddi, ehr_graph)")
        self.encoder = VisitEncoder(resources.vocabs, config.max_visits)
        self.ddi_adj = torch.from_numpy(np.asarray(resources.ddi_adj, dtype=np.float32))
        super().__init__(config, resources)

    def build_module(self) -> GAMENetModule:
        v, c = self.resources.vocabs, self.config
        ddi = normalized_adjacency(self.resources.ddi_adj) if c.ddi_in_memory else None
        return GAMENetModule(len(v["diagnosis"]), len(v["procedure"]),
                             normalized_adjacency(self.resources.ehr_graph), ddi, c, padded_codes=self._previous_path)

    def logits(self, samples: Sequence[Sample]) -> torch.Tensor:
        return self.module(self.encoder.encode(samples))

    def batch_loss(self, batch: VisitBatch, rng: np.random.Generator, temperature: float,
                   counts: dict[str, float]) -> torch.Tensor:
        """The loss of one training batch (module docstring); `counts` collects epoch statistics."""
        c = self.config
        logits = self.module(batch)
        probs = torch.sigmoid(logits)
        loss = (c.bce_weight * F.binary_cross_entropy_with_logits(logits, batch.target, reduction="none").mean(1)
                + c.margin_weight * F.multilabel_margin_loss(probs, margin_targets(batch.target), reduction="none"))
        if c.use_ddi_loss:
            ddi, pairs = ddi_pair_counts(probs.detach() > 0.5, self.ddi_adj)
            counts["ddi_pairs"] += float(ddi.sum())
            counts["pairs"] += float(pairs.sum())
            if c.ddi_decision == "batch":
                rates = (ddi.sum() / pairs.sum().clamp(min=1.0)).reshape(1)
            else:
                rates = ddi / pairs.clamp(min=1.0)
            use = torch.from_numpy(ddi_loss_mask(rates.numpy(), c.target_ddi, temperature, rng))
            counts["ddi_loss_samples"] += float(use.expand(len(loss)).sum())
            loss = torch.where(use, c.ddi_loss_weight * ddi_loss(probs, self.ddi_adj), loss)
        counts["samples"] += len(loss)
        return loss.mean()

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int,
            progress: Progress) -> FitReport:
        c = self.config
        torch.manual_seed(seed)
        self.module = self.build_module()
        rng = np.random.default_rng([seed, 1])  # DDI-loss decisions; separate from the batch order
        state = {"temperature": temperature_at(0, c.temperature, c.decay)}
        counts = dict.fromkeys(("samples", "ddi_loss_samples", "ddi_pairs", "pairs"), 0.0)

        def batch_loss(indices: np.ndarray) -> torch.Tensor:
            batch = self.encoder.encode([train[i] for i in indices])
            return self.batch_loss(batch, rng, state["temperature"], counts)

        def on_epoch_end(epoch: int) -> dict[str, float]:
            extra = {"temperature": state["temperature"],
                     "ddi_loss_share": counts["ddi_loss_samples"] / max(counts["samples"], 1.0)}
            if c.use_ddi_loss:  # pooled DDI rate of the epoch's training predictions at 0.5
                extra["train_ddi_rate"] = counts["ddi_pairs"] / max(counts["pairs"], 1.0)
            state["temperature"] = temperature_at(epoch, c.temperature, c.decay)
            counts.update(dict.fromkeys(counts, 0.0))
            return extra

        report = fit_minibatch(self.module, c, train=train, valid=valid, batch_loss=batch_loss,
                               predict=self.predict_proba, drug_vocab=self.resources.vocabs["drug"],
                               seed=seed, progress=progress, description="fit gamenet", on_epoch_end=on_epoch_end,
                               fused_adam=not self._previous_path)
        if self.module.ddi_weight is not None:
            report.notes["ddi_memory_weight"] = float(self.module.ddi_weight.detach())
        return report
