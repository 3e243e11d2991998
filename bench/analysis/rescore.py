"""A stored run's metrics at another threshold, recomputed from its predictions.safetensors.

The result is what `bench run --threshold T` would have written for the same model and test samples
(same resampling rounds, fraction and seed, per-patient units under protocol `every`), so runs made at
different thresholds can share one table (`bench compare --threshold`, the teacher row of
`bench ablate`). PRAUC does not depend on the threshold; the set metrics and the DDI rate do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench import metrics
from bench.errors import UserError
from bench.results import GROUPS, PREDICTIONS_FILE, metrics_entry, read_predictions

__all__ = ["rescore"]


def rescore(record: dict[str, Any], threshold: float) -> dict[str, Any]:
    """`record` (a run.json read by bench.results.read_runs) with its metrics at `threshold`.

    Unchanged when the run already used `threshold` or stored no scores (hard predictions); otherwise
    a copy whose `threshold` is the new one and `rescored_from` the run's own.
    """
    if record["threshold"] == threshold or record["model"].get("hard_predictions"):
        return record
    folder = Path(record["_path"])
    preds = read_predictions(folder)
    if preds.scores is None:
        return record
    if preds.ddi_adj is None:
        raise UserError(f"{folder / PREDICTIONS_FILE}: written before DDI graphs were stored; "
                        "re-run it to score it at another threshold")
    single = preds.visit_index == 0                     # Sample.is_single_visit: no earlier visit
    resampling = record["resampling"]
    evaluation = metrics.evaluate(
        preds.target, preds.scores, threshold=threshold, ddi_adj=preds.ddi_adj,
        groups={"all": np.ones(len(single), bool), "single_visit": single, "multi_visit": ~single},
        patient_ids=preds.patient_id if record["protocol"] == "every" else None,
        rounds=resampling["rounds"], fraction=resampling["fraction"], replace=resampling["replace"],
        seed=record["seed"])
    return {**record, "threshold": threshold, "rescored_from": record["threshold"],
            "metrics": {group: metrics_entry(evaluation[group]) for group in GROUPS}}
