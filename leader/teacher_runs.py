"""Where `leader-student`'s teacher comes from (LEADER, arXiv 2402.02803: offline distillation from
LEADER(T)'s cached hidden states).

`leader-student` declares `teacher = TeacherSpec("leader-teacher")`; its `teacher_request(config)`
(None when alpha = 0) carries `--set teacher_run=RUN` and the `teacher_set` options. `bench run`
resolves it in its own announced step (bench.runner.resolve_teacher, bench.teachers):
1. `teacher_run` (a run folder, or a run id under results/<dataset>/leader-teacher/): that run;
   refused (one-line UserError) when it is not a leader-teacher run with a saved model, when its
   dataset hash differs from this dataset's, or when it used another split scheme, ratios or split seed
   (its training patients would differ: the teacher may have trained on the student's test patients)
   or another training seed;
2. else the latest compatible leader-teacher run (same dataset, dataset hash, seed, split, split seed, ratios)
   in the results folder (the user's runs: the committed reference runs in results/reference/ are
   never searched, and hold no weights);
3. else a leader-teacher run is trained first, as an explicit step of the runner (with the student's
   `teacher_set` options), and used.
The chosen run is opened by `load_teacher_run` (the class's `open_teacher`). The teacher's features come from `leader.feature_cache.teacher_features` (on disk, keyed by the
teacher's weights, the dataset hash, the prompt version and the sample ids), so repeated student
runs never recompute them. The student's run.json records the teacher used (fit.notes.distillation).

Without the runner (`Resources.teacher` is None, e.g. the conformance test), the student may train a
small teacher in process from `teacher_set` (`train_in_process_teacher`): not stored, not cached.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import teachers
from bench.data import DatasetBundle, Sample
from bench.errors import UserError
from bench.progress import Progress
from bench.protocol import Resources

TEACHER_MODEL = "leader-teacher"


def parse_teacher_set(text: str) -> dict[str, str]:
    """"base_model=tiny-llama,steps=3" -> {"base_model": "tiny-llama", "steps": "3"}; a piece without
    "=" continues the previous value ("lora_targets=q_proj,v_proj,steps=3" keeps both targets)."""
    out: dict[str, str] = {}
    key = None
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        name, sep, value = piece.partition("=")
        if sep and name.strip():
            key = name.strip()
            out[key] = value.strip()
        elif key is not None:
            out[key] += "," + piece
        else:
            raise UserError(f"teacher_set expects key=value pieces separated by commas, got {text!r}")
    return out


class CachedTeacher:
    """`Resources.teacher` backed by a stored leader-teacher run: `hidden_size`, `features(samples)`
    -> float32 [n, hidden] through the on-disk feature cache, `describe()` for the run record."""

    def __init__(self, teacher, dataset_hash: str, record: dict[str, Any], folder: Path, how: str,
                 cache_dir: Path | None = None, progress: Progress | None = None):
        self.teacher, self.dataset_hash, self.cache_dir, self.progress = teacher, dataset_hash, cache_dir, progress
        self.info = {"run_id": record.get("run_id"), "path": str(folder), "how": how, "seed": record.get("seed"),
                     "base_model": teacher.config.base_model, "dataset_hash": dataset_hash}
        self.feature_seconds = 0.0

    @property
    def hidden_size(self) -> int:
        return int(self.teacher.hidden_size)

    def features(self, samples: Sequence[Sample]) -> np.ndarray:
        from leader.feature_cache import teacher_features

        start = time.perf_counter()
        out = teacher_features(self.teacher, samples, self.dataset_hash, self.cache_dir, self.progress)
        self.feature_seconds += time.perf_counter() - start
        return out

    def describe(self) -> dict[str, Any]:
        return {**self.info, "feature_seconds": round(self.feature_seconds, 3)}


class InProcessTeacher:
    """A teacher trained inside the student's `fit` (no runner): features computed directly."""

    def __init__(self, teacher, options: dict[str, str]):
        self.teacher, self.options = teacher, options

    @property
    def hidden_size(self) -> int:
        return int(self.teacher.hidden_size)

    def features(self, samples: Sequence[Sample]) -> np.ndarray:
        return self.teacher.hidden_features(samples)

    def describe(self) -> dict[str, Any]:
        return {"how": "in-process", "options": dict(self.options)}


def train_in_process_teacher(resources: Resources, train: Sequence[Sample], teacher_set: str, *, seed: int,
                             progress: Progress) -> InProcessTeacher:
    """A leader-teacher with `teacher_set`'s options, fitted on `train` (needs resources.titles)."""
    from leader.teacher import LeaderTeacher

    if resources.titles is None:
        raise UserError("an in-process teacher needs code titles (resources built with 'text')")
    options = parse_teacher_set(teacher_set)
    teacher = LeaderTeacher.from_options(options, resources)
    teacher.fit(train, [], seed=seed, progress=progress)
    return InProcessTeacher(teacher, options)


# --- a stored teacher run ----------------------------------------------------------------------

def find_teacher_run(results_dir: Path, dataset: str, dataset_hash: str, *, seed: int, split_seed: int | None = None,
                     split: str = "random", ratios: str = "8:1:1", teacher_run: str = "",
                     train_protocol: str | None = None) -> Path | None:
    """The leader-teacher run folder to use (bench.teachers.find_teacher_run for `TEACHER_MODEL`)."""
    return teachers.find_teacher_run(results_dir, TEACHER_MODEL, dataset, dataset_hash, seed=seed,
                                     split_seed=split_seed, split=split, ratios=ratios, teacher_run=teacher_run,
                                     train_protocol=train_protocol)


def load_teacher_run(folder: Path, bundle: DatasetBundle, how: str, cache_dir: Path | None = None,
                     progress: Progress | None = None) -> CachedTeacher:
    """The stored teacher of a run folder, wrapped as a `Resources.teacher`."""
    from bench.loading import build_resources
    from leader.teacher import LeaderTeacher

    teacher = LeaderTeacher.load(folder / "model", build_resources(bundle, (), frozenset({"text"})))
    return CachedTeacher(teacher, bundle.hash, teachers.read_record(folder) or {}, folder, how, cache_dir, progress)
