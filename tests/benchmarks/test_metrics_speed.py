"""Metric computation speed: `bench.metrics` (vectorised) against a straightforward per-sample reference
(opt-in: `pytest --benchmark-only`).

Data: 100,000 samples x 150 drugs, seeded: targets ~8% positive, uniform random scores, threshold 0.5,
a random symmetric DDI graph (~5% of pairs). The reference loops over rows as the original GAMENet /
SafeDrug evaluation code does: sklearn's `average_precision_score` per row for PRAUC, Jaccard, F1 and
DDI pairs from Python sets. It takes minutes at full size, so it is timed on the first 2,000 rows and
scaled linearly (its cost is the same for every row); both are checked to give the same values on those
rows. `MEDREC_BENCH_METRIC_ROWS` shrinks the data for a quick try.
"""

from __future__ import annotations

import os
import time
import warnings
from itertools import combinations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from bench.metrics import evaluate, per_sample_metrics

N_ROWS = int(os.environ.get("MEDREC_BENCH_METRIC_ROWS", "100000"))
N_DRUGS = 150
POSITIVE_RATE = 0.08
DDI_DENSITY = 0.05
THRESHOLD = 0.5
RESAMPLING_ROUNDS = 10
REF_ROWS = min(2_000, N_ROWS)
KEYS = ("jaccard", "f1", "prauc", "avg_drugs", "ddi_pairs", "all_pairs", "ddi_pairs_true", "all_pairs_true")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y_true = rng.random((N_ROWS, N_DRUGS)) < POSITIVE_RATE
    scores = rng.random((N_ROWS, N_DRUGS))
    upper = np.triu(rng.random((N_DRUGS, N_DRUGS)) < DDI_DENSITY, k=1)
    return y_true, scores, upper | upper.T


# --------------------------------------------------------------------------- the reference
def reference_per_sample(y_true: np.ndarray, scores: np.ndarray, ddi_adj: np.ndarray) -> dict[str, np.ndarray]:
    """One row at a time: sets for Jaccard / F1 / DDI pairs, sklearn for PRAUC (0.0 without positives)."""
    interacting = {(int(a), int(b)) for a, b in zip(*np.nonzero(ddi_adj))}
    out: dict[str, list[float]] = {k: [] for k in KEYS}
    for truth, score in zip(y_true, scores):
        target = set(np.flatnonzero(truth).tolist())
        predicted = set(np.flatnonzero(score >= THRESHOLD).tolist())
        both, either = len(target & predicted), len(target | predicted)
        precision = both / len(predicted) if predicted else 0.0
        recall = both / len(target) if target else 0.0
        out["jaccard"].append(both / either if either else 0.0)
        out["f1"].append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        out["prauc"].append(average_precision_score(truth, score) if target else 0.0)
        out["avg_drugs"].append(len(predicted))
        for suffix, drugs in (("", predicted), ("_true", target)):
            pairs = list(combinations(sorted(drugs), 2))
            out["ddi_pairs" + suffix].append(sum(pair in interacting for pair in pairs))
            out["all_pairs" + suffix].append(len(pairs))
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def reference_summary(ps: dict[str, np.ndarray], index: np.ndarray) -> dict[str, float]:
    chosen = {k: v[index] for k, v in ps.items()}
    summary = {k: float(np.mean(chosen[k])) for k in ("jaccard", "f1", "prauc", "avg_drugs")}
    for suffix in ("", "_true"):
        pairs = chosen["all_pairs" + suffix].sum()
        summary["ddi_rate" + suffix] = float(chosen["ddi_pairs" + suffix].sum() / pairs) if pairs else 0.0
    return summary


def reference_evaluate(ps: dict[str, np.ndarray], seed: int = 0) -> dict:
    """Point metrics and 10 rounds of 80% resampling without replacement, round by round."""
    n = len(ps["jaccard"])
    rng = np.random.default_rng(seed)
    rounds = [reference_summary(ps, rng.choice(n, size=int(round(0.8 * n)), replace=False))
              for _ in range(RESAMPLING_ROUNDS)]
    return {"point": reference_summary(ps, np.arange(n)),
            "metrics": {k: {"mean": float(np.mean([r[k] for r in rounds])), "std": float(np.std([r[k] for r in rounds]))}
                        for k in rounds[0]}}


