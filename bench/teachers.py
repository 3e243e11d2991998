"""Finding a stored teacher run for a student (bench.protocol.TeacherSpec): the runner's teacher step
(bench.runner.resolve_teacher) and any verb that reads a teacher run.

A teacher run can teach a student only when it was trained on the same dataset build (content hash)
with the same split scheme, ratios and split seed (else its training patients differ, and it may have
trained on the student's test patients), and kept its weights (model/config.json). The latest-compatible
search also asks for the same training seed (the teacher of a student trained with seed s is the
teacher run of seed s, so a seed group's students each have their own teacher); a teacher run named
with `teacher_run` may have another training seed, so that students of several seeds can learn from
one teacher (when a teacher costs an hour, as LEADER's does on CPU: the students' seeds then vary the
student alone, and the teacher's seed is recorded in each student's run.json). A run.json written before `split_seed` existed split its
patients with its `seed` (bench.seed_groups.split_seed_of). The committed
reference runs in results/reference/ are never searched (they hold no weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.results import read_run
from bench.seed_groups import split_seed_of


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
             ratios: str, split_seed: int | None = None, *, same_seed: bool = True) -> str | None:
    """Why a run of `record` cannot teach this student (None when it can); `split_seed` None: the
    student's split seed is its `seed` (as before split seeds existed). `same_seed` False: another
    training seed is allowed (the split must still be the student's)."""
    if record.get("model", {}).get("name") != model:
        return f"it is a {record.get('model', {}).get('name')!r} run, not {model}"
    theirs = record.get("dataset", {}).get("hash")
    if theirs != dataset_hash:
        return f"it was trained on dataset hash {theirs}, this dataset has hash {dataset_hash}"
    their_split = record.get("split", {})
    split_seed = seed if split_seed is None else split_seed
    theirs_split_seed = split_seed_of(record) if "seed" in record else None
    if ((theirs_split_seed, their_split.get("scheme"), their_split.get("ratios"))
            != (split_seed, split, ratios)):
        return (f"it used split {their_split.get('scheme')} {their_split.get('ratios')} with split seed "
                f"{theirs_split_seed} and this run split {split} {ratios} with split seed {split_seed}, so its "
                "training patients differ")
    if same_seed and record.get("seed") != seed:
        return f"it was trained with seed {record.get('seed')} and this run with seed {seed}"
    return None


def find_teacher_run(results_dir: Path, model: str, dataset: str, dataset_hash: str, *, seed: int,
                     split_seed: int | None = None, split: str = "random", ratios: str = "8:1:1",
                     teacher_run: str = "", train_protocol: str | None = None) -> Path | None:
    """The run folder of `model` to use as a teacher: `teacher_run` (a folder, or a run id under
    results_dir/dataset/model; UserError when it does not exist or does not fit), else the latest
    compatible run (None when there is none). `split_seed` None: the same as `seed`. `train_protocol`
    (the student's): the latest-compatible search skips runs trained under another one (runs from
    before run.json recorded it count as `every`); a named `teacher_run` is used whatever its protocol
    and training seed."""
    runs = results_dir / dataset / model
    if teacher_run:
        folder = Path(teacher_run).expanduser()
        if not (folder / "run.json").is_file():
            folder = runs / teacher_run
        record = read_record(folder, strict=True)
        if record is None:
            raise UserError(f"teacher_run {teacher_run!r}: neither a run folder nor a run id under {runs}")
        why = mismatch(record, model, dataset_hash, seed, split, ratios, split_seed, same_seed=False)
        if why is None and not (folder / "model" / "config.json").is_file():
            why = "it has no saved model (model/config.json)"
        if why:
            raise UserError(f"teacher_run {teacher_run!r} cannot be used: {why}")
        return folder
    best: tuple[str, Path] | None = None
    for path in sorted(runs.glob("*/run.json")):
        record = read_record(path.parent)
        if (record is None or mismatch(record, model, dataset_hash, seed, split, ratios, split_seed)
                or not (path.parent / "model" / "config.json").is_file()
                or (train_protocol is not None and record.get("train_protocol", "every") != train_protocol)):
            continue
        if best is None or record.get("created_at", "") > best[0]:
            best = (record.get("created_at", ""), path.parent)
    return None if best is None else best[1]
