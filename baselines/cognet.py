"""`cognet`: COGNet, conditional generation of the drug set with a copy-or-predict mechanism
(Wu, Qiu, Jiang, Qi, Wu, WWW 2022, "Conditional Generation Net for Medication Recommendation",
arXiv 2202.06588; released code github.com/BarryRun/COGNet).

Shapes: B samples, V visits per sample (padded; at most `max_visits`, the last ones, the current
visit included), L codes per visit, M drugs per earlier visit, S = V * M history drug slots, T decoder
positions, D drugs, O = D + 1 output classes (the drugs, then END), d = `dim`. Tokens: drug i is i,
END is D, the start token D + 1, padding D + 2.

1. Code encoders: each visit's diagnoses (procedures) are embedded (dropout `embedding_dropout`) and
   passed through one transformer encoder layer over the codes of that visit ([B, V, L, d]; `heads`
   heads, feed-forward `encoder_ffn`, dropout `dropout`; no positional encoding). Attention pooling
   (baselines/cognet_layers.AttentionPool) gives one diagnosis and one procedure vector per visit.
2. Visit-level attention of the current visit t over each earlier visit j < t:
   v_j = (dx_t . dx_j + px_t . px_j) / sqrt(d).
3. History drugs: each earlier visit's drug set is embedded (the same table as the decoder's tokens)
   and encoded by a third transformer encoder layer: keys [B, S, d].
4. Drug memory [D, d] = GCN(co-prescription graph) - w * GCN(DDI graph), the two GCNs sharing their
   first layer (cognet_layers.DrugMemory). This is COGNet's only use of the DDI graph: the released
   code has no DDI loss (its DDI term is commented out) and its beam search ignores the graph.
5. Decoder (teacher forcing in training): input tokens [start, m_1, ..., m_K] embedded, plus the
   memory row of each drug token; one MedDecoderLayer (causal self-attention, attention to the current
   visit's encoded diagnoses and procedures, feed-forward `decoder_ffn`) gives h [B, T, d].
6. Copy or predict: P_gen = softmax(W_o h) over O classes; P_copy = softmax over the history slots of
   (W_c h . key / sqrt(d) + v_visit(slot)), summed per drug (cognet_layers.copy_distribution);
   z = sigmoid(w_z . h); P = z P_gen + (1 - z) P_copy, or P_gen for a sample without earlier drugs.
   Loss: the mean negative log-likelihood of the targets [m_1, ..., m_K, END] over the batch's tokens.
7. Inference: beam search (baselines/set_beam_search.py; `beam_size` 4, at most `max_len` 45 drugs,
   the released defaults); the prediction is the best hypothesis' drug SET.

Drug order of the training sequences: rare first, by the drugs' visit counts in the training split,
ties by vocabulary index (`drug_order=rare-first`, the released code's "rare first" sort, which counts
over the whole dataset); `common-first` is the opposite order.

Predictions are sets, so `predict_proba` returns 0/1 and the model declares `hard_predictions`:
PRAUC is null in run.json, n/a in `bench compare`, and `--threshold` does not apply. Early stopping
uses validation Jaccard of the beam-search sets (the released code picks the epoch of best validation
Jaccard by hand after 200 epochs).

Differences from the released code:
- Samples are (patient, visit) pairs, each predicting one visit from its history, batched with
  padding; the released code decodes every visit of a batch of 16 patients at once. The loss is the
  same per-token NLL; batches hold `batch_size` target visits instead of 16 patients' visits.
- Validation decodes by beam search, as the test does (the released code validates with greedy
  decoding and drops repeated drugs afterwards).
- END is the only special output class (the released output layer also scores the start token,
  which is never a target, and treats it as END in the beam).
- The copy distribution is one softmax over the slots of (drug score + visit score); the released
  product of two softmaxes, clamped at 1e-9 and renormalised, is the same up to that clamp.
- The memory's DDI weight w starts at U(-0.1, 0.1) (the released one is uninitialised memory).
- Unused parts of the released model are left out (a GRU, several linear layers and SafeDrug's
  bipartite layers that its forward pass never calls).
- Single-visit samples are kept; they generate without copying, as the released code's first visits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.cognet_layers import (AttentionPool, DrugMemory, MedDecoderLayer, SetEncoderLayer, copy_distribution,
                                     mixed_log_probs)
from baselines.gamenet import normalized_adjacency
from baselines.set_beam_search import BeamResult, beam_search
from baselines.visits import VisitBatch, VisitEncoder
from bench.config import HistoryTrainingConfig
from bench.data import Sample, target_matrix
from bench.progress import Progress
from bench.protocol import FitReport
from bench.tensor_ops import Dropout
from bench.torch_model import EncoderCache, TorchRecommender
from bench.training import fit_minibatch

IGNORE = -100   # target of a padded decoder position (F.nll_loss's default ignore_index)


@dataclass(frozen=True)
class COGNetConfig(HistoryTrainingConfig):
    """The released code's settings: dim 64, 2 heads, embedding dropout 0.3, transformer dropout 0.2,
    encoder feed-forward 2048 (torch's default, which the released encoders keep), decoder feed-forward
    2 x dim = 128, GCN dropout 0.3, Adam lr 1e-3, batches of 16, beam size 4, at most 45 drugs per
    set, 200 epochs. Here the 200 epochs are a cap: early stopping with `patience` 10 on validation
    Jaccard decides."""

    lr: float = 1e-3
    batch_size: int = 16
    epochs: int = 200
    patience: int = 10

    dim: int = 64
    heads: int = 2
    embedding_dropout: float = 0.3
    dropout: float = 0.2
    encoder_ffn: int = 2048
    decoder_ffn: int = 128
    gcn_dropout: float = 0.3
    ddi_in_memory: bool = True
    beam_size: int = 4
    max_len: int = 45
    drug_order: Literal["rare-first", "common-first"] = "rare-first"

    owner: ClassVar[str] = "cognet"

    def checks(self) -> dict[str, bool]:
        return super().checks() | {
            "dim >= 1": self.dim >= 1, "heads >= 1": self.heads >= 1,
            "dim divisible by heads": self.heads >= 1 and self.dim % self.heads == 0,
            "0 <= embedding_dropout < 1": 0 <= self.embedding_dropout < 1, "0 <= dropout < 1": 0 <= self.dropout < 1,
            "0 <= gcn_dropout < 1": 0 <= self.gcn_dropout < 1,
            "encoder_ffn >= 1": self.encoder_ffn >= 1, "decoder_ffn >= 1": self.decoder_ffn >= 1,
            "beam_size >= 1": self.beam_size >= 1, "max_len >= 1": self.max_len >= 1,
            "drug_order rare-first|common-first": self.drug_order in ("rare-first", "common-first"),
        }


@dataclass(frozen=True)
class EncodedVisits:
    """What the decoder reads, per row: the current visit's encoded diagnoses [N, Ld, d] and
    procedures [N, Lp, d] with their present masks; the history drug slots (copy_keys [N, S, d],
    visit_scores [N, S] with -inf at empty slots, slot_drugs int64 [N, S]); has_history bool [N]
    (at least one earlier drug to copy); memory [D + 3, d] (the drug memory, zero rows for END, start
    and padding), shared by all rows."""

    diagnoses: torch.Tensor
    diag_present: torch.Tensor
    procedures: torch.Tensor
    proc_present: torch.Tensor
    copy_keys: torch.Tensor
    visit_scores: torch.Tensor
    slot_drugs: torch.Tensor
    has_history: torch.Tensor
    memory: torch.Tensor

    def select(self, rows: torch.Tensor) -> EncodedVisits:
        """The rows `rows` (int64 [R], repeats allowed: one per beam hypothesis)."""
        return EncodedVisits(**{f.name: getattr(self, f.name) if f.name == "memory" else getattr(self, f.name)[rows]
                                for f in fields(self)})


def drug_rank(train_targets: np.ndarray, order: str) -> torch.Tensor:
    """int64 [D]: each drug's position in the training sequences' order, from bool [n, D] training
    targets: `rare-first` by ascending visit count, `common-first` by descending; ties by index."""
    counts = train_targets.sum(axis=0)
    ranked = np.argsort(counts if order == "rare-first" else -counts, kind="stable")
    rank = np.empty(len(counts), dtype=np.int64)
    rank[ranked] = np.arange(len(counts))
    return torch.from_numpy(rank)


def teacher_forcing(target: torch.Tensor, rank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs and targets from multi-hot targets float [B, D], both int64 [B, K + 1]
    (K = the largest set): inputs [start, m_1..m_k, padding...], targets [m_1..m_k, END, IGNORE...],
    the drugs m ordered by `rank` (int64 [D], `drug_rank`)."""
    n_drugs = target.shape[1]
    present = target > 0
    order = torch.sort(torch.where(present, rank, n_drugs), dim=1, stable=True).indices
    counts = present.sum(dim=1)
    width = int(counts.max()) if len(counts) else 0
    sequence, real = order[:, :width], torch.arange(width)[None, :] < counts[:, None]
    start = torch.full((len(target), 1), n_drugs + 1)
    inputs = torch.cat([start, torch.where(real, sequence, n_drugs + 2)], dim=1)
    targets = torch.cat([torch.where(real, sequence, IGNORE), torch.full((len(target), 1), IGNORE)], dim=1)
    targets[torch.arange(len(target)), counts] = n_drugs
    return inputs, targets


class COGNetModule(nn.Module):
    """The network of the module docstring: `encode(VisitBatch) -> EncodedVisits`, then
    `decode(encoded, tokens int64 [N, T]) -> log-probabilities [N, T, O]`."""

    def __init__(self, n_diag: int, n_proc: int, ehr_adj: torch.Tensor, ddi_adj: torch.Tensor | None,
                 config: COGNetConfig):
        super().__init__()
        d, n_drugs = config.dim, ehr_adj.shape[0]
        self.n_drugs = n_drugs
        self.diag_embedding = nn.Embedding(n_diag + 1, d, padding_idx=0)
        self.proc_embedding = nn.Embedding(n_proc + 1, d, padding_idx=0)
        self.drug_embedding = nn.Embedding(n_drugs + 3, d, padding_idx=n_drugs + 2)
        self.embedding_dropout = Dropout(config.embedding_dropout)

        def encoder() -> SetEncoderLayer:
            return SetEncoderLayer(d, config.heads, config.encoder_ffn, config.dropout)

        self.diag_encoder, self.proc_encoder, self.drug_encoder = encoder(), encoder(), encoder()
        self.diag_pool, self.proc_pool = AttentionPool(d), AttentionPool(d)
        self.memory = DrugMemory(ehr_adj, ddi_adj, d, config.gcn_dropout)
        self.decoder = MedDecoderLayer(d, config.heads, config.decoder_ffn, config.dropout)
        self.generate = nn.Linear(d, n_drugs + 1)
        self.copy_query = nn.Linear(d, d)
        self.switch = nn.Linear(d, 1)

    def _encode_sets(self, embedding: nn.Embedding, encoder: SetEncoderLayer, ids: torch.Tensor,
                     present: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
        """Encode each set of ids [B, V, L] (present bool [B, V, L]) whose `used` [B, V] is True with
        `encoder`, over its present items only: [B, V, L, d] (zero for unused sets)."""
        batch, visits, width = ids.shape
        rows = used.reshape(-1).nonzero(as_tuple=True)[0]
        if len(rows) == 0:   # e.g. no earlier drugs anywhere in the batch
            return self.drug_embedding.weight.new_zeros(batch, visits, width, self.drug_embedding.embedding_dim)
        x = self.embedding_dropout(embedding(ids.reshape(-1, width)[rows]))
        encoded = encoder(x, present.reshape(-1, width)[rows])
        out = x.new_zeros(batch * visits, width, x.shape[-1]).index_copy(0, rows, encoded)
        return out.view(batch, visits, width, -1)

    def encode(self, batch: VisitBatch) -> EncodedVisits:
        every = torch.arange(len(batch.lengths))
        last = batch.last_index
        visits = batch.visit_mask
        dx_present, px_present = batch.diagnoses > 0, batch.procedures > 0
        dx = self._encode_sets(self.diag_embedding, self.diag_encoder, batch.diagnoses, dx_present, visits)
        px = self._encode_sets(self.proc_embedding, self.proc_encoder, batch.procedures, px_present, visits)
        dx_visit = self.diag_pool(dx.flatten(0, 1), dx_present.flatten(0, 1)).view(*visits.shape, -1)  # [B, V, d]
        px_visit = self.proc_pool(px.flatten(0, 1), px_present.flatten(0, 1)).view(*visits.shape, -1)
        scores = (torch.einsum("bd,bvd->bv", dx_visit[every, last], dx_visit)
                  + torch.einsum("bd,bvd->bv", px_visit[every, last], px_visit)) / dx_visit.shape[-1] ** 0.5

        # history slots: each earlier visit's drug indices first (a stable sort on "is absent")
        history = batch.history_drugs > 0                                                   # [B, V, D]
        counts = history.sum(dim=-1)
        width = max(int(counts.max()), 1)
        drugs = torch.sort((~history).to(torch.int8), dim=-1, stable=True).indices[..., :width]  # [B, V, M]
        filled = torch.arange(width) < counts[..., None]
        keys = self._encode_sets(self.drug_embedding, self.drug_encoder, torch.where(filled, drugs, self.n_drugs + 2),
                                 filled, counts > 0)
        slot_scores = scores[..., None].expand_as(filled).masked_fill(~filled, float("-inf"))
        memory = torch.cat([self.memory(), keys.new_zeros(3, keys.shape[-1])])
        return EncodedVisits(dx[every, last], dx_present[every, last], px[every, last], px_present[every, last],
                             keys.flatten(1, 2), slot_scores.flatten(1), torch.where(filled, drugs, 0).flatten(1),
                             filled.flatten(1).any(dim=1), memory)

    def decode(self, encoded: EncodedVisits, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding_dropout(self.drug_embedding(tokens)) + encoded.memory[tokens]
        h = self.decoder(x, encoded.diagnoses, encoded.diag_present, encoded.procedures, encoded.proc_present)
        copy = copy_distribution(self.copy_query(h), encoded.copy_keys, encoded.visit_scores, encoded.slot_drugs,
                                 self.n_drugs + 1)
        return mixed_log_probs(self.generate(h), copy, self.switch(h), encoded.has_history)

    def loss(self, batch: VisitBatch, rank: torch.Tensor) -> torch.Tensor:
        """Teacher-forced mean NLL of the batch's target sequences (`teacher_forcing`)."""
        inputs, targets = teacher_forcing(batch.target, rank)
        log_probs = self.decode(self.encode(batch), inputs)
        return F.nll_loss(log_probs.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


class COGNet(EncoderCache, TorchRecommender):
    name: ClassVar[str] = "cognet"
    needs: ClassVar[frozenset[str]] = frozenset({"ddi", "ehr_graph"})
    Config = COGNetConfig
    hard_predictions: ClassVar[bool] = True
    smoke_options: ClassVar[dict[str, str]] = {"epochs": "1", "dim": "16", "encoder_ffn": "32", "decoder_ffn": "32"}
    predict_batch_size = 256   # x beam_size hypotheses per decoder call

    def __init__(self, config: COGNetConfig, resources):
        if resources.ehr_graph is None or resources.ddi_adj is None:
            raise ValueError("cognet needs the co-prescription graph and the DDI matrix (needs ddi, ehr_graph)")
        self.encoder = VisitEncoder(resources.vocabs, config.max_visits)
        self._cut: list[bool] = []
        super().__init__(config, resources)

    def build_module(self) -> COGNetModule:
        v, c = self.resources.vocabs, self.config
        ddi = normalized_adjacency(self.resources.ddi_adj) if c.ddi_in_memory else None
        return COGNetModule(len(v["diagnosis"]), len(v["procedure"]), normalized_adjacency(self.resources.ehr_graph),
                            ddi, c)

    def decode_sets(self, samples: Sequence[Sample]) -> BeamResult:
        """Beam search over `samples` (the module in eval mode)."""
        encoded = self.module.encode(self.encoder.encode(samples))

        def step(rows: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
            return self.module.decode(encoded.select(rows), prefix)[:, -1]

        return beam_search(step, len(samples), self.resources.n_drugs, beam_size=self.config.beam_size,
                           max_len=self.config.max_len)

    @torch.no_grad()
    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        """float32 0/1 [n, n_drugs]: the drug set of each sample's best beam-search hypothesis."""
        self.module.eval()
        out = np.zeros((len(samples), self.resources.n_drugs), dtype=np.float32)
        self._cut = []
        for start in range(0, len(samples), self.predict_batch_size):
            result = self.decode_sets(samples[start:start + self.predict_batch_size])
            out[start:start + len(result.sets)] = result.sets.numpy()
            self._cut.extend((~result.finished).tolist())
        return out

    def prediction_notes(self) -> dict[str, object]:
        """About the latest `predict_proba` call: the decoding, and the share of sets cut at max_len."""
        return {"decoding": "beam search", "beam_size": self.config.beam_size, "max_len": self.config.max_len,
                "cut_at_max_len": float(np.mean(self._cut)) if self._cut else None}

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int,
            progress: Progress) -> FitReport:
        c = self.config
        torch.manual_seed(seed)
        self.module = self.build_module()
        rank = drug_rank(target_matrix(train, self.resources.vocabs["drug"]), c.drug_order)

        def batch_loss(indices: np.ndarray) -> torch.Tensor:
            return self.module.loss(self.encoder.encode([train[i] for i in indices]), rank)

        report = fit_minibatch(self.module, c, train=train, valid=valid, batch_loss=batch_loss,
                               predict=self.predict_proba, drug_vocab=self.resources.vocabs["drug"], seed=seed,
                               progress=progress, description="fit cognet", valid_metric="jaccard")
        report.notes["drug_order"] = c.drug_order
        if self.module.memory.ddi_weight is not None:
            report.notes["ddi_memory_weight"] = float(self.module.memory.ddi_weight.detach())
        return report
