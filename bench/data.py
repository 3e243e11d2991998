"""The data model shared by every dataset and model.

A patient is an ordered tuple of visits; each visit carries sets of diagnosis codes, procedure
codes and drugs (ATC level-3 classes) plus admission profile fields. A `Sample` names one visit of
one patient to predict: its diagnoses and procedures are inputs, its drugs the multi-label target,
and every earlier visit is history (docs/evaluation.md#the-task).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

CODE_TYPES = ("diagnosis", "procedure", "drug")
Protocol = Literal["last", "every"]
PROTOCOLS: tuple[str, ...] = ("last", "every")


@dataclass(frozen=True)
class Visit:
    """One hospital admission. Codes are string tokens (MIMIC-IV keeps the ICD version: `9:4019`).

    `tags` name the generating mechanisms that shaped this visit's drugs (synthetic cohorts only, see
    datasets/synthetic/README.md: "interaction", "carry_over", "escalation", "avoidance"); they become
    evaluation groups and are never a model input."""

    admission_id: int
    diagnoses: tuple[str, ...]
    procedures: tuple[str, ...]
    drugs: tuple[str, ...]
    profile: Mapping[str, str] = field(default_factory=dict, hash=False)
    tags: frozenset[str] = frozenset()

    def codes(self, code_type: str) -> tuple[str, ...]:
        """The visit's codes of one type: "diagnosis", "procedure" or "drug"."""
        return {"diagnosis": self.diagnoses, "procedure": self.procedures, "drug": self.drugs}[code_type]


@dataclass(frozen=True)
class Patient:
    """A patient's visits in time order (oldest first)."""

    id: int
    visits: tuple[Visit, ...]


@dataclass(frozen=True)
class Sample:
    """Predict the drugs of `patient.visits[index]` from its codes and the visits before it."""

    patient: Patient
    index: int

    @property
    def current(self) -> Visit:
        return self.patient.visits[self.index]

    @property
    def history(self) -> tuple[Visit, ...]:
        return self.patient.visits[: self.index]

    @property
    def is_single_visit(self) -> bool:
        """True when the patient has no earlier visit (LEADER's "single-visit" group)."""
        return self.index == 0


