"""Evaluation of medication recommendations, vectorised, driven by the metric registry.

The metrics themselves (names, directions, definitions, per-sample functions, pooled or mean) are
declared once in :mod:`bench.metric_registry`; this module validates inputs, computes every
registered metric per sample, collapses samples into patients, aggregates with resampling and
returns what run.json stores.

Shapes: ``n`` samples (visits), ``d`` drugs.  ``y_true``/``y_pred`` are bool
``[n, d]``, ``scores`` float ``[n, d]`` in [0, 1], ``ddi_adj`` bool ``[d, d]``
(symmetric, False diagonal), ``ddi_known`` bool ``[d]`` (the drugs the DDI graph knows) or None.

With ``patient_ids`` (GAMENet/SafeDrug "every visit" protocol) mean metrics (jaccard, f1, prauc)
are averaged per patient then over patients, and pooled metrics (DDI rates, avg_drugs = drugs per
visit, ``med_cnt / visit_cnt`` as in the reference code) sum their parts per patient and pool them.
"""

from __future__ import annotations

import numpy as np

from bench.metric_registry import METRICS, Inputs, Metric, average_precision_rows

__all__ = ["Metric", "METRICS", "average_precision_rows", "per_sample_metrics", "unit_terms", "aggregate",
           "per_patient", "evaluate"]


# --------------------------------------------------------------------------- validation
def _as_binary(x: np.ndarray, name: str) -> np.ndarray:
    """Return ``x`` as a bool array, raising if it holds values other than 0/1."""
    x = np.asarray(x)
    if x.dtype == bool:
        return x
    if not (np.issubdtype(x.dtype, np.number)) or not np.isin(x, (0, 1)).all():
        raise ValueError(f"{name} must be bool or contain only 0/1 values")
    return x.astype(bool)


def _check_matrix(y_true: np.ndarray, name: str, other: np.ndarray) -> None:
    if other.shape != y_true.shape:
        raise ValueError(f"{name} shape {other.shape} does not match y_true shape {y_true.shape}")


