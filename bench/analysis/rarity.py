"""`bench rarity`: accuracy by how rare the current visit's diagnosis codes were in training.

A test visit's rarity is the training frequency of its rarest diagnosis code: the number of training
visits (every visit of the training patients, which is what every model trains on) that contain the
code; 0 = never seen in training (bench.groups; its "unseen_code" and "rare_code" evaluation groups,
stored in every run.json, are this table's first two default bins). Visits are binned by that count
(default edges 1, 5, 20: unseen, 1-4, 5-19, 20+) and every run's stored test predictions are scored per bin. This is where an LLM
teacher that reads code titles should help a student that only sees code ids (LEADER, arXiv
2402.02803): an unseen or rare code has an untrained embedding, its title does not.

The dataset is loaded again (the results store holds no codes) and must be the one the runs used
(same content hash); the split is re-derived from each run's split seed, scheme and ratios (runs
written before split seeds existed split with their `seed`, bench.seed_groups.split_seed_of).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from bench import metrics
from bench.data import DatasetBundle
from bench.metric_registry import Metric, model_metrics
from bench.errors import UserError
from bench.groups import rarest_code_count, training_code_counts
from bench.results import PREDICTIONS_FILE, read_predictions
from bench.seed_groups import split_seed_of
from bench.splits import split_patients

__all__ = ["RarityRow", "rarity_metrics", "parse_edges", "bin_labels", "rarity_rows", "render_rarity"]

DEFAULT_EDGES = (1, 5, 20)   # a visit without diagnosis codes (bench.groups.NO_CODES) falls into the top bin


@dataclass(frozen=True)
class RarityRow:
    """One model on one rarity bin: n test samples and {metric: value (None = n/a)} of rarity_metrics()."""

    model: str
    bin: str
    n: int
    values: dict[str, float | None]


def rarity_metrics() -> list[Metric]:
    """The registry's model metrics that need no DDI graph (the rarity table scores sets and scores only)."""
    return [m for m in model_metrics() if "ddi" not in m.needs]


def parse_edges(text: str) -> tuple[int, ...]:
    """"1,5,20" -> (1, 5, 20): strictly increasing positive integers."""
    try:
        edges = tuple(int(x) for x in text.split(","))
    except ValueError:
        edges = ()
    if not edges or min(edges) < 1 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise UserError(f"--edges must be strictly increasing positive integers like 1,5,20, got {text!r}")
    return edges


def bin_labels(edges: Sequence[int]) -> list[str]:
    """Labels of the len(edges) + 1 bins cut at `edges`: "0 (unseen)", "1-4", ..., "20+"."""
    cuts = (0, *edges)
    labels = ["0 (unseen)" if edges[0] == 1 else f"0-{edges[0] - 1}"]
    labels += [f"{a}" if b - a == 1 else f"{a}-{b - 1}" for a, b in zip(cuts[1:], cuts[2:])]
    return labels + [f"{edges[-1]}+"]


def _bin_of(count: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """int [n]: bin index of each count (bins cut at `edges`, see bin_labels)."""
    return np.searchsorted(np.asarray(edges), count, side="right")


def _run_counts(record: dict[str, Any], bundle: DatasetBundle, cache: dict[tuple, tuple]) -> tuple:
    """(training code counts, {(patient_id, visit_index): diagnoses}) for the run's split."""
    key = (split_seed_of(record), record["split"]["scheme"], record["split"]["ratios"])
    if key not in cache:
        split = split_patients(bundle.patients, key[1], key[0], key[2])
        visits = {(p.id, i): v.diagnoses for p in split.test for i, v in enumerate(p.visits)}
        cache[key] = (training_code_counts(split.train), visits)
    return cache[key]


def rarity_rows(runs: list[dict[str, Any]], bundle: DatasetBundle, edges: Sequence[int] = DEFAULT_EDGES,
                threshold: float | None = None) -> list[RarityRow]:
    """Per run (one per model) and non-empty rarity bin, the metrics of its stored test predictions.

    `threshold` re-scores runs that stored probabilities (default: each run's own threshold);
    hard-prediction runs keep their sets and have no PRAUC.
    """
    labels = bin_labels(edges)
    cache: dict[tuple, tuple] = {}
    rows = []
    for record in runs:
        where = record["_path"]
        if record["dataset"]["hash"] != bundle.hash:
            raise UserError(f"{where}: made on another version of {bundle.name} (hash {record['dataset']['hash']}, "
                            f"loaded {bundle.hash}); pass the run's --prep-set / --data-dir")
        counts, visits = _run_counts(record, bundle, cache)
        preds = read_predictions(Path(where))
        keys = zip(preds.patient_id.tolist(), preds.visit_index.tolist())
        try:
            rarest = np.array([rarest_code_count(visits[k], counts) for k in keys], dtype=np.int64)
        except KeyError as missing:
            raise UserError(f"{Path(where) / PREDICTIONS_FILE}: test sample {missing} is not in the split "
                            "re-derived from the run's split seed and ratios") from None
        predicted = preds.predicted
        if threshold is not None and preds.scores is not None:
            predicted = preds.scores >= threshold
        per_sample = metrics.per_sample_metrics(preds.target, predicted, preds.scores,
                                                np.zeros((len(preds.drugs),) * 2, bool))
        bins = _bin_of(rarest, edges)
        for b, label in enumerate(labels):
            index = np.flatnonzero(bins == b)
            if not index.size:
                continue
            values = metrics.aggregate(per_sample, index)
            rows.append(RarityRow(record["model"]["name"], label, int(index.size),
                                  {m.name: _finite(values.get(m.name)) for m in rarity_metrics()}))
    return rows


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _texts(row: RarityRow, shown: list[Metric]) -> list[str]:
    numbers = ["n/a" if (v := row.values.get(m.name)) is None else f"{v:.{m.digits}f}" for m in shown]
    return [row.model, row.bin, str(row.n), *numbers]


def render_rarity(rows: list[RarityRow], fmt: str, title: str) -> str | Table:
    """The rows as a rich Table (`table`) or Markdown / CSV text, a column per rarity_metrics()."""
    shown = rarity_metrics()
    headers = ("model", "rarest code's training visits", "n", *(m.label for m in shown))
    if fmt == "table":
        table = Table(title=title)
        for h in headers:
            table.add_column(h, justify="left" if h == "model" else "right")
        for row in rows:
            table.add_row(*_texts(row, shown))
        return table
    if fmt == "md":
        lines = ["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
        lines += ["| " + " | ".join(_texts(row, shown)) + " |" for row in rows]
        return "\n".join(lines) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["model", "bin", "n", *(m.name for m in shown)])
        for r in rows:
            writer.writerow([r.model, r.bin, r.n, *("" if (v := r.values.get(m.name)) is None else v for m in shown)])
        return out.getvalue()
    raise UserError(f"--format must be one of table, md, csv, got {fmt!r}")
