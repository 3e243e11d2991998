"""Paired bootstrap over the same test samples: the difference of two models in every metric, with a
95% percentile confidence interval and a two-sided p-value. Pure numpy; run files are read elsewhere.

The tested metrics are the registry's model metrics (bench.metric_registry.model_metrics: every metric
of the predictions, not the ground truth's DDI rate). Every one is a ratio of weighted sums over
resampling units (test samples, or patients under the `every` protocol), so a bootstrap replicate with
unit counts ``w`` [m] gives

    statistic = (w @ num) / (w @ den)      (the metric's `empty` value when w @ den = 0)

* a mean metric (jaccard, f1, prauc): num = the unit's value, den = 1;
* a pooled metric: its two `parts`, e.g. ddi_rate: interacting pairs / all pairs (0 when there are no
  pairs at all); avg_drugs: predicted drugs / visits (1 per sample; a patient's visit count under `every`).

This is exactly what :func:`bench.metrics.aggregate` computes for one index vector (both read
:func:`bench.metrics.unit_terms`); here all replicates are drawn at once as a count matrix W [B, m],
and both models use the SAME W (paired).

p-value (two-sided, percentile bootstrap, with the +1 Monte Carlo correction of Davison & Hinkley 1997):

    p = min(1, 2 * min(#{d*_b <= 0} + 1, #{d*_b >= 0} + 1) / (B + 1))

where d*_b = other - reference in replicate b (uncentred). It is the smallest two-sided level at which
the percentile interval excludes 0, so "p < 0.05" agrees with "the 95% interval excludes 0" (up to
interpolation). Identical predictions give d*_b = 0 in every replicate and p = 1; a model better on
every unit gives d*_b > 0 always and p = 2 / (B + 1), the smallest value B replicates can support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench import metrics
from bench.metric_registry import METRICS, model_metrics

__all__ = ["paired_metrics", "Difference", "ratio_terms", "align_keys", "bootstrap_counts",
           "paired_bootstrap", "p_value", "SIGNIFICANT"]

SIGNIFICANT = 0.05
_MAX_CELLS = 4_000_000  # entries of one chunk of the count matrix (32 MB as float64)


@dataclass(frozen=True)
class Difference:
    """other - reference for one metric: point difference on the full test set, reference and other
    values, the percentile interval [low, high] at `level`, the two-sided p-value, replicates used."""

    reference: float
    other: float
    diff: float
    low: float
    high: float
    p_value: float
    n_boot: int
    level: float = 0.95

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANT


def paired_metrics() -> list[str]:
    """Names of the tested metrics, in registry order (the model metrics of bench.metric_registry)."""
    return [metric.name for metric in model_metrics()]


def ratio_terms(per_sample: dict[str, np.ndarray],
                patient_ids: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Numerator and denominator per resampling unit for each tested metric.

    Args:
        per_sample: output of :func:`bench.metrics.per_sample_metrics` (float arrays [n]; 'prauc'
            may be absent, then it is absent here too).
        patient_ids: int [n] or None. Given (the `every` protocol), units are patients: per-patient
            means of mean metrics, summed parts of pooled ones (DDI pairs, drugs and visits).

    Returns:
        {metric: (num float [m], den float [m])}, m = n samples or number of distinct patients
        (patients in ascending id order).
    """
    units = per_sample if patient_ids is None else metrics.per_patient(per_sample, np.asarray(patient_ids))
    terms = {metric.name: metrics.unit_terms(units, metric) for metric in model_metrics()}
    return {name: pair for name, pair in terms.items() if pair is not None}