def _validate(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None, ddi_adj: np.ndarray,
    ddi_known: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    y_true = _as_binary(y_true, "y_true")
    if y_true.ndim != 2 or y_true.shape[1] == 0:
        raise ValueError(f"y_true must be a 2-D [n, d] matrix with d >= 1, got shape {y_true.shape}")
    y_pred = _as_binary(y_pred, "y_pred")
    _check_matrix(y_true, "y_pred", y_pred)
    if scores is not None:
        scores = np.asarray(scores, dtype=float)
        _check_matrix(y_true, "scores", scores)
        if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
            raise ValueError("scores must be finite and lie in [0, 1]")
    ddi_adj = _as_binary(ddi_adj, "ddi_adj")
    d = y_true.shape[1]
    if ddi_adj.shape != (d, d):
        raise ValueError(f"ddi_adj must have shape ({d}, {d}) to match n_drugs, got {ddi_adj.shape}")
    if (ddi_adj != ddi_adj.T).any():
        raise ValueError("ddi_adj must be symmetric")
    if ddi_adj.diagonal().any():
        raise ValueError("ddi_adj must have a False diagonal")
    if ddi_known is not None:
        ddi_known = _as_binary(ddi_known, "ddi_known")
        if ddi_known.shape != (d,):
            raise ValueError(f"ddi_known must have shape ({d},) to match n_drugs, got {ddi_known.shape}")
        if (ddi_adj.any(axis=1) & ~ddi_known).any():
            raise ValueError("ddi_known must hold every drug with a DDI edge")
    return y_true, y_pred, scores, ddi_adj, ddi_known


# --------------------------------------------------------------------------- per sample
def per_sample_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None, ddi_adj: np.ndarray,
    ddi_known: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every registered metric per sample.

    Args:
        y_true: bool/0-1 [n, d] target sets.
        y_pred: bool/0-1 [n, d] predicted sets.
        scores: float [n, d] in [0, 1] or None (then metrics that need scores, 'prauc', are omitted).
        ddi_adj: bool/0-1 [d, d] symmetric DDI graph with False diagonal.
        ddi_known: bool/0-1 [d], the drugs the DDI graph knows (a superset of those with an edge), or
            None (then metrics that need "ddi_nodes", the DDI coverage, are omitted).

    Returns:
        float arrays [n], in registry order: a mean metric's values under its name ('jaccard', 'f1',
        'prauc'), a pooled metric's numerator and denominator under its `parts` names ('ddi_pairs',
        'all_pairs'; 'ddi_pairs_true', 'all_pairs_true'; 'avg_drugs' = |P|, 'n_visits' = 1;
        'judged_pairs', 'judged_pairs_true').
    """
    inputs = Inputs(*_validate(y_true, y_pred, scores, ddi_adj, ddi_known))
    out: dict[str, np.ndarray] = {}
    for metric in METRICS.values():
        if "scores" in metric.needs and inputs.scores is None:
            continue
        if "ddi_nodes" in metric.needs and inputs.ddi_known is None:
            continue
        values = metric.per_sample(inputs)
        if metric.parts is None:
            out[metric.name] = values
        else:
            out.update(zip(metric.parts, values))
    return out


def unit_terms(units: dict[str, np.ndarray], metric: Metric) -> tuple[np.ndarray, np.ndarray] | None:
    """(numerator, denominator) float [m] of `metric` per unit, or None when `units` lacks it.

    `units` is :func:`per_sample_metrics`' output or :func:`per_patient`'s; a mean metric's
    denominator is 1 per unit. The metric over units weighted by counts w [m] is
    (w @ numerator) / (w @ denominator), `metric.empty` when the denominator is 0.
    """
    if metric.parts is None:
        if metric.name not in units:
            return None
        values = np.asarray(units[metric.name], float)
        return values, np.ones(len(values))
    if not all(part in units for part in metric.parts):
        return None
    num, den = (np.asarray(units[part], float) for part in metric.parts)
    return num, den


# --------------------------------------------------------------------------- aggregation
def aggregate(per_sample: dict[str, np.ndarray], index: np.ndarray | None = None) -> dict[str, float]:
    """Metric values over the units selected by ``index``.

    Args:
        per_sample: output of :func:`per_sample_metrics` or :func:`per_patient` (arrays [m]).
        index: int [k] unit indices, repeats allowed (counted with multiplicity);
            default all units.

    Returns:
        {metric: value} in registry order for every metric present ('prauc' only with scores):
        weighted means of mean metrics, pooled ratios of pooled ones. Over an empty selection a
        mean is nan, a pooled metric its `empty` value.
    """
    m = len(next(iter(per_sample.values())))
    if index is None:
        w = np.ones(m)
    else:
        index = np.asarray(index)
        if index.ndim != 1 or (index.size and not np.issubdtype(index.dtype, np.integer)):
            raise ValueError("index must be a 1-D integer array")
        if index.size and (index.min() < 0 or index.max() >= m):
            raise ValueError(f"index out of range for {m} units")
        w = np.bincount(index, minlength=m).astype(float)
    out = {}
    for metric in METRICS.values():
        terms = unit_terms(per_sample, metric)
        if terms is None:
            continue
        den = float(w @ terms[1])  # exact: w and the denominators are whole numbers
        out[metric.name] = float(w @ terms[0]) / den if den > 0 else metric.empty
    return out


def per_patient(ps: dict[str, np.ndarray], patient_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Collapse per-sample arrays [n] into per-patient units [n_patients] (patients in ascending id order).

    Args:
        ps: output of :func:`per_sample_metrics` (arrays [n]).
        patient_ids: [n] patient of each sample.

    Returns:
        per-patient means of mean metrics ('jaccard', 'f1', 'prauc' if present) and sums of pooled
        metrics' parts (DDI pair counts, 'avg_drugs' = total drugs, 'n_visits' = visits).
        :func:`aggregate` pools these.
    """
    _, inv = np.unique(patient_ids, return_inverse=True)
    inv = inv.ravel()
    cnt = np.bincount(inv).astype(float)
    out = {}
    for metric in METRICS.values():
        if metric.parts is None and metric.name in ps:
            out[metric.name] = np.bincount(inv, weights=ps[metric.name]) / cnt
        for part in metric.parts or ():
            if part in ps:
                out[part] = np.bincount(inv, weights=ps[part])
    return out


