"""The one interface every recommender implements, and what the runner hands it.

Shapes: `predict_proba(samples)` returns float32 [len(samples), n_drugs] in [0, 1], rows aligned
with `samples`, columns with `resources.vocabs["drug"]`.

What a model can offer (`Recommender`; defaults in bench.model_base.BaseRecommender):
  required   name, needs, Config (+ parse_config), fit, predict_proba, save, load, n_params
  optional   hard_predictions    0/1 decisions instead of scores (PRAUC then null)
             prediction_notes()  what the latest predict_proba call noticed, stored in run.json
             latency_samples     fewer batch-1 timing calls (an LLM takes seconds per call)
             teacher             the larger model it is a student of (`TeacherSpec`); with
                                 `teacher_request(config)` and `open_teacher(choice, ...)` the runner
                                 finds or first trains a teacher run (bench.runner.resolve_teacher)
             ablation            the rows of `bench ablate --model NAME` (`AblationStep`)
             clear_input_cache() forget per-sample input encodings before timing (`InputCache`)
             use_checkpoints()   resume an interrupted fit from checkpoints (`Resumable`)
             store_after_fit()   store outputs of the training samples that later runs read
                                 (`StoresAfterFit`: a teacher's features for its students)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from bench.data import DatasetBundle, Sample, Vocab
from bench.progress import Progress

NEEDS = frozenset({"ddi", "smiles", "text", "teacher", "ehr_graph", "generator"})


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
    features ("teacher"; opened by `bench run` from the teacher run it resolved, see `TeacherSpec`; None
    when built by `build_resources` alone).  generator: a generated cohort's own prescribing model
    ("generator"; `DatasetBundle.generator`, None for real data), the `oracle` model's only input.
    """

    vocabs: Mapping[str, Vocab]
    profile_fields: tuple[str, ...] = ()
    ddi_adj: np.ndarray | None = None
    smiles: Mapping[str, tuple[str, ...]] | None = None
    titles: Mapping[str, Mapping[str, str]] | None = None
    ehr_graph: np.ndarray | None = None
    teacher: TeacherSource | None = None
    generator: Any = None

    @property
    def n_drugs(self) -> int:
        return len(self.vocabs["drug"])


@dataclass
class FitReport:
    """What training did: epochs run, the best validation score, a per-epoch history and how fast it went.

    `train_samples`: training samples the updates went through (repeats counted; len(train) x epochs run
    for bench.training.fit_minibatch); `train_seconds` / `valid_seconds`: wall-clock seconds of the
    updates and of the validation passes during training. None where they do not apply (no training by
    updates, or no validation pass). `train_cpu_seconds`: the process's CPU seconds over the same updates
    (all its threads): unlike the wall clock, it barely grows when other work shares the machine, so
    with one torch thread it estimates the updates' time on an idle core."""

    epochs: int = 0
    best_epoch: int | None = None
    best_valid_prauc: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    train_samples: int | None = None
    train_seconds: float | None = None
    valid_seconds: float | None = None
    train_cpu_seconds: float | None = None

    def train_samples_per_s(self) -> float | None:
        """Training samples per second of update time (None without both, or with no time measured)."""
        if self.train_samples is None or not self.train_seconds:
            return None
        return self.train_samples / self.train_seconds

    def valid_time_share(self) -> float | None:
        """valid_seconds / (train_seconds + valid_seconds): the share of training time spent validating
        (None without both, or when neither took measurable time)."""
        if self.train_seconds is None or self.valid_seconds is None or self.train_seconds + self.valid_seconds <= 0:
            return None
        return self.valid_seconds / (self.train_seconds + self.valid_seconds)


@dataclass(frozen=True)
class AblationStep:
    """One row of `bench ablate --model NAME`: `model` trained with `overrides` (`--set` options) and
    labelled "<model> (<label>)"; a `reuse` row is not trained: the latest compatible run of `model` is
    shown instead."""

    label: str
    model: str
    overrides: Mapping[str, str] = field(default_factory=dict)
    reuse: bool = False