def align_keys(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Row order that lines `other` up with `reference`.

    Args:
        reference, other: int [n, k] sample keys, e.g. columns (patient_id, visit_index).

    Returns:
        int [n] `order` with ``other[order] == reference`` row by row.

    Raises:
        ValueError: the keys are not the same set of distinct rows.
    """
    reference, other = np.asarray(reference), np.asarray(other)
    if reference.ndim != 2 or reference.shape != other.shape:
        raise ValueError(f"{len(reference)} vs {len(other)} samples")
    ref_order = np.lexsort(reference.T[::-1])
    other_order = np.lexsort(other.T[::-1])
    ref_sorted, other_sorted = reference[ref_order], other[other_order]
    if len(ref_sorted) > 1 and (ref_sorted[1:] == ref_sorted[:-1]).all(axis=1).any():
        raise ValueError("duplicate sample keys")
    if not np.array_equal(ref_sorted, other_sorted):
        mismatch = int((ref_sorted != other_sorted).any(axis=1).sum())
        raise ValueError(f"{mismatch} of {len(reference)} samples differ")
    order = np.empty(len(reference), dtype=np.int64)
    order[ref_order] = other_order
    return order


def bootstrap_counts(n_units: int, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """float [n_rows, n_units]: how often each unit is drawn in each replicate (n_units draws with
    replacement per row), from one index matrix ``rng.integers(0, n_units, (n_rows, n_units))``."""
    idx = rng.integers(0, n_units, size=(n_rows, n_units))
    flat = (idx + (np.arange(n_rows) * n_units)[:, None]).ravel()
    return np.bincount(flat, minlength=n_rows * n_units).reshape(n_rows, n_units).astype(float)


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    """num / den elementwise, `empty` where den == 0."""
    return np.divide(num, den, out=np.full(np.shape(num), empty, dtype=float), where=den > 0)


def p_value(deltas: np.ndarray) -> float:
    """Two-sided bootstrap p-value of float [B] replicate differences (see the module docstring)."""
    n = len(deltas)
    below, above = int((deltas <= 0).sum()), int((deltas >= 0).sum())
    return min(1.0, 2.0 * (min(below, above) + 1) / (n + 1))


def paired_bootstrap(reference: dict[str, tuple[np.ndarray, np.ndarray]],
                     other: dict[str, tuple[np.ndarray, np.ndarray]],
                     *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Difference | None]:
    """Paired bootstrap of other - reference for every tested metric (:func:`paired_metrics`).

    Args:
        reference, other: :func:`ratio_terms` of the two models over the SAME units in the same
            order ({metric: (num [m], den [m])}).
        n_boot: replicates B (>= 1). seed: for ``np.random.default_rng``. level: interval coverage.

    Returns:
        {metric: Difference, or None when either model lacks the metric (no scores: no PRAUC)}.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    tested = paired_metrics()
    names = [k for k in tested if k in reference and k in other]
    m = len(next(iter(reference.values()))[0])
    if m == 0:
        raise ValueError("no units to resample")
    for name in names:
        for terms in (reference[name], other[name]):
            if any(np.shape(a) != (m,) for a in terms):
                raise ValueError(f"{name}: every term must have shape ({m},)")
    empty = {k: METRICS[k].empty for k in names}
    # columns: for each metric, reference num, reference den, other num, other den -> T [m, 4K]
    table = np.column_stack([a for k in names for a in (*reference[k], *other[k])])
    full = table.sum(axis=0)
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS // m)
    sums = np.concatenate([bootstrap_counts(m, min(chunk, n_boot - start), rng) @ table
                           for start in range(0, n_boot, chunk)])  # [B, 4K]
    out: dict[str, Difference | None] = dict.fromkeys(tested)
    tail = 100 * (1 - level) / 2
    for j, name in enumerate(names):
        ref_full = float(_ratio(full[4 * j], full[4 * j + 1], empty[name]))
        other_full = float(_ratio(full[4 * j + 2], full[4 * j + 3], empty[name]))
        deltas = (_ratio(sums[:, 4 * j + 2], sums[:, 4 * j + 3], empty[name])
                  - _ratio(sums[:, 4 * j], sums[:, 4 * j + 1], empty[name]))
        low, high = np.percentile(deltas, [tail, 100 - tail])
        out[name] = Difference(reference=ref_full, other=other_full, diff=other_full - ref_full,
                               low=float(low), high=float(high), p_value=p_value(deltas), n_boot=n_boot,
                               level=level)
    return out