@pytest.fixture(scope="module")
def reference(data) -> dict:
    """The reference on the first REF_ROWS rows: its values, and its loop time scaled to N_ROWS."""
    y_true, scores, ddi = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference_per_sample(y_true[:20], scores[:20], ddi)  # warm-up (imports, caches)
        start = time.perf_counter()
        values = reference_per_sample(y_true[:REF_ROWS], scores[:REF_ROWS], ddi)
        measured = time.perf_counter() - start
    return {"values": values, "measured_s": measured, "scaled_s": measured * N_ROWS / REF_ROWS}


def _common_info(reference: dict) -> dict:
    return {"n_samples": N_ROWS, "n_drugs": N_DRUGS, "positive_rate": POSITIVE_RATE, "threshold": THRESHOLD,
            "reference": "per-row loop: sklearn average_precision_score, Jaccard/F1/DDI pairs by Python sets",
            "reference_rows_timed": REF_ROWS, "reference_seconds_measured": reference["measured_s"],
            "reference_scaling": f"linear, x {N_ROWS / REF_ROWS:g}"}


# --------------------------------------------------------------------------- the benchmarks
def test_per_sample_metrics_speed(benchmark, data, reference, speed_note):
    y_true, scores, ddi = data
    y_pred = scores >= THRESHOLD
    result = benchmark.pedantic(per_sample_metrics, args=(y_true, y_pred, scores, ddi), rounds=3, iterations=1)
    for key in KEYS:  # rows are independent: the first REF_ROWS rows must match the reference
        np.testing.assert_allclose(result[key][:REF_ROWS], reference["values"][key], rtol=1e-10, atol=1e-12,
                                   err_msg=key)
    seconds = benchmark.stats.stats.median
    ratio = reference["scaled_s"] / seconds
    benchmark.extra_info.update(_common_info(reference), vectorised_seconds=seconds,
                                reference_seconds_scaled=reference["scaled_s"], speedup=ratio)
    speed_note(f"per-sample metrics, {N_ROWS:,} x {N_DRUGS}: bench.metrics {seconds:.2f} s (median of 3); "
               f"per-row sklearn reference {reference['scaled_s']:.0f} s (timed on {REF_ROWS:,} rows: "
               f"{reference['measured_s']:.2f} s, scaled linearly x{N_ROWS / REF_ROWS:g}) -> {ratio:.0f}x faster")


def test_evaluate_speed(benchmark, data, reference, speed_note):
    y_true, scores, ddi = data
    # same values on the subset: point metrics and every resampling mean / std
    subset = evaluate(y_true[:REF_ROWS], scores[:REF_ROWS], ddi_adj=ddi, rounds=RESAMPLING_ROUNDS, seed=0)["all"]
    expected = reference_evaluate(reference["values"], seed=0)
    for key, value in expected["point"].items():
        np.testing.assert_allclose(subset["point"][key], value, rtol=1e-10, err_msg=key)
        for stat in ("mean", "std"):
            np.testing.assert_allclose(subset["metrics"][key][stat], expected["metrics"][key][stat],
                                       rtol=1e-8, atol=1e-12, err_msg=f"{key} {stat}")

    result = benchmark.pedantic(evaluate, args=(y_true, scores),
                                kwargs={"ddi_adj": ddi, "rounds": RESAMPLING_ROUNDS, "seed": 0}, rounds=3, iterations=1)
    assert result["all"]["n"] == N_ROWS
    seconds = benchmark.stats.stats.median
    # the reference's resampling rounds, timed at full size on per-sample values (identical to the
    # reference's, checked above), plus its per-row loop scaled from the subset
    full = per_sample_metrics(y_true, scores >= THRESHOLD, scores, ddi)
    start = time.perf_counter()
    reference_evaluate(full, seed=0)
    resampling_s = time.perf_counter() - start
    reference_s = reference["scaled_s"] + resampling_s
    ratio = reference_s / seconds
    benchmark.extra_info.update(_common_info(reference), resampling_rounds=RESAMPLING_ROUNDS, vectorised_seconds=seconds,
                                reference_seconds_scaled=reference_s, reference_resampling_seconds=resampling_s,
                                speedup=ratio)
    speed_note(f"evaluate ({RESAMPLING_ROUNDS} resampling rounds), {N_ROWS:,} x {N_DRUGS}: bench.metrics {seconds:.2f} s "
               f"(median of 3); reference {reference_s:.0f} s (per-row loop timed on {REF_ROWS:,} rows, scaled "
               f"linearly x{N_ROWS / REF_ROWS:g}, + {resampling_s:.2f} s resampling at full size) -> {ratio:.0f}x faster")
