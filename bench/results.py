"""The results store: `results/<dataset>/<model>/<run_id>/` holds run.json, predictions and the model;
the committed reference runs live apart, in `results/reference/<dataset>/...` (bench.analysis.reference).

`bench compare` reads these files and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from bench.errors import UserError
from bench.file_versions import version_problem
from bench.io import atomic_path, atomic_write_text
from bench.run_record import SCHEMA_VERSION, LoadedRun, RunRecord
from bench.tempfiles import STALE_AFTER

RUN_FILE = "run.json"
PREDICTIONS_FILE = "predictions.safetensors"
REFERENCE_FOLDER = "reference"   # results/reference/: the committed reference runs (bench.analysis.reference)


def run_dir(results_dir: Path, dataset: str, model: str, run_id: str) -> Path:
    return results_dir / dataset / model / run_id


def json_safe(value: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) by None, recursively; numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_run(folder: Path, record: RunRecord | dict[str, Any]) -> Path:
    """Write run.json atomically; returns its path."""
    path = folder / RUN_FILE
    atomic_write_text(path, json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n")
    return path


@dataclass(frozen=True)
class Predictions:
    """scores float32 [n, n_drugs] (None for hard-prediction models), predicted bool [n, n_drugs] at the
    run's threshold, target bool [n, n_drugs], patient_id / visit_index int64 [n], drug column names,
    and ddi_adj bool [n_drugs, n_drugs] (symmetric, False diagonal, columns = `drugs`): the DDI graph the
    run's DDI rates were computed with, so `bench compare --vs` needs nothing but this file (None in files
    written before the graph was stored). `groups`: name -> bool mask [n] of every evaluation group the
    run's metrics hold (bench.groups), so re-scoring needs no dataset (None in files written before the
    masks were stored). `ddi_known`: bool [n_drugs], the drugs the DDI graph knows (the run's DDI coverage;
    None in files written before it was stored)."""

    target: np.ndarray
    predicted: np.ndarray
    scores: np.ndarray | None
    patient_id: np.ndarray
    visit_index: np.ndarray
    drugs: tuple[str, ...]
    ddi_adj: np.ndarray | None = None
    groups: Mapping[str, np.ndarray] | None = None
    ddi_known: np.ndarray | None = None


# the group masks are one uint8 tensor [n_groups, n]; its rows' names are in the metadata, in order
GROUPS_TENSOR = "groups"


def write_predictions(folder: Path, predictions: Predictions) -> None:
    arrays = {"target": predictions.target.astype(np.uint8), "predicted": predictions.predicted.astype(np.uint8),
              "patient_id": predictions.patient_id.astype(np.int64),
              "visit_index": predictions.visit_index.astype(np.int64)}
    if predictions.scores is not None:
        arrays["scores"] = predictions.scores.astype(np.float32)
    if predictions.ddi_adj is not None:
        arrays["ddi_adj"] = _checked_ddi_adj(predictions.ddi_adj, len(predictions.drugs)).astype(np.uint8)
    if predictions.ddi_known is not None:
        arrays["ddi_known"] = _checked_known(predictions.ddi_known, len(predictions.drugs)).astype(np.uint8)
    metadata = {"drugs": json.dumps(list(predictions.drugs))}
    if predictions.groups is not None:
        names, n = list(predictions.groups), len(predictions.target)
        masks = np.array([predictions.groups[name] for name in names]) if names else np.zeros((0, n), bool)
        arrays[GROUPS_TENSOR] = _checked_groups(masks, n).astype(np.uint8)
        metadata[GROUPS_TENSOR] = json.dumps(names)
    with atomic_path(folder / PREDICTIONS_FILE) as tmp:
        save_file(arrays, str(tmp), metadata=metadata)


def read_predictions(folder: Path) -> Predictions:
    """A run folder's predictions.safetensors; a missing or malformed file is a UserError naming it."""
    from safetensors import SafetensorError, safe_open

    path = folder / PREDICTIONS_FILE
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata()
        drugs = tuple(json.loads(metadata["drugs"]))
        arrays = load_file(str(path))
        ddi_adj, known = arrays.get("ddi_adj"), arrays.get("ddi_known")
        target = arrays["target"].astype(bool)
        return Predictions(target=target, predicted=arrays["predicted"].astype(bool),
                           scores=arrays.get("scores"), patient_id=arrays["patient_id"],
                           visit_index=arrays["visit_index"], drugs=drugs,
                           ddi_adj=None if ddi_adj is None else _checked_ddi_adj(ddi_adj, len(drugs)),
                           groups=_read_groups(arrays, metadata, len(target)),
                           ddi_known=None if known is None else _checked_known(known, len(drugs)))
    except (OSError, KeyError, TypeError, ValueError, SafetensorError) as exc:
        raise UserError(f"{path}: cannot read the run's predictions ({exc})") from None


def _checked_ddi_adj(adj: np.ndarray, n_drugs: int) -> np.ndarray:
    """`adj` as bool [n_drugs, n_drugs]; ValueError unless it is 0/1, symmetric, with a False diagonal."""
    adj = np.asarray(adj)
    if adj.shape != (n_drugs, n_drugs):
        raise ValueError(f"ddi_adj has shape {adj.shape}, expected ({n_drugs}, {n_drugs}) for the drug columns")
    if not np.isin(adj, (0, 1)).all():
        raise ValueError("ddi_adj must hold only 0/1 values")
    adj = adj.astype(bool)
    if (adj != adj.T).any() or adj.diagonal().any():
        raise ValueError("ddi_adj must be symmetric with a False diagonal")
    return adj


