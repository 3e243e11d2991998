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

Several training seeds (:func:`pooled_paired_bootstrap`): k pairs (reference of seed s, other of seed s),
all scored on the same test units (one split). The difference is the mean over the k seeds of the
per-seed differences. The seeds and the test units are crossed (every seed sees every unit), so a
replicate resamples both at once, independently, with replacement (Owen's two-way "pigeonhole"
bootstrap, Ann. Appl. Stat. 2007, which errs on the conservative side for crossed designs): one count
vector W over the units, shared by every seed (the pairing by test sample), and one count vector V over
the k seed pairs (the pairing by seed):

    d*_b = sum_s V[b, s] * (other_s(W_b) - reference_s(W_b)) / k

so the interval and p carry both the test-sample noise and the training-seed noise. With k = 1 it is
the single-pair bootstrap above, replicate for replicate (V is drawn from its own generator). With few
seeds the seed part is coarse (k = 3 gives 10 distinct seed draws, and a bootstrap of k values
understates their variance by (k - 1) / k): read a 3-seed p as a screen, and use 5 or more seeds to
claim a difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench import metrics
from bench.metric_registry import METRICS, model_metrics

__all__ = ["paired_metrics", "Difference", "ratio_terms", "align_keys", "bootstrap_counts",
           "paired_bootstrap", "pooled_paired_bootstrap", "p_value", "SIGNIFICANT"]

SIGNIFICANT = 0.05
_MAX_CELLS = 4_000_000  # entries of one chunk of the count matrix (32 MB as float64)


@dataclass(frozen=True)
class Difference:
    """other - reference for one metric: point difference on the full test set, reference and other
    values, the percentile interval [low, high] at `level`, the two-sided p-value, replicates used;
    over `n_seeds` paired training seeds, the values and the difference are means over the seeds."""

    reference: float
    other: float
    diff: float
    low: float
    high: float
    p_value: float
    n_boot: int
    level: float = 0.95
    n_seeds: int = 1

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
    return pooled_paired_bootstrap([reference], [other], n_boot=n_boot, seed=seed, level=level)


def pooled_paired_bootstrap(references: Sequence[dict[str, tuple[np.ndarray, np.ndarray]]],
                            others: Sequence[dict[str, tuple[np.ndarray, np.ndarray]]],
                            *, n_boot: int = 1000, seed: int = 0,
                            level: float = 0.95) -> dict[str, Difference | None]:
    """Two-way bootstrap of other - reference over k paired training seeds and the test units (module
    docstring); k = 1 is :func:`paired_bootstrap`.

    Args:
        references, others: k :func:`ratio_terms` each, pair s = the two models trained with the same
            seed; every one over the SAME units in the same order ({metric: (num [m], den [m])}).
        n_boot: replicates B (>= 1). seed: ``np.random.default_rng(seed)`` draws the units,
            ``np.random.default_rng([seed, 1])`` the seeds. level: interval coverage.

    Returns:
        {metric: Difference (means over the seeds), or None when any run lacks the metric}.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    k = len(references)
    if k == 0 or len(others) != k:
        raise ValueError("need one `other` per `reference`, at least one pair")
    tested = paired_metrics()
    names = [name for name in tested if all(name in terms for terms in (*references, *others))]
    m = len(next(iter(references[0].values()))[0])
    if m == 0:
        raise ValueError("no units to resample")
    for name in names:
        for terms in (*references, *others):
            if any(np.shape(a) != (m,) for a in terms[name]):
                raise ValueError(f"{name}: every term must have shape ({m},)")
    empty = np.array([METRICS[name].empty for name in names])
    # columns: per seed, per metric: reference num, reference den, other num, other den -> T [m, k * 4K]
    table = np.column_stack([a for ref, oth in zip(references, others) for name in names
                             for a in (*ref[name], *oth[name])])
    n_names = len(names)
    full = table.sum(axis=0).reshape(k, n_names, 4)
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS // m)
    sums = np.concatenate([bootstrap_counts(m, min(chunk, n_boot - start), rng) @ table
                           for start in range(0, n_boot, chunk)]).reshape(n_boot, k, n_names, 4)
    weights = (np.ones((n_boot, k)) if k == 1
               else bootstrap_counts(k, n_boot, np.random.default_rng([seed, 1])))   # V [B, k]
    ref_full = _ratio(full[..., 0], full[..., 1], empty)        # [k, K]
    other_full = _ratio(full[..., 2], full[..., 3], empty)
    per_seed = _ratio(sums[..., 2], sums[..., 3], empty) - _ratio(sums[..., 0], sums[..., 1], empty)  # [B, k, K]
    deltas = np.einsum("bs,bsj->bj", weights, per_seed) / k   # [B, K]
    out: dict[str, Difference | None] = dict.fromkeys(tested)
    tail = 100 * (1 - level) / 2
    for j, name in enumerate(names):
        reference, other = float(ref_full[:, j].mean()), float(other_full[:, j].mean())
        low, high = np.percentile(deltas[:, j], [tail, 100 - tail])
        out[name] = Difference(reference=reference, other=other, diff=float((other_full[:, j] - ref_full[:, j]).mean()),
                               low=float(low), high=float(high), p_value=p_value(deltas[:, j]), n_boot=n_boot,
                               level=level, n_seeds=k)
    return out
