"""The one interface every recommender implements, and what the runner hands it.

Shapes: `predict_proba(samples)` returns float32 [len(samples), n_drugs] in [0, 1], rows aligned
with `samples`, columns with `resources.vocabs["drug"]`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from bench.data import Sample, Vocab
from bench.progress import Progress

NEEDS = frozenset({"ddi", "smiles", "text", "teacher", "ehr_graph"})


@runtime_checkable
class TeacherSource(Protocol):
    """A trained teacher as a student reads it (LEADER's offline distillation, arXiv 2402.02803):
    `features(samples)` float32 [len(samples), hidden_size], rows aligned with `samples` (LEADER(T)'s
    last-token hidden state). Optional `describe() -> dict` says which teacher it is, for run.json."""

    @property
    def hidden_size(self) -> int: ...

    def features(self, samples: Sequence[Sample]) -> np.ndarray: ...


@dataclass(frozen=True)
class Resources:
    """What a model may read besides samples. Optional parts are built only when a model `needs` them.

    vocabs: "diagnosis", "procedure", "drug" code vocabularies.
    ddi_adj: bool [n_drugs, n_drugs] ("ddi").  smiles: atc3 -> SMILES ("smiles").
    titles: code type -> code -> name ("text").  ehr_graph: float32 [n_drugs, n_drugs]
    co-prescription counts from the TRAINING split only ("ehr_graph").  teacher: a trained teacher's
    features ("teacher"; provided by `bench run` through the model's `teacher_provider`, None when
    built by `build_resources` alone).
    """

    vocabs: Mapping[str, Vocab]
    profile_fields: tuple[str, ...] = ()
    ddi_adj: np.ndarray | None = None
    smiles: Mapping[str, tuple[str, ...]] | None = None
    titles: Mapping[str, Mapping[str, str]] | None = None
    ehr_graph: np.ndarray | None = None
    teacher: TeacherSource | None = None

    @property
    def n_drugs(self) -> int:
        return len(self.vocabs["drug"])


@dataclass
class FitReport:
    """What training did: epochs run, the best validation score and a per-epoch history."""

    epochs: int = 0
    best_epoch: int | None = None
    best_valid_prauc: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Recommender(Protocol):
    name: ClassVar[str]
    needs: ClassVar[frozenset[str]]

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int,
            progress: Progress) -> FitReport: ...

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path, resources: Resources) -> Self: ...

    def n_params(self) -> int: ...


@runtime_checkable
class InputCache(Protocol):
    """A model that keeps per-sample input encodings across `predict_proba` calls (e.g. each visit's
    code indices, keyed by the visit). `clear_input_cache()` forgets them; the timing clears them
    before every timed call, so a timed call pays for building its inputs (bench.timing)."""

    def clear_input_cache(self) -> None: ...


def clear_input_cache(model: object) -> bool:
    """Clear `model`'s per-sample input encodings when it keeps any (`InputCache`); True if it does."""
    if isinstance(model, InputCache):
        model.clear_input_cache()
        return True
    return False


def is_hard(model: object) -> bool:
    """True for models whose `predict_proba` returns 0/1 decisions rather than scores (a generating
    LLM): PRAUC is then undefined and reported as null."""
    return bool(getattr(model, "hard_predictions", False))


def prediction_notes(model: object) -> dict[str, Any]:
    """What a model reports about its latest `predict_proba` call (e.g. the plain LLM's
    out-of-corpus rate); {} for most models."""
    notes = getattr(model, "prediction_notes", None)
    return dict(notes()) if callable(notes) else {}
