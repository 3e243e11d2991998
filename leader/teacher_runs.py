"""Where `leader-student`'s teacher comes from (LEADER, arXiv 2402.02803: offline distillation from
LEADER(T)'s cached hidden states).

`bench run --model leader-student` asks `provide_teacher` (the class's `teacher_provider`) for
`Resources.teacher`, before the student is built:
1. `--set teacher_run=RUN` (a run folder, or a run id under results/<dataset>/leader-teacher/): that
   run; refused (one-line UserError) when it is not a leader-teacher run with a saved model, when its
   dataset hash differs from this dataset's, or when it used another seed, split scheme or ratios
   (its training patients would differ: the teacher may have trained on the student's test patients);
2. else the latest compatible leader-teacher run (same dataset, dataset hash, seed, split, ratios)
   in the results folder (the user's runs: the committed reference runs in results/reference/ are
   never searched, and hold no weights);
3. else a leader-teacher run is trained first through the same runner (with the student's
   `teacher_set` options) and used.
The teacher's features come from `leader.feature_cache.teacher_features` (on disk, keyed by the
teacher's weights, the dataset hash, the prompt version and the sample ids), so repeated student
runs never recompute them. The student's run.json records the teacher used (fit.notes.distillation).

Without the runner (`Resources.teacher` is None, e.g. the conformance test), the student may train a
small teacher in process from `teacher_set` (`train_in_process_teacher`): not stored, not cached.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import apply_overrides
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
        self.info = {"run_id": record.get("run_id"), "path": str(folder), "how": how,
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


# --- finding a stored teacher run ----------------------------------------------------------------

def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "run.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def mismatch(record: dict[str, Any], dataset_hash: str, seed: int, split: str, ratios: str) -> str | None:
    """Why a teacher run cannot teach this student (None when it can)."""
    if record.get("model", {}).get("name") != TEACHER_MODEL:
        return f"it is a {record.get('model', {}).get('name')!r} run, not {TEACHER_MODEL}"
    theirs = record.get("dataset", {}).get("hash")
    if theirs != dataset_hash:
        return f"it was trained on dataset hash {theirs}, this dataset has hash {dataset_hash}"
    their_split = record.get("split", {})
    if (record.get("seed"), their_split.get("scheme"), their_split.get("ratios")) != (seed, split, ratios):
        return (f"it used seed {record.get('seed')}, split {their_split.get('scheme')} {their_split.get('ratios')} "
                f"and this run seed {seed}, split {split} {ratios}, so its training patients differ")
    return None


def find_teacher_run(results_dir: Path, dataset: str, dataset_hash: str, *, seed: int, split: str = "random",
                     ratios: str = "8:1:1", teacher_run: str = "") -> Path | None:
    """The teacher run folder to use: `teacher_run` (a folder or a run id; UserError when it does not
    exist or does not fit), else the latest compatible run (None when there is none)."""
    runs = results_dir / dataset / TEACHER_MODEL
    if teacher_run:
        folder = Path(teacher_run).expanduser()
        if not (folder / "run.json").is_file():
            folder = runs / teacher_run
        record = _read_record(folder)
        if record is None:
            raise UserError(f"teacher_run {teacher_run!r}: neither a run folder nor a run id under {runs}")
        why = mismatch(record, dataset_hash, seed, split, ratios)
        if why is None and not (folder / "model" / "config.json").is_file():
            why = "it has no saved model (model/config.json)"
        if why:
            raise UserError(f"teacher_run {teacher_run!r} cannot be used: {why}")
        return folder
    best: tuple[str, Path] | None = None
    for path in sorted(runs.glob("*/run.json")):
        record = _read_record(path.parent)
        if (record is None or mismatch(record, dataset_hash, seed, split, ratios)
                or not (path.parent / "model" / "config.json").is_file()):
            continue
        if best is None or record.get("created_at", "") > best[0]:
            best = (record.get("created_at", ""), path.parent)
    return None if best is None else best[1]


def load_teacher_run(folder: Path, bundle: DatasetBundle, how: str, cache_dir: Path | None = None,
                     progress: Progress | None = None) -> CachedTeacher:
    """The stored teacher of a run folder, wrapped as a `Resources.teacher`."""
    from bench.loading import build_resources
    from leader.teacher import LeaderTeacher

    teacher = LeaderTeacher.load(folder / "model", build_resources(bundle, (), frozenset({"text"})))
    return CachedTeacher(teacher, bundle.hash, _read_record(folder) or {}, folder, how, cache_dir, progress)


def provide_teacher(options, bundle: DatasetBundle, progress: Progress) -> CachedTeacher | None:
    """`Resources.teacher` for a `bench run` of a distilling student (`options`: bench.runner.RunOptions);
    None when the student does not distil (alpha = 0)."""
    from bench.registry import model_class
    from bench.runner import run
    from leader.teacher import TeacherConfig

    config = apply_overrides(model_class(options.model).Config, options.overrides, owner=f"model {options.model}")
    if getattr(config, "alpha", 0.0) == 0:
        return None
    teacher_options = parse_teacher_set(config.teacher_set)
    apply_overrides(TeacherConfig, teacher_options, owner=f"teacher_set of {options.model}")   # fail early
    folder = find_teacher_run(options.results_dir, options.dataset, bundle.hash, seed=options.seed,
                              split=options.split, ratios=options.ratios, teacher_run=config.teacher_run)
    how = "explicit" if config.teacher_run else "latest"
    if folder is None:
        print(f"no teacher run for {options.dataset}: training {TEACHER_MODEL} first", file=sys.stderr, flush=True)
        _, folder = run(replace(options, model=TEACHER_MODEL, overrides=teacher_options, save_model=True), progress)
        how = "trained"
    return load_teacher_run(folder, bundle, how, options.cache_dir, progress)
