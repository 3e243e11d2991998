"""Hand-checkable pieces of the reference models."""

from __future__ import annotations

import numpy as np

from baselines.popular import jaccard_by_k, rank_scores


def test_jaccard_by_k_by_hand():
    targets = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    order = np.array([0, 1, 2])
    # k=1: {0} vs {0,1} -> 1/2, vs {0} -> 1 ; k=2: {0,1} -> 1, vs {0} -> 1/2 ; k=3: 2/3 and 1/3
    np.testing.assert_allclose(jaccard_by_k(targets, order), [0.75, 0.75, 0.5])


def test_rank_scores_put_exactly_top_k_above_half():
    order = np.array([2, 0, 3, 1])
    scores = rank_scores(order, k=2)
    assert set(np.flatnonzero(scores >= 0.5)) == {2, 0}
    assert list(np.argsort(-scores)) == list(order)
    assert scores.min() > 0 and scores.max() < 1


def test_logreg_without_previous_drugs_ignores_medication_history():
    from baselines.logreg import LogReg
    from bench.data import make_samples
    from bench.loading import build_resources, load_bundle

    bundle = load_bundle("synthetic-small")
    samples = [s for s in make_samples(bundle.patients, "every") if s.index > 0][:20]
    resources = build_resources(bundle, bundle.patients, LogReg.needs)
    with_history = LogReg.from_options({}, resources).features(samples).numpy()
    without = LogReg.from_options({"previous_drugs": "false"}, resources).features(samples).numpy()
    n_drugs = resources.n_drugs
    assert with_history[:, -n_drugs:].sum() > 0 and not without[:, -n_drugs:].any()
    np.testing.assert_array_equal(with_history[:, :-n_drugs], without[:, :-n_drugs])
