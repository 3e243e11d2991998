"""Tests for bench.metrics (hand-computed cases and sklearn cross-checks)."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, jaccard_score

from bench.metrics import METRICS, aggregate, evaluate, per_sample_metrics


def onehot(sets, d):
    y = np.zeros((len(sets), d), dtype=bool)
    for i, s in enumerate(sets):
        y[i, list(s)] = True
    return y


def no_ddi(d):
    return np.zeros((d, d), dtype=bool)


def test_metric_spec_order():
    assert list(METRICS) == ["jaccard", "f1", "prauc", "ddi_rate", "ddi_rate_true", "avg_drugs", "ddi_coverage",
                             "ddi_coverage_true"]
    assert METRICS["ddi_rate"].higher_is_better is False
    assert METRICS["avg_drugs"].higher_is_better is None
    assert METRICS["prauc"].needs == ("scores",)
    assert METRICS["ddi_rate"].parts == ("ddi_pairs", "all_pairs")  # pooled, not a mean per sample
    assert METRICS["avg_drugs"].parts == ("avg_drugs", "n_visits")
    assert METRICS["jaccard"].parts is None


def test_hand_computed_sets():
    d = 5
    # row 0: T={0,1,2}, P={1,2,3}: |I|=2, |U|=4 -> jaccard 2/4; p=2/3, r=2/3 -> f1 2/3
    # row 1: T={}, P={}: jaccard 0/0 -> 0; p=0 (nothing predicted), r=0 -> f1 0
    # row 2: T={0,4}, P={}: jaccard 0/2 = 0; empty prediction -> f1 0
    # row 3: T={0}, P={0,1,2,3}: jaccard 1/4; p=1/4, r=1 -> f1 = 2*(1/4)/(5/4) = 2/5
    y_true = onehot([{0, 1, 2}, set(), {0, 4}, {0}], d)
    y_pred = onehot([{1, 2, 3}, set(), set(), {0, 1, 2, 3}], d)
    ps = per_sample_metrics(y_true, y_pred, None, no_ddi(d))
    np.testing.assert_allclose(ps["jaccard"], [2 / 4, 0, 0, 1 / 4])
    np.testing.assert_allclose(ps["f1"], [2 / 3, 0, 0, 2 / 5])
    np.testing.assert_allclose(ps["avg_drugs"], [3, 0, 0, 4])
    assert "prauc" not in ps
    agg = aggregate(ps)
    assert agg["jaccard"] == pytest.approx((0.5 + 0.25) / 4)
    assert agg["avg_drugs"] == pytest.approx(7 / 4)


def test_prauc_hand_computed_with_ties():
    # T={0,2}; scores 0.9 (pos), 0.5 (neg), 0.5 (pos), 0.1 (neg)
    # thresholds: 0.9 -> P=1, R=1/2; 0.5 (tie, both taken) -> P=2/3, R=1; 0.1 -> R unchanged
    # AP = 1/2*1 + 1/2*2/3 = 5/6 (precision at the tie is read after the whole tie run)
    y_true = onehot([{0, 2}, set()], 4)
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.3, 0.2, 0.1, 0.0]])
    ps = per_sample_metrics(y_true, scores >= 0.5, scores, no_ddi(4))
    np.testing.assert_allclose(ps["prauc"], [5 / 6, 0.0])  # no positives -> 0.0


def test_ddi_pooled_by_hand():
    d = 4
    adj = no_ddi(d)
    adj[0, 1] = adj[1, 0] = True
    # A predicts {0,1,2}: pairs 01,02,12 = 3, edge 0-1 -> 1 interacting; B predicts {3}: 0 pairs
    # pooled = (1 + 0) / (3 + 0) = 1/3
    # truth: A {0,1}: 1 pair, interacting; B {2,3}: 1 pair, none -> 1/2
    y_pred = onehot([{0, 1, 2}, {3}], d)
    y_true = onehot([{0, 1}, {2, 3}], d)
    ps = per_sample_metrics(y_true, y_pred, None, adj)
    np.testing.assert_allclose(ps["ddi_pairs"], [1, 0])
    np.testing.assert_allclose(ps["all_pairs"], [3, 0])
    agg = aggregate(ps)
    assert agg["ddi_rate"] == pytest.approx(1 / 3)
    assert agg["ddi_rate_true"] == pytest.approx(1 / 2)
    # only B selected: no pairs at all -> 0
    assert aggregate(ps, np.array([1]))["ddi_rate"] == 0.0
    # A twice (with replacement) and B once: (1+1)/(3+3) still 1/3; truth (1+1+0)/(1+1+1) = 2/3
    agg2 = aggregate(ps, np.array([0, 0, 1]))
    assert agg2["ddi_rate"] == pytest.approx(1 / 3)
    assert agg2["ddi_rate_true"] == pytest.approx(2 / 3)


def _random_case(rng, n=200, d=12, decimals=1):
    y_true = rng.random((n, d)) < 0.3
    scores = np.round(rng.random((n, d)), decimals)  # many ties
    return y_true, scores


def test_prauc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    y_true, scores = _random_case(rng)
    y_true[:10] = False
    y_true[np.arange(10), rng.integers(0, 12, 10)] = True  # rows with a single positive
    y_true[10:15] = True  # all positive
    y_true[15:20] = False  # no positive -> 0.0
    scores[20:25] = 0.5  # all tied
    ps = per_sample_metrics(y_true, scores >= 0.5, scores, no_ddi(12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [
            average_precision_score(t, s) if t.any() else 0.0 for t, s in zip(y_true, scores)
        ]
    np.testing.assert_allclose(ps["prauc"], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ps["prauc"][15:20], 0.0)


def test_jaccard_f1_match_sklearn():
    rng = np.random.default_rng(2)
    y_true, scores = _random_case(rng, decimals=3)
    y_pred = scores >= 0.5
    y_true[:5] = False  # 0/0 and empty-target rows
    y_pred[3:8] = False  # empty predictions
    ps = per_sample_metrics(y_true, y_pred, scores, no_ddi(12))
    # sklearn with zero_division=0 gives 0 for empty-union rows, same as our definition
    assert ps["jaccard"].mean() == pytest.approx(
        jaccard_score(y_true, y_pred, average="samples", zero_division=0)
    )
    assert ps["f1"].mean() == pytest.approx(f1_score(y_true, y_pred, average="samples", zero_division=0))
    both = y_true.any(1) & y_pred.any(1)
    assert ps["f1"][both].mean() == pytest.approx(f1_score(y_true[both], y_pred[both], average="samples"))


def test_threshold_changes_predictions():
    y_true = onehot([{0, 1}], 3)
    scores = np.array([[0.9, 0.4, 0.2]])
    low = evaluate(y_true, scores, threshold=0.3, ddi_adj=no_ddi(3), rounds=0)["all"]["point"]
    high = evaluate(y_true, scores, ddi_adj=no_ddi(3), rounds=0)["all"]["point"]
    assert low["jaccard"] == pytest.approx(1.0) and low["avg_drugs"] == 2  # P={0,1}
    assert high["jaccard"] == pytest.approx(0.5) and high["avg_drugs"] == 1  # P={0}
    assert low["prauc"] == high["prauc"] == pytest.approx(1.0)


def test_groups_and_empty_group():
    y_true = onehot([{0}, {1}, {0, 1}], 3)
    y_pred = onehot([{0}, {0}, {0, 1}], 3)
    groups = {"all": np.ones(3, bool), "first": np.array([True, False, False]), "none": np.zeros(3, bool)}
    res = evaluate(y_true, y_pred=y_pred, ddi_adj=no_ddi(3), groups=groups, rounds=3)
    assert res["all"]["n"] == 3 and res["all"]["point"]["jaccard"] == pytest.approx(2 / 3)
    assert res["first"]["point"]["jaccard"] == pytest.approx(1.0)
    assert res["none"]["n"] == 0
    assert all(v is None for v in res["none"]["point"].values())
    assert all(v == {"mean": None, "std": None} for v in res["none"]["metrics"].values())
    assert list(res["all"]["metrics"]) == list(METRICS)


def test_y_pred_only_gives_prauc_none():
    y_true = onehot([{0}, {1}], 2)
    res = evaluate(y_true, y_pred=np.array([[1, 0], [1, 1]]), ddi_adj=no_ddi(2), rounds=2)["all"]
    assert res["point"]["prauc"] is None
    assert res["metrics"]["prauc"] == {"mean": None, "std": None}
    assert res["point"]["jaccard"] == pytest.approx((1 + 0.5) / 2)
    assert res["metrics"]["jaccard"]["mean"] is not None


def test_resampling_seeds_and_full_fraction():
    rng = np.random.default_rng(3)
    y_true, scores = _random_case(rng, n=60)
    adj = np.triu(rng.random((12, 12)) < 0.2, 1)
    adj = adj | adj.T
    kw = dict(ddi_adj=adj, ddi_known=adj.any(axis=1) | (rng.random(12) < 0.5), rounds=5)
    a = evaluate(y_true, scores, seed=7, **kw)
    b = evaluate(y_true, scores, seed=7, **kw)
    c = evaluate(y_true, scores, seed=8, **kw)
    assert a == b
    assert a["all"]["metrics"]["jaccard"] != c["all"]["metrics"]["jaccard"]
    boot = evaluate(y_true, scores, replace=True, seed=7, **kw)
    assert boot["all"]["metrics"]["jaccard"] != a["all"]["metrics"]["jaccard"]
    full = evaluate(y_true, scores, fraction=1.0, **kw)["all"]
    for k in METRICS:
        assert full["metrics"][k]["mean"] == pytest.approx(full["point"][k], abs=1e-12)
        assert full["metrics"][k]["std"] == pytest.approx(0.0, abs=1e-12)


def test_patient_averaging_by_hand():
    # patient 1: two samples, jaccard 1.0 and 0.0 -> 0.5; patient 2: one sample 1.0
    # per patient: (0.5 + 1.0) / 2 = 0.75; per sample: (1 + 0 + 1) / 3 = 2/3
    y_true = onehot([{0}, {1}, {2}], 3)
    y_pred = onehot([{0}, {2}, {2}], 3)
    pids = np.array([1, 1, 2])
    per_patient = evaluate(y_true, y_pred=y_pred, ddi_adj=no_ddi(3), patient_ids=pids, rounds=0)
    per_sample = evaluate(y_true, y_pred=y_pred, ddi_adj=no_ddi(3), rounds=0)
    assert per_patient["all"]["point"]["jaccard"] == pytest.approx(0.75)
    assert per_sample["all"]["point"]["jaccard"] == pytest.approx(2 / 3)
    # avg_drugs stays drugs per visit (med_cnt / visit_cnt): 3 drugs / 3 visits
    assert per_patient["all"]["point"]["avg_drugs"] == pytest.approx(1.0)
    # resampling patients with fraction 1 and no replacement reproduces the point value
    full = evaluate(y_true, y_pred=y_pred, ddi_adj=no_ddi(3), patient_ids=pids, fraction=1.0, rounds=3)
    assert full["all"]["metrics"]["jaccard"]["mean"] == pytest.approx(0.75)
    assert full["all"]["metrics"]["jaccard"]["std"] == pytest.approx(0.0)


def test_validation_errors():
    y = onehot([{0}], 3)
    with pytest.raises(ValueError, match="exactly one"):
        evaluate(y, ddi_adj=no_ddi(3))
    with pytest.raises(ValueError, match="exactly one"):
        evaluate(y, np.zeros((1, 3)), y_pred=y, ddi_adj=no_ddi(3))
    with pytest.raises(ValueError, match="shape"):
        evaluate(y, np.zeros((1, 4)), ddi_adj=no_ddi(3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate(y, np.full((1, 3), 1.5), ddi_adj=no_ddi(3))
    with pytest.raises(ValueError, match="ddi_adj"):
        evaluate(y, np.zeros((1, 3)), ddi_adj=no_ddi(4))
    asym = no_ddi(3)
    asym[0, 1] = True
    with pytest.raises(ValueError, match="symmetric"):
        evaluate(y, np.zeros((1, 3)), ddi_adj=asym)
    with pytest.raises(ValueError, match="groups"):
        evaluate(y, np.zeros((1, 3)), ddi_adj=no_ddi(3), groups={"g": np.ones(2, bool)})