class Vocab:
    """An ordered code vocabulary: token <-> column index."""

    def __init__(self, tokens: Iterable[str]):
        self.tokens: tuple[str, ...] = tuple(tokens)
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Indices of the known tokens (unknown ones are skipped)."""
        return [self.index[t] for t in tokens if t in self.index]

    def multi_hot(self, token_sets: Sequence[Iterable[str]]) -> np.ndarray:
        """float32 [len(token_sets), len(self)] with 1 where a set holds the token."""
        out = np.zeros((len(token_sets), len(self)), dtype=np.float32)
        for row, tokens in enumerate(token_sets):
            out[row, self.encode(tokens)] = 1.0
        return out


@dataclass(frozen=True)
class DatasetBundle:
    """A prepared dataset: everything a model may read, plus a content hash.

    `titles[code_type][code]` is a human-readable name (ICD titles; lower-case ATC3 names for drugs).
    `ddi_pairs` are unordered ATC3 pairs; `smiles[atc3]` lists molecules of representative drugs.
    `meta` records where the data came from and the preprocessing parameters. `generator` is the
    generator's own view of a generated cohort (version 2 of the synthetic cohort: its prescribing
    probabilities, read only by the `oracle` model); None for real data. Not part of the hash.
    `ddi_nodes`: the drug classes of the vocabulary that the DDI graph knows, with or without a pair
    (bench.prep.ddi_nodes); None: every class (a generated cohort's own graph covers its classes).
    """

    name: str
    patients: tuple[Patient, ...]
    vocabs: Mapping[str, Vocab]
    titles: Mapping[str, Mapping[str, str]]
    ddi_pairs: tuple[tuple[str, str], ...]
    smiles: Mapping[str, tuple[str, ...]]
    profile_fields: tuple[str, ...]
    meta: Mapping[str, object] = field(default_factory=dict)
    generator: Any = field(default=None, compare=False, repr=False)
    ddi_nodes: frozenset[str] | None = None

    @property
    def drug_vocab(self) -> Vocab:
        return self.vocabs["drug"]

    @property
    def hash(self) -> str:
        """sha256 (first 16 hex digits) of the bundle's content, independent of `meta`."""
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = content_hash(self)
            object.__setattr__(self, "_hash", cached)
        return cached

    def ddi_matrix(self) -> np.ndarray:
        """bool [n_drugs, n_drugs], symmetric, False diagonal; pairs outside the vocabulary are ignored."""
        vocab = self.drug_vocab
        adj = np.zeros((len(vocab), len(vocab)), dtype=bool)
        for a, b in self.ddi_pairs:
            if a in vocab and b in vocab and a != b:
                adj[vocab.index[a], vocab.index[b]] = adj[vocab.index[b], vocab.index[a]] = True
        return adj

    def ddi_known(self) -> np.ndarray:
        """bool [n_drugs]: the drugs the DDI graph knows (`ddi_nodes`; every drug when it is None), the
        drugs whose pairs a DDI rate can judge."""
        tokens = self.drug_vocab.tokens
        if self.ddi_nodes is None:
            return np.ones(len(tokens), dtype=bool)
        return np.array([t in self.ddi_nodes for t in tokens], dtype=bool)


def content_hash(bundle: DatasetBundle) -> str:
    """Stable hash over patients, vocabularies, titles, DDI pairs (and nodes), SMILES and profile fields."""
    digest = hashlib.sha256()
    for patient in bundle.patients:
        for visit in patient.visits:
            record = [patient.id, visit.admission_id, visit.diagnoses, visit.procedures, visit.drugs,
                      sorted(visit.profile.items())]
            if visit.tags:  # untagged data (MIMIC, synthetic-v1) keeps the hash it always had
                record.append(sorted(visit.tags))
            digest.update(json.dumps(record, separators=(",", ":")).encode())
    rest = {
        "vocabs": {k: list(v.tokens) for k, v in sorted(bundle.vocabs.items())},
        "titles": {k: dict(sorted(v.items())) for k, v in sorted(bundle.titles.items())},
        "ddi": sorted(sorted(p) for p in bundle.ddi_pairs),
        "smiles": {k: list(v) for k, v in sorted(bundle.smiles.items())},
        "profile_fields": list(bundle.profile_fields),
    }
    if bundle.ddi_nodes is not None:   # bundles without a node set (the generated cohorts) keep their hash
        rest["ddi_nodes"] = sorted(bundle.ddi_nodes)
    digest.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()[:16]


def group_visits(rows: Iterable[tuple[int, Visit]]) -> list[Patient]:
    """Patients from (patient id, visit) rows that are already sorted by patient, then time."""
    return [Patient(pid, tuple(v for _, v in group)) for pid, group in itertools.groupby(rows, key=lambda r: r[0])]


def build_vocabs(patients: Iterable[Patient]) -> dict[str, Vocab]:
    """Sorted vocabularies of every code type seen in the patients' visits."""
    seen: dict[str, set[str]] = {t: set() for t in CODE_TYPES}
    for patient in patients:
        for visit in patient.visits:
            for code_type in CODE_TYPES:
                seen[code_type].update(visit.codes(code_type))
    return {t: Vocab(sorted(codes)) for t, codes in seen.items()}


def make_samples(patients: Iterable[Patient], protocol: str = "last") -> list[Sample]:
    """Samples to predict. `last`: one per patient, its last visit (LEADER).
    `every`: every visit of every patient, each with its own history (GAMENet/SafeDrug)."""
    if protocol == "last":
        return [Sample(p, len(p.visits) - 1) for p in patients if p.visits]
    if protocol == "every":
        return [Sample(p, i) for p in patients for i in range(len(p.visits))]
    raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")


def target_matrix(samples: Sequence[Sample], drug_vocab: Vocab) -> np.ndarray:
    """bool [n_samples, n_drugs]: the current visit's drugs of each sample."""
    return drug_vocab.multi_hot([s.current.drugs for s in samples]).astype(bool)
