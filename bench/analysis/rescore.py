"""A stored run's metrics at another threshold, recomputed from its predictions.safetensors.

The result is what `bench run --threshold T` would have written for the same model and test samples
(same resampling rounds, fraction and seed, per-patient units under protocol `every`), so runs made at
different thresholds can share one table (`bench compare --threshold`, the teacher row of
`bench ablate`). PRAUC does not depend on the threshold; the set metrics and the DDI rate do.

The evaluation groups are the masks stored with the predictions (bench.groups). Files written before
the masks were stored give the groups the visit indices alone define: all, single- and multi-visit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import metrics
from bench.errors import UserError
from bench.groups import visit_groups
from bench.results import PREDICTIONS_FILE, metrics_entry, read_predictions

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
    groups = dict(preds.groups) if preds.groups is not None else visit_groups(preds.visit_index)
    resampling = record["resampling"]
    evaluation = metrics.evaluate(
        preds.target, preds.scores, threshold=threshold, ddi_adj=preds.ddi_adj, ddi_known=preds.ddi_known,
        groups=groups,
        patient_ids=preds.patient_id if record["protocol"] == "every" else None,
        rounds=resampling["rounds"], fraction=resampling["fraction"], replace=resampling["replace"],
        seed=record["seed"])
    return {**record, "threshold": threshold, "rescored_from": record["threshold"],
            "metrics": {group: metrics_entry(result) for group, result in evaluation.items()}}