def _checked_known(known: np.ndarray, n_drugs: int) -> np.ndarray:
    """`known` as bool [n_drugs]; ValueError unless it has that shape and only 0/1 values."""
    known = np.asarray(known)
    if known.shape != (n_drugs,) or not np.isin(known, (0, 1)).all():
        raise ValueError(f"ddi_known must be 0/1 of shape ({n_drugs},) for the drug columns, got shape {known.shape}")
    return known.astype(bool)


def _checked_groups(masks: np.ndarray, n: int) -> np.ndarray:
    """`masks` as bool [n_groups, n]; ValueError unless it has that shape and only 0/1 values."""
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.shape[1] != n:
        raise ValueError(f"groups has shape {masks.shape}, expected (n_groups, {n}) for the {n} test samples")
    if not np.isin(masks, (0, 1)).all():
        raise ValueError("groups must hold only 0/1 values")
    return masks.astype(bool)


def _read_groups(arrays: dict[str, np.ndarray], metadata: dict[str, str], n: int) -> dict[str, np.ndarray] | None:
    """The stored group masks by name (None in files written before they were stored)."""
    if GROUPS_TENSOR not in arrays:
        return None
    names = json.loads(metadata[GROUPS_TENSOR])
    masks = _checked_groups(arrays[GROUPS_TENSOR], n)
    if not (isinstance(names, list) and all(isinstance(name, str) for name in names)
            and len(set(names)) == len(names) == len(masks)):
        raise ValueError(f"groups metadata names {len(masks)} distinct groups as a list, got {names!r}")
    return dict(zip(names, masks))


def read_run(path: Path) -> RunRecord:
    """One run.json; a file that is no JSON object, or whose schema_version this package cannot read
    (bench.file_versions), is a one-line UserError naming the file."""
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid run.json ({exc})") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: not a valid run.json (a JSON {type(record).__name__}, not an object)")
    problem = version_problem(record.get("schema_version"), SCHEMA_VERSION, "run.json")
    if problem:
        raise UserError(f"{path}: {problem}")
    return record


def read_runs(results_dir: Path) -> list[LoadedRun]:
    """Every run.json under `results_dir` (read_run; `_path` added: its folder), except the committed
    reference runs in its `reference/` folder (bench.analysis.reference reads those)."""
    runs = []
    for path in sorted(results_dir.glob(f"*/*/*/{RUN_FILE}")):
        if path.relative_to(results_dir).parts[0] == REFERENCE_FOLDER:
            continue
        runs.append(LoadedRun(**read_run(path), _path=str(path.parent)))
    return runs


def latest_runs(runs: list[dict[str, Any]], dataset: str | None = None) -> list[dict[str, Any]]:
    """The newest run per (dataset, model), sorted by dataset then model."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for record in runs:
        key = (record["dataset"]["name"], record["model"]["name"])
        if dataset is not None and key[0] != dataset:
            continue
        if key not in latest or record["created_at"] > latest[key]["created_at"]:
            latest[key] = record
    return [latest[k] for k in sorted(latest)]


def metrics_entry(result: dict[str, Any]) -> dict[str, Any]:
    """run.json's {metric: {mean, std, point}, n} from `metrics.evaluate`'s per-group result."""
    from bench.metrics import METRICS

    entry: dict[str, Any] = {name: {**result["metrics"][name], "point": result["point"][name]} for name in METRICS}
    entry["n"] = result["n"]
    return entry


@dataclass(frozen=True)
class RunFolder:
    """A folder `results/<dataset>/<model>/<run_id>/`; complete when its run.json exists (written last,
    so a run killed after its predictions leaves an incomplete folder). `idle_seconds`: since anything
    in it last changed."""

    dataset: str
    model: str
    run_id: str
    path: Path
    complete: bool
    idle_seconds: float

    @property
    def maybe_running(self) -> bool:
        """Incomplete but changed within STALE_AFTER seconds: a run may still be writing it."""
        return not self.complete and self.idle_seconds < STALE_AFTER


def _idle_seconds(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                newest = max(newest, os.stat(os.path.join(root, name), follow_symlinks=False).st_mtime)
            except OSError:
                continue
    return max(0.0, time.time() - newest)


RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")  # bench.runner.new_run_id


def run_folders(results_dir: Path) -> list[RunFolder]:
    """Every run folder under `results_dir`, sorted: those with a run.json, and those without one whose
    name is a run id (so no other folder is ever taken for an incomplete run). Hidden names (temporaries)
    and the committed reference runs in `reference/` are left out."""
    folders = []
    for path in sorted(results_dir.glob("*/*/*")):
        parts = path.relative_to(results_dir).parts
        if not path.is_dir() or parts[0] == REFERENCE_FOLDER or any(part.startswith(".") for part in parts):
            continue
        complete = (path / RUN_FILE).is_file()
        if complete or RUN_ID.fullmatch(path.name):
            # only an incomplete folder's age matters (RunFolder.maybe_running): complete ones are not walked
            folders.append(RunFolder(*parts, path=path, complete=complete,
                                     idle_seconds=0.0 if complete else _idle_seconds(path)))
    return folders


def remove_incomplete(folders: list[RunFolder]) -> tuple[list[RunFolder], list[RunFolder]]:
    """Delete the incomplete folders that no run may still be writing; returns (removed, kept)."""
    removed, kept = [], []
    for folder in folders:
        if folder.complete:
            continue
        if folder.maybe_running:
            kept.append(folder)
            continue
        shutil.rmtree(folder.path)
        removed.append(folder)
    return removed, kept
