"""Finding a stored teacher run for a student (bench.protocol.TeacherSpec): the runner's teacher step
(bench.runner.resolve_teacher) and any verb that reads a teacher run.

A teacher run can teach a student only when it was trained on the same dataset build (content hash)
with the same seed, split scheme and ratios (else its training patients differ, and it may have
trained on the student's test patients) and kept its weights (model/config.json). The committed
reference runs in results/reference/ are never searched (they hold no weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.results import read_run


def read_record(folder: Path, *, strict: bool = False) -> dict[str, Any] | None:
    """A run folder's run.json (bench.results.read_run: schema version checked), or None when it is
    missing, or unreadable and not `strict` (then read_run's one-line UserError)."""
    path = folder / "run.json"
    if not path.is_file():
        return None
    try:
        return dict(read_run(path))
    except (OSError, UserError):
        if strict:
            raise
        return None


def mismatch(record: dict[str, Any], model: str, dataset_hash: str, seed: int, split: str,
             ratios: str) -> str | None:
    """Why a run of `record` cannot teach this student (None when it can)."""
    if record.get("model", {}).get("name") != model:
        return f"it is a {record.get('model', {}).get('name')!r} run, not {model}"
    theirs = record.get("dataset", {}).get("hash")
    if theirs != dataset_hash:
        return f"it was trained on dataset hash {theirs}, this dataset has hash {dataset_hash}"
    their_split = record.get("split", {})
    if (record.get("seed"), their_split.get("scheme"), their_split.get("ratios")) != (seed, split, ratios):
        return (f"it used seed {record.get('seed')}, split {their_split.get('scheme')} {their_split.get('ratios')} "
                f"and this run seed {seed}, split {split} {ratios}, so its training patients differ")
    return None


def find_teacher_run(results_dir: Path, model: str, dataset: str, dataset_hash: str, *, seed: int,
                     split: str = "random", ratios: str = "8:1:1", teacher_run: str = "") -> Path | None:
    """The run folder of `model` to use as a teacher: `teacher_run` (a folder, or a run id under
    results_dir/dataset/model; UserError when it does not exist or does not fit), else the latest
    compatible run (None when there is none)."""
    runs = results_dir / dataset / model
    if teacher_run:
        folder = Path(teacher_run).expanduser()
        if not (folder / "run.json").is_file():
            folder = runs / teacher_run
        record = read_record(folder, strict=True)
        if record is None:
            raise UserError(f"teacher_run {teacher_run!r}: neither a run folder nor a run id under {runs}")
        why = mismatch(record, model, dataset_hash, seed, split, ratios)
        if why is None and not (folder / "model" / "config.json").is_file():
            why = "it has no saved model (model/config.json)"
        if why:
            raise UserError(f"teacher_run {teacher_run!r} cannot be used: {why}")
        return folder
    best: tuple[str, Path] | None = None
    for path in sorted(runs.glob("*/run.json")):
        record = read_record(path.parent)
        if (record is None or mismatch(record, model, dataset_hash, seed, split, ratios)
                or not (path.parent / "model" / "config.json").is_file()):
            continue
        if best is None or record.get("created_at", "") > best[0]:
            best = (record.get("created_at", ""), path.parent)
    return None if best is None else best[1]
