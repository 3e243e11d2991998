"""Training checkpoints of a run, so that an interrupted `bench run` continues where it stopped.

The runner gives a model that can resume (bench.protocol.Resumable) a folder derived from the run:

    cache_root(cache_dir) / "checkpoints" / "<model>-<16 hex>"

keyed by a sha256 of what makes two runs the same training: the model and its full config, the
dataset hash, the training seed, the split (scheme, ratios, split seed), the evaluation and training
protocols. A restarted identical `bench run` finds the same folder; the runner deletes it once the
run is written. The code version is not in the key: a checkpoint written by other code is resumed
as it is (delete the folder to start over).

Inside, each checkpoint is a folder `step-<8 digits>` holding `tensors.safetensors` (named arrays)
and `state.json`, written as a temporary folder then renamed (bench.tempfiles), so a reader sees
whole checkpoints only; older ones are removed after a newer one is in place. Never pickle.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.prep.bundle_store import cache_root
from bench.tempfiles import make_temp_dir, remove_stale

FOLDER = "checkpoints"
TENSORS, STATE = "tensors.safetensors", "state.json"
PREFIX = "step-"


def checkpoint_folder(cache_dir: Path | None, model: str, key_inputs: dict[str, Any]) -> Path:
    """The run's checkpoint folder (not created): `<cache>/checkpoints/<model>-<sha256[:16]>`."""
    digest = hashlib.sha256(json.dumps(key_inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_root(cache_dir) / FOLDER / f"{model}-{digest}"


@dataclass
class Checkpoint:
    """One saved checkpoint: its step, named arrays and JSON state."""

    step: int
    tensors: dict[str, np.ndarray]
    state: dict[str, Any]


def save_checkpoint(folder: Path, step: int, tensors: dict[str, np.ndarray], state: dict[str, Any]) -> Path:
    """Write `step-<step>` atomically in `folder` and remove the older ones; returns its path."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    name = f"{PREFIX}{step:08d}"
    remove_stale(folder)
    tmp = make_temp_dir(folder, name)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp / TENSORS))
        (tmp / STATE).write_text(json.dumps(state, indent=1) + "\n")
        target = folder / name
        if target.exists():  # the same step saved again (e.g. the final one): replace it
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in _complete(folder):
        if old.name < name:
            shutil.rmtree(old, ignore_errors=True)
    return folder / name


def latest_checkpoint(folder: Path | None) -> Checkpoint | None:
    """The newest readable checkpoint in `folder`, or None (no folder, none saved, or unreadable)."""
    from safetensors.numpy import load_file

    if folder is None or not folder.is_dir():
        return None
    for path in sorted(_complete(folder), reverse=True):
        try:
            state = json.loads((path / STATE).read_text())
            tensors = load_file(str(path / TENSORS))
        except Exception:  # truncated or foreign files: try an older one
            continue
        return Checkpoint(int(path.name.removeprefix(PREFIX)), tensors, state)
    return None


def remove_checkpoints(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _complete(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
