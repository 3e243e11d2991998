"""Pieces of LEADER's student (Liu et al., arXiv 2402.02803; docs/leader.md#student): the padded
batch it reads, the transformer block it stacks, and the profile-prompt vocabulary and encoder.

Index conventions (`StudentEncoder`): ONE code table shared by the three code types; index 0 is
padding, diagnosis i is 1 + i, procedure j is 1 + n_diagnoses + j, drug k is
1 + n_diagnoses + n_procedures + k (the drug vocabulary's column order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.data import Sample, Visit, Vocab
from bench.tensor_ops import Dropout, dropout


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim -2 of x [..., L, dim] where mask [..., L] is True; zero where nothing is."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(-2) / weights.sum(-2).clamp(min=1.0)


class TransformerBlock(torch.nn.Module):
    """One pre-norm transformer encoder block, as the released LEADER code (BERT-style blocks):
    x + Dropout(MHA(LN(x))), then x + Dropout(FFN(LN(x))), FFN = Linear(dim, ffn) -> GELU -> Dropout
    -> Linear(ffn, dim); dropout also on the attention probabilities.

    forward(x float [N, L, dim], mask bool [N, L] True = a real element) -> [N, L, dim]. Masked
    elements are never attended to (keys only), so a real element's output does not depend on how
    much padding its row carries. Every row must hold at least one real element."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, torch_dropout: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        # torch_dropout=False: `bench.tensor_ops.Dropout` (same distribution, cheaper mask), and the
        # attention computed in plain ops when dropping out its probabilities (see `attend`)
        self.heads, self.dropout_p, self.torch_dropout = heads, dropout, torch_dropout
        drop = torch.nn.Dropout if torch_dropout else Dropout
        self.norm_attention = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.out = torch.nn.Linear(dim, dim)
        self.norm_ffn = torch.nn.LayerNorm(dim)
        self.ffn = torch.nn.Sequential(torch.nn.Linear(dim, ffn), torch.nn.GELU(), drop(dropout),
                                       torch.nn.Linear(ffn, dim))
        self.dropout = drop(dropout)

    def attend(self, qkv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Multi-head attention of projected qkv float [N, L, 3 dim] over the real keys -> [N, L, dim]
        (before the output projection)."""
        n, length, width = qkv.shape
        dim = width // 3
        q, k, v = qkv.view(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)   # [N, h, L, dh]
        keys = mask[:, None, None, :]
        if self.training and self.dropout_p > 0 and not self.torch_dropout:
            # what scaled_dot_product_attention computes on CPU when it drops out the probabilities
            # (its math path), with the cheaper dropout mask
            scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            probs = torch.softmax(scores.masked_fill(~keys, float("-inf")), dim=-1)
            out = dropout(probs, self.dropout_p, True) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys,
                                                 dropout_p=self.dropout_p if self.training else 0.0)
        return out.transpose(1, 2).reshape(n, length, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.out(self.attend(self.qkv(self.norm_attention(x)), mask)))
        return x + self.dropout(self.ffn(self.norm_ffn(x)))

    def forward_packed(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
        """The same block on packed input: x float [T, dim] holds only the real elements, element t at
        (rows[t], cols[t]) of a padded [N, L] layout whose real positions are mask bool [N, L]. Returns
        [T, dim] = forward(padded x, mask)[rows, cols]; the position-wise parts (layer norms,
        projections, FFN, dropouts) run on the T real elements only, the attention on the padded layout."""
        qkv = self.qkv(self.norm_attention(x))                                  # [T, 3 dim]
        padded = qkv.new_zeros(*mask.shape, qkv.shape[1]).index_put((rows, cols), qkv)
        x = x + self.dropout(self.out(self.attend(padded, mask)[rows, cols]))
        return x + self.dropout(self.ffn(self.norm_ffn(x)))


# --- the profile prompt --------------------------------------------------------------------------

class ProfileVocab:
    """The values of each admission profile field seen in TRAINING visits; index 0 of every field is
    reserved for a value not seen there, missing or empty. Saved with the model as a JSON byte array."""

    def __init__(self, fields: Sequence[str], values: Sequence[Sequence[str]]):
        if len(fields) != len(values):
            raise ValueError("one value list per profile field")
        self.fields = tuple(fields)
        self.values = tuple(tuple(v) for v in values)
        self._index = [{value: i + 1 for i, value in enumerate(vs)} for vs in self.values]

    @classmethod
    def build(cls, fields: Sequence[str], visits: Sequence[Visit]) -> "ProfileVocab":
        """Sorted non-empty values of each field over `visits` (pass the training samples' current visits)."""
        return cls(fields, [sorted({v.profile[f] for v in visits if v.profile.get(f)}) for f in fields])

    def sizes(self) -> list[int]:
        """Embedding rows per field (the unknown index included)."""
        return [len(vs) + 1 for vs in self.values]

    def encode(self, profile: Mapping[str, str]) -> list[int]:
        """One index per field (0 = not seen in training, missing or empty)."""
        return [index.get(profile.get(f, ""), 0) for f, index in zip(self.fields, self._index)]

    def to_array(self) -> np.ndarray:
        """uint8 [n]: UTF-8 JSON, so that the vocabulary travels inside weights.safetensors."""
        text = json.dumps({"fields": list(self.fields), "values": [list(v) for v in self.values]})
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()

    @classmethod
    def from_array(cls, array: np.ndarray) -> "ProfileVocab":
        raw = json.loads(np.asarray(array, dtype=np.uint8).tobytes().decode("utf-8"))
        return cls(raw["fields"], raw["values"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProfileVocab) and (self.fields, self.values) == (other.fields, other.values)


class ProfileEncoder(torch.nn.Module):
    """LEADER's profile prompt: one embedding table per field (row 0, the unknown value, is a fixed
    zero vector), the field vectors concatenated -> Linear(n_fields * dim, dim). Without profile
    fields, a learned constant vector (the released code's padding prompt).

    forward(profile int64 [B, n_fields]) -> float [B, dim]."""

    def __init__(self, sizes: Sequence[int], dim: int):
        super().__init__()
        self.tables = torch.nn.ModuleList(torch.nn.Embedding(n, dim, padding_idx=0) for n in sizes)
        self.project = torch.nn.Linear(max(len(sizes), 1) * dim, dim)
        self.constant = torch.nn.Parameter(torch.randn(dim)) if not sizes else None

    def forward(self, profile: torch.Tensor) -> torch.Tensor:
        if self.constant is not None:
            return self.project(self.constant).expand(profile.shape[0], -1)
        return self.project(torch.cat([table(profile[:, i]) for i, table in enumerate(self.tables)], dim=1))


# --- batches -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudentBatch:
    """A padded batch of B samples, each its LAST `max_visits` visits up to and including the current
    one (V = the longest in the batch; visit v of a sample sits at position v, padding after).

    diagnoses / procedures: int64 [B, V, L] shared-table indices of each visit's codes (0 = padding).
    medications: int64 [B, V, L] the SHIFTED medication input: position 0 is empty (the profile
      prompt goes there), position t holds the drugs of visit t - 1; the current visit's drugs never
      appear. visit_mask: bool [B, V]. profile: int64 [B, n_fields] of the CURRENT visit.
    current_drugs: int64 [B, L] shared-table indices of the current visit's drugs (the target as a
      set, for the profile alignment only). target: float32 [B, n_drugs] multi-hot."""

    diagnoses: torch.Tensor
    procedures: torch.Tensor
    medications: torch.Tensor
    visit_mask: torch.Tensor
    profile: torch.Tensor
    current_drugs: torch.Tensor
    target: torch.Tensor


class StudentEncoder:
    """Samples -> `StudentBatch`; each visit's code indices are computed once and reused."""

    def __init__(self, vocabs: Mapping[str, Vocab], profile: ProfileVocab, max_visits: int = 10):
        if max_visits < 1:
            raise ValueError("max_visits must be >= 1")
        self.profile, self.max_visits = profile, max_visits
        self.n_drugs = len(vocabs["drug"])
        offsets = np.cumsum([1, len(vocabs["diagnosis"]), len(vocabs["procedure"])])
        self._types = tuple(zip(("diagnosis", "procedure", "drug"), offsets))
        self.vocabs = vocabs
        self.table_size = int(offsets[-1]) + self.n_drugs
        # keyed by id(visit); the entry keeps the visit alive so that its id cannot be reused
        self._cache: dict[int, tuple[Visit, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def codes(self, visit: Visit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shared-table indices (diagnoses, procedures, drugs) of one visit."""
        key = id(visit)
        if key not in self._cache:
            self._cache[key] = (visit, tuple(np.asarray(self.vocabs[t].encode(visit.codes(t)), dtype=np.int64) + offset
                                             for t, offset in self._types))
        return self._cache[key][1]

    def clear(self) -> None:
        """Forget every visit's cached code indices (the timing's cold path, bench.timing)."""
        self._cache.clear()

    def window(self, sample: Sample) -> tuple[Visit, ...]:
        """The visits the student reads: the last `max_visits` up to and including the current one."""
        return sample.patient.visits[max(0, sample.index + 1 - self.max_visits): sample.index + 1]

    def encode(self, samples: Sequence[Sample]) -> StudentBatch:
        windows = [self.window(s) for s in samples]
        codes = [[self.codes(v) for v in w] for w in windows]
        batch, longest = len(samples), max((len(w) for w in windows), default=1)

        def width(kind: int, rows) -> int:
            return max((len(c[kind]) for seq in rows for c in seq), default=1) or 1

        dx = np.zeros((batch, longest, width(0, codes)), dtype=np.int64)
        px = np.zeros((batch, longest, width(1, codes)), dtype=np.int64)
        med = np.zeros((batch, longest, width(2, [seq[:-1] for seq in codes])), dtype=np.int64)
        current = np.zeros((batch, width(2, [seq[-1:] for seq in codes])), dtype=np.int64)
        target = np.zeros((batch, self.n_drugs), dtype=np.float32)
        mask = np.zeros((batch, longest), dtype=bool)
        profile = np.zeros((batch, len(self.profile.fields)), dtype=np.int64)
        for b, seq in enumerate(codes):
            mask[b, :len(seq)] = True
            for v, (d, p, m) in enumerate(seq):
                dx[b, v, :len(d)] = d
                px[b, v, :len(p)] = p
                if v + 1 < len(seq):
                    med[b, v + 1, :len(m)] = m   # shifted: visit v's drugs are read at position v + 1
            drugs = seq[-1][2]
            current[b, :len(drugs)] = drugs
            target[b, drugs - self._types[2][1]] = 1.0
            profile[b] = self.profile.encode(windows[b][-1].profile)
        t = torch.from_numpy
        return StudentBatch(t(dx), t(px), t(med), t(mask), t(profile), t(current), t(target))