def _none_if_nan(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def evaluate(
    y_true: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    y_pred: np.ndarray | None = None,
    threshold: float = 0.5,
    ddi_adj: np.ndarray,
    ddi_known: np.ndarray | None = None,
    groups: dict[str, np.ndarray] | None = None,
    patient_ids: np.ndarray | None = None,
    rounds: int = 10,
    fraction: float = 0.8,
    replace: bool = False,
    seed: int = 0,
) -> dict:
    """Point metrics and resampling robustness per group.

    Args:
        y_true: bool/0-1 [n, d]. scores: float [n, d] in [0, 1] (y_pred = scores >= threshold).
        y_pred: bool/0-1 [n, d] hard predictions (no scores: prauc is None). Give exactly
            one of ``scores`` / ``y_pred``.
        ddi_adj: bool [d, d]. ddi_known: bool [d] drugs the DDI graph knows, or None (no coverage).
        groups: name -> bool mask [n] (default {"all": all True}).
        patient_ids: optional [n]; if given, patients are the averaging/resampling units.
        rounds, fraction, replace, seed: each round draws round(fraction * n_units) units
            with ``np.random.default_rng(seed)`` (a fresh generator per group).

    Returns:
        {group: {"n": n_samples, "point": {metric: float|None},
                 "metrics": {metric: {"mean": float|None, "std": float|None}}}}
        with metrics in registry order (bench.metric_registry.METRICS); std is np.std (ddof=0) over rounds.
    """
    if (scores is None) == (y_pred is None):
        raise ValueError("give exactly one of scores / y_pred")
    if not np.isfinite(threshold):
        raise ValueError("threshold must be finite")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
        raise ValueError("rounds must be a non-negative integer")
    if not fraction > 0 or (not replace and fraction > 1):
        raise ValueError("fraction must be in (0, 1] (or > 0 with replace=True)")
    if scores is not None:
        scores = np.asarray(scores, dtype=float)
        y_pred = scores >= threshold
    ps = per_sample_metrics(y_true, y_pred, scores, ddi_adj, ddi_known)
    n = len(y_pred)
    if groups is None:
        groups = {"all": np.ones(n, dtype=bool)}
    if patient_ids is not None:
        patient_ids = np.asarray(patient_ids)
        if patient_ids.shape != (n,):
            raise ValueError(f"patient_ids must have shape ({n},), got {patient_ids.shape}")

    results: dict = {}
    for name, mask in groups.items():
        mask = _as_binary(mask, f"groups[{name!r}]")
        if mask.shape != (n,):
            raise ValueError(f"groups[{name!r}] must be a bool mask of shape ({n},), got {mask.shape}")
        sub = {k: v[mask] for k, v in ps.items()}
        units = sub if patient_ids is None else per_patient(sub, patient_ids[mask])
        n_units = len(next(iter(units.values())))
        point: dict[str, float | None] = dict.fromkeys(METRICS)
        spread: dict[str, dict[str, float | None]] = {k: {"mean": None, "std": None} for k in METRICS}
        if n_units > 0:
            point.update({k: _none_if_nan(v) for k, v in aggregate(units).items()})
            n_draw = int(round(fraction * n_units))
            if rounds > 0 and n_draw > 0:
                rng = np.random.default_rng(seed)
                draws = [aggregate(units, rng.choice(n_units, size=n_draw, replace=replace))
                         for _ in range(rounds)]
                for k in draws[0]:
                    vals = np.array([dr[k] for dr in draws])
                    spread[k] = {"mean": _none_if_nan(vals.mean()), "std": _none_if_nan(vals.std())}
        results[name] = {"n": int(mask.sum()), "point": point, "metrics": spread}
    return results
