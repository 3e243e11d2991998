"""Medication-recommendation metrics (GAMENet / SafeDrug definitions), vectorised.

Shapes: ``n`` samples (visits), ``d`` drugs.  ``y_true``/``y_pred`` are bool
``[n, d]``, ``scores`` float ``[n, d]`` in [0, 1], ``ddi_adj`` bool ``[d, d]``
(symmetric, False diagonal).

Per sample (T = target set, P = predicted set):

* jaccard = |P & T| / |P | T|, 0/0 -> 0
* f1 = 2 p r / (p + r) with p = |P & T| / |P| (0 if P empty), r = |P & T| / |T|
  (0 if T empty); 0 when p + r = 0
* prauc = sklearn ``average_precision_score(y_true_row, score_row)`` (step-wise,
  one threshold per distinct score value); 0.0 for a row without positives
* avg_drugs = |P|

DDI rate = sum of interacting unordered pairs / sum of unordered pairs, pooled
over samples (0 if there are no pairs at all); ``ddi_rate_true`` is the same on
the target sets.

With ``patient_ids`` (GAMENet/SafeDrug "every visit" protocol) jaccard, f1 and
prauc are averaged per patient then over patients, DDI counts are pooled, and
avg_drugs is the pooled number of drugs per visit (``med_cnt / visit_cnt`` as in
the reference code), which equals the mean of |P| over visits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MetricSpec", "METRICS", "per_sample_metrics", "aggregate", "per_patient", "evaluate"]


@dataclass(frozen=True)
class MetricSpec:
    """Description of one reported metric."""

    name: str
    higher_is_better: bool | None  # None for neutral metrics
    needs_scores: bool
    description: str


METRICS: dict[str, MetricSpec] = {
    "jaccard": MetricSpec("jaccard", True, False, "mean |P&T|/|P|T| (0/0 -> 0)"),
    "f1": MetricSpec("f1", True, False, "mean set F1 from set precision and recall"),
    "prauc": MetricSpec("prauc", True, True, "mean average precision of scores (sklearn)"),
    "ddi_rate": MetricSpec("ddi_rate", False, False, "pooled interacting pairs / pairs, predictions"),
    "ddi_rate_true": MetricSpec("ddi_rate_true", None, False, "pooled DDI rate of the ground truth"),
    "avg_drugs": MetricSpec("avg_drugs", None, False, "mean number of predicted drugs per visit"),
}

_MEAN_KEYS = ("jaccard", "f1", "prauc")
_COUNT_KEYS = ("ddi_pairs", "all_pairs", "ddi_pairs_true", "all_pairs_true")


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
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None, ddi_adj: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
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
    return y_true, y_pred, scores, ddi_adj


# --------------------------------------------------------------------------- per sample
def average_precision_rows(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row-wise sklearn ``average_precision_score``; bool [n, d], float [n, d] -> float [n].

    Rows are sorted by descending score; precision is read at the last position
    of each run of tied scores (one threshold per distinct value), and each
    positive contributes ``precision_at_its_threshold / n_pos``, which equals
    sum_k (R_k - R_{k-1}) P_k.  Rows with no positive give 0.0.
    """
    n, d = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    s = np.take_along_axis(scores, order, axis=1)
    t = np.take_along_axis(y_true, order, axis=1).astype(float)
    precision = np.cumsum(t, axis=1) / np.arange(1, d + 1)
    is_end = np.ones((n, d), dtype=bool)
    is_end[:, :-1] = s[:, :-1] != s[:, 1:]
    # index of the end of the tie run containing each position: min{j >= i : is_end[j]}
    end_at = np.where(is_end, np.arange(d), d)
    end_idx = np.minimum.accumulate(end_at[:, ::-1], axis=1)[:, ::-1]
    p_at_threshold = np.take_along_axis(precision, end_idx, axis=1)
    n_pos = t.sum(axis=1)
    num = (t * p_at_threshold).sum(axis=1)
    return np.divide(num, n_pos, out=np.zeros(n), where=n_pos > 0)


