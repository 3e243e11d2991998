"""How fast training went (bench.training.fit_minibatch, bench.protocol.FitReport): samples seen, the
seconds of the updates and of the validation passes, and what run.json's `fit` derives from them.
No wall-clock values are asserted: only that they are there, positive and consistent."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from bench.config import TrainingConfig
from bench.data import Patient, Sample, Visit, Vocab, make_samples, target_matrix
from bench.progress import Progress
from bench.protocol import FitReport
from bench.training import fit_minibatch, valid_jaccard


class DrugBias(torch.nn.Module):
    """The tiniest model: one learned score per drug, the same for every sample."""

    def __init__(self, n_drugs: int):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(n_drugs))


def _fit(bundle, *, epochs: int, patience: int, learns: bool) -> tuple[FitReport, list[Sample]]:
    """fit_minibatch on DrugBias over synthetic-small; `learns` False: the validation scores never
    change, so training stops after the first epoch plus `patience`."""
    samples = make_samples(bundle.patients, "last")
    train, valid = samples[:120], samples[120:160]
    targets = torch.from_numpy(target_matrix(train, bundle.drug_vocab).astype(np.float32))
    module = DrugBias(len(bundle.drug_vocab))

    def batch_loss(indices: np.ndarray) -> torch.Tensor:
        rows = targets[torch.from_numpy(indices)]
        return torch.nn.functional.binary_cross_entropy_with_logits(module.bias.expand_as(rows), rows)

    def predict(batch: Sequence[Sample]) -> np.ndarray:
        scores = torch.sigmoid(module.bias).detach().numpy() if learns else np.full(len(bundle.drug_vocab), 0.5)
        return np.tile(scores, (len(batch), 1))

    config = TrainingConfig(lr=0.05, epochs=epochs, batch_size=16, patience=patience)
    report = fit_minibatch(module, config, train=train, valid=valid, batch_loss=batch_loss, predict=predict,
                           drug_vocab=bundle.drug_vocab, seed=0, progress=Progress(), description="fit")
    return report, train


@pytest.mark.parametrize("epochs,patience,learns,expected_epochs", [(4, 10, True, 4), (20, 2, False, 3)],
                         ids=["all epochs", "early stop"])
def test_fit_minibatch_reports_samples_and_seconds(small_bundle, epochs, patience, learns, expected_epochs):
    report, train = _fit(small_bundle, epochs=epochs, patience=patience, learns=learns)
    assert report.epochs == expected_epochs == len(report.history)
    assert report.train_samples == len(train) * report.epochs
    assert report.train_seconds is not None and report.train_seconds > 0
    assert report.valid_seconds is not None and report.valid_seconds > 0
    assert report.train_cpu_seconds is not None and report.train_cpu_seconds > 0
    per_s, share = report.train_samples_per_s(), report.valid_time_share()
    assert per_s is not None and math.isclose(per_s, report.train_samples / report.train_seconds)
    assert share is not None and 0 <= share <= 1
    assert math.isclose(share, report.valid_seconds / (report.train_seconds + report.valid_seconds))


@pytest.mark.parametrize("report,per_s,share", [
    (FitReport(), None, None),                                              # no training by updates
    (FitReport(train_samples=100, train_seconds=2.0), 50.0, None),          # no validation pass
    (FitReport(train_samples=100, train_seconds=3.0, valid_seconds=1.0), 100 / 3, 0.25),
    (FitReport(train_samples=0, train_seconds=0.0, valid_seconds=0.0), None, None),  # nothing measurable
])
def test_derived_rates_are_none_where_they_do_not_apply(report, per_s, share):
    assert report.train_samples_per_s() == (pytest.approx(per_s) if per_s is not None else None)
    assert report.valid_time_share() == share


@pytest.mark.parametrize("fused", [True, False], ids=["fused Adam", "loop Adam"])
def test_validation_sees_every_update_through_a_parameter_cache(small_bundle, fused):
    """A value cached from the weights (bench.torch_model.ParameterCache, e.g. SafeDrug's molecule
    encodings) is recomputed after every optimiser step: torch's fused Adam writes the weights without
    bumping their version counters, so fit_minibatch bumps them."""
    from bench.torch_model import ParameterCache

    samples = make_samples(small_bundle.patients, "last")
    train, valid = samples[:64], samples[64:80]
    targets = torch.from_numpy(target_matrix(train, small_bundle.drug_vocab).astype(np.float32))
    module, cache = DrugBias(len(small_bundle.drug_vocab)), ParameterCache()
    seen = []

    def batch_loss(indices: np.ndarray) -> torch.Tensor:
        rows = targets[torch.from_numpy(indices)]
        return torch.nn.functional.binary_cross_entropy_with_logits(module.bias.expand_as(rows), rows)

    def predict(batch: Sequence[Sample]) -> np.ndarray:
        scores = cache.get(module, lambda: torch.sigmoid(module.bias).detach().clone())
        seen.append(torch.equal(scores, torch.sigmoid(module.bias).detach()))
        return np.tile(scores.numpy(), (len(batch), 1))

    config = TrainingConfig(lr=0.05, epochs=3, batch_size=16, patience=5)
    fit_minibatch(module, config, train=train, valid=valid, batch_loss=batch_loss, predict=predict,
                  drug_vocab=small_bundle.drug_vocab, seed=0, progress=Progress(), description="fit", fused_adam=fused)
    assert seen == [True, True, True]


def test_valid_jaccard_by_hand():
    vocab = Vocab(["A", "B", "C"])
    patients = [Patient(i, (Visit(i, ("d",), ("p",), drugs),)) for i, drugs in enumerate([("A", "B"), ("C",), ()])]
    valid = make_samples(patients, "last")
    predicted = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 0]], dtype=np.float32)
    # {A, C} vs {A, B}: 1/3; {C} vs {C}: 1; both empty: 0 (as bench.metrics)
    assert valid_jaccard(lambda s: predicted[:len(s)], valid, vocab) == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert math.isnan(valid_jaccard(lambda s: predicted, [], vocab))


def test_early_stopping_on_jaccard_records_it_instead_of_prauc(small_bundle):
    """valid_metric="jaccard": the history holds valid_jaccard, best_valid_prauc stays None and the
    notes hold the best Jaccard; scores that never change stop training after 1 + patience epochs."""
    samples = make_samples(small_bundle.patients, "last")
    train, valid = samples[:64], samples[64:80]
    module = DrugBias(len(small_bundle.drug_vocab))
    everything = np.ones(len(small_bundle.drug_vocab), dtype=np.float32)   # predict every drug
    truth = target_matrix(valid, small_bundle.drug_vocab)
    config = TrainingConfig(lr=0.05, epochs=10, batch_size=16, patience=2)
    report = fit_minibatch(module, config, train=train, valid=valid, batch_loss=lambda i: module.bias.sum() * 0.0,
                           predict=lambda batch: np.tile(everything, (len(batch), 1)),
                           drug_vocab=small_bundle.drug_vocab, seed=0, progress=Progress(), description="fit",
                           valid_metric="jaccard")
    expected = float((truth.sum(axis=1) / truth.shape[1]).mean())        # |T| / |all drugs| per sample
    assert report.epochs == 3 and report.best_epoch == 1 and report.best_valid_prauc is None
    assert [h["valid_jaccard"] for h in report.history] == pytest.approx([expected] * 3)
    assert "valid_prauc" not in report.history[0] and report.notes["best_valid_jaccard"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="valid_metric"):
        fit_minibatch(module, config, train=train, valid=valid, batch_loss=lambda i: module.bias.sum(),
                      predict=lambda batch: np.tile(everything, (len(batch), 1)), drug_vocab=small_bundle.drug_vocab,
                      seed=0, progress=Progress(), description="fit", valid_metric="f1")