@dataclass(frozen=True)
class TeacherSpec:
    """The larger model a model is a student of (class attribute `teacher`).

    model: the teacher's registry name; its runs are looked up under results/<dataset>/<model>/.
    distils: True when the student reads the teacher's features in `fit` (needs "teacher"); False for a
    student trained without its teacher (still compared with it in the efficiency table)."""

    model: str
    distils: bool = True


@dataclass(frozen=True)
class TeacherRequest:
    """What one configured student asks of the runner (`teacher_request(config)`; None: no teacher).

    run: a teacher run folder or run id ("" = the latest compatible run, trained first when none).
    train_overrides: `--set` options of the teacher run trained when none is found."""

    run: str = ""
    train_overrides: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TeacherChoice:
    """The teacher run the runner resolved: its folder, and how it was found ("explicit": the run the
    student named; "latest": the latest compatible run; "trained": trained first, by this run)."""

    model: str
    run_folder: Path
    how: str

    @property
    def trained(self) -> bool:
        return self.how == "trained"


@runtime_checkable
class Recommender(Protocol):
    """Every model. The optional capabilities have defaults in bench.model_base.BaseRecommender."""

    name: ClassVar[str]                          # registry key
    needs: ClassVar[frozenset[str]]              # resources it reads, a subset of NEEDS
    Config: ClassVar[type]                       # its frozen config dataclass (`--set key=value` fields)
    hard_predictions: ClassVar[bool]             # predict_proba gives 0/1 decisions (default False)
    latency_samples: ClassVar[int | None]        # at most this many batch-1 timing calls (default None: all)
    teacher: ClassVar[TeacherSpec | None]        # the model it is a student of (default None)
    ablation: ClassVar[tuple[AblationStep, ...]] # `bench ablate` rows (default ())

    @classmethod
    def parse_config(cls, options: Mapping[str, str]) -> Any:
        """`Config` from `--set` options, type-checked (UserError naming a bad option)."""
        ...

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int,
            progress: Progress) -> FitReport: ...

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path, resources: Resources) -> Self: ...

    def n_params(self) -> int: ...

    def prediction_notes(self) -> dict[str, Any]:
        """What the latest `predict_proba` call noticed (e.g. an LLM's out-of-corpus rate), stored as
        run.json's `prediction_notes`; {} by default."""
        ...

    @classmethod
    def teacher_request(cls, config: Any) -> TeacherRequest | None:
        """The teacher run this configured model needs (None: it does not distil; the default)."""
        ...

    @classmethod
    def open_teacher(cls, choice: TeacherChoice, bundle: DatasetBundle, *, cache_dir: Path | None,
                     progress: Progress) -> TeacherSource:
        """The resolved teacher run as `Resources.teacher` (only called after `teacher_request`)."""
        ...


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


@runtime_checkable
class Resumable(Protocol):
    """A model whose `fit` writes checkpoints and resumes from the latest one. The runner calls
    `use_checkpoints(folder)` before `fit` with a folder derived from the run (bench.checkpoints) and
    deletes the folder once the run is written; a model never told a folder does not checkpoint."""

    def use_checkpoints(self, folder: Path) -> None: ...


@runtime_checkable
class StoresAfterFit(Protocol):
    """A model that, right after `fit` and while its in-memory caches are warm, stores outputs of its
    training samples that later runs read (a teacher: the features its distilling students read,
    through a feature cache). The runner calls it after `fit` in a process that writes the run, with
    the run's dataset hash and cache folder; the returned dict (empty when the model's config asks for
    nothing) goes into run.json `fit.notes["stored_after_fit"]`. Its seconds are not fit seconds."""

    def store_after_fit(self, train: Sequence[Sample], dataset_hash: str, cache_dir: Path | None,
                        progress: Progress) -> dict[str, Any]: ...