def per_sample_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None, ddi_adj: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-sample metrics and DDI counts.

    Args:
        y_true: bool/0-1 [n, d] target sets.
        y_pred: bool/0-1 [n, d] predicted sets.
        scores: float [n, d] in [0, 1] or None (then 'prauc' is omitted).
        ddi_adj: bool/0-1 [d, d] symmetric DDI graph with False diagonal.

    Returns:
        float arrays [n]: 'jaccard', 'f1', 'prauc' (if scores), 'avg_drugs' (= |P|),
        'ddi_pairs', 'all_pairs' (predictions) and 'ddi_pairs_true',
        'all_pairs_true' (targets), so pooled DDI rates can be recomputed.
    """
    y_true, y_pred, scores, ddi_adj = _validate(y_true, y_pred, scores, ddi_adj)
    n = y_true.shape[0]
    inter = (y_true & y_pred).sum(axis=1).astype(float)
    union = (y_true | y_pred).sum(axis=1).astype(float)
    n_pred = y_pred.sum(axis=1).astype(float)
    n_true = y_true.sum(axis=1).astype(float)

    def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros(n), where=b > 0)

    prec, rec = _div(inter, n_pred), _div(inter, n_true)
    out: dict[str, np.ndarray] = {
        "jaccard": _div(inter, union),
        "f1": _div(2.0 * prec * rec, prec + rec),
    }
    if scores is not None:
        out["prauc"] = average_precision_rows(y_true, scores)
    out["avg_drugs"] = n_pred
    adj = ddi_adj.astype(float)
    for suffix, x, k in (("", y_pred, n_pred), ("_true", y_true, n_true)):
        xf = x.astype(float)
        out["ddi_pairs" + suffix] = ((xf @ adj) * xf).sum(axis=1) / 2.0  # exact in float64
        out["all_pairs" + suffix] = k * (k - 1) / 2.0
    return out


# --------------------------------------------------------------------------- aggregation
def aggregate(per_sample: dict[str, np.ndarray], index: np.ndarray | None = None) -> dict[str, float]:
    """Metric values over the units selected by ``index``.

    Args:
        per_sample: output of :func:`per_sample_metrics` (arrays [m]); may also be a
            per-unit table with 'n_visits' [m] (visits per unit), in which case
            'avg_drugs' holds each unit's total drug count and is pooled per visit.
        index: int [k] unit indices, repeats allowed (counted with multiplicity);
            default all units.

    Returns:
        {'jaccard', 'f1', 'prauc' (if present), 'ddi_rate', 'ddi_rate_true',
        'avg_drugs'}: weighted means of the per-unit metrics, pooled DDI rates.
        Means over an empty selection are nan.
    """
    m = len(per_sample["jaccard"])
    if index is None:
        w = np.ones(m)
    else:
        index = np.asarray(index)
        if index.ndim != 1 or (index.size and not np.issubdtype(index.dtype, np.integer)):
            raise ValueError("index must be a 1-D integer array")
        if index.size and (index.min() < 0 or index.max() >= m):
            raise ValueError(f"index out of range for {m} units")
        w = np.bincount(index, minlength=m).astype(float)
    total = w.sum()

    def _mean(x: np.ndarray) -> float:
        return float(w @ x / total) if total > 0 else float("nan")

    def _pooled(num: np.ndarray, den: np.ndarray) -> float:
        d = float(w @ den)
        return float(w @ num) / d if d > 0 else 0.0

    out = {k: _mean(per_sample[k]) for k in _MEAN_KEYS if k in per_sample}
    out["ddi_rate"] = _pooled(per_sample["ddi_pairs"], per_sample["all_pairs"])
    out["ddi_rate_true"] = _pooled(per_sample["ddi_pairs_true"], per_sample["all_pairs_true"])
    if "n_visits" in per_sample:
        visits = float(w @ per_sample["n_visits"])
        out["avg_drugs"] = float(w @ per_sample["avg_drugs"]) / visits if visits > 0 else float("nan")
    else:
        out["avg_drugs"] = _mean(per_sample["avg_drugs"])
    return out


def per_patient(ps: dict[str, np.ndarray], patient_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Collapse per-sample arrays [n] into per-patient units [n_patients] (patients in ascending id order).

    Args:
        ps: output of :func:`per_sample_metrics` (arrays [n]).
        patient_ids: [n] patient of each sample.

    Returns:
        per-patient means of 'jaccard', 'f1', 'prauc' (if present); sums of the DDI pair counts and of
        'avg_drugs' (total drugs); 'n_visits' (samples per patient). :func:`aggregate` pools these.
    """
    _, inv = np.unique(patient_ids, return_inverse=True)
    inv = inv.ravel()
    cnt = np.bincount(inv).astype(float)
    out = {k: np.bincount(inv, weights=ps[k]) / cnt for k in _MEAN_KEYS if k in ps}
    for k in (*_COUNT_KEYS, "avg_drugs"):
        out[k] = np.bincount(inv, weights=ps[k])  # sums; avg_drugs = total drugs
    out["n_visits"] = cnt
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
        ddi_adj: bool [d, d]. groups: name -> bool mask [n] (default {"all": all True}).
        patient_ids: optional [n]; if given, patients are the averaging/resampling units.
        rounds, fraction, replace, seed: each round draws round(fraction * n_units) units
            with ``np.random.default_rng(seed)`` (a fresh generator per group).

    Returns:
        {group: {"n": n_samples, "point": {metric: float|None},
                 "metrics": {metric: {"mean": float|None, "std": float|None}}}}
        with metrics in METRICS order; std is np.std (ddof=0) over rounds.
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
    ps = per_sample_metrics(y_true, y_pred, scores, ddi_adj)
    n = len(ps["jaccard"])
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
        n_units = len(units["jaccard"])
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
