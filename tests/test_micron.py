"""MICRON: the add/remove rule as scores, the first-visit fallback, both representations and the loss
on hand-computed values, and a fit that learns a simple rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.micron import MICRON, MICRONConfig, rule_scores
from bench.config import apply_overrides
from bench.data import Patient, Sample, Visit, Vocab, make_samples, target_matrix
from bench.errors import UserError
from bench.metrics import average_precision_rows
from bench.progress import Progress
from bench.protocol import Resources
from tests.toy_cohort import rule_cohort

VOCABS = {"diagnosis": Vocab(["d0", "d1"]), "procedure": Vocab(["p0"]), "drug": Vocab(["A", "B", "C"])}
DDI = np.array([[0, 0, 1], [0, 0, 0], [1, 0, 0]], dtype=bool)           # A interacts with C
PATIENT = Patient(1, (Visit(1, ("d0",), ("p0",), ("A",)), Visit(2, ("d1",), ("p0",), ("B", "C")),
                      Visit(3, ("d0", "d1"), (), ("B",))))
BIAS = [2.0, -1.0, 0.0]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _constant_model(**options) -> MICRON:
    """A MICRON whose prescription network returns BIAS whatever its input: f(h) = b for every h."""
    model = MICRON.from_options({"dim": "4", **options}, Resources(vocabs=VOCABS, ddi_adj=DDI))
    last = model.module.prescription[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(BIAS))
    model.module.eval()
    return model


def test_rule_scores_by_hand():
    probs = torch.tensor([[0.9, 0.5, 0.1, 0.3], [0.9, 0.5, 0.1, 0.3]])
    previous = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    scores = rule_scores(probs, previous, torch.tensor([True, False]), add_threshold=0.8, remove_threshold=0.2)
    # row 0: A new, 0.9 >= 0.8 -> 0.5 + 0.5 * 0.1 / 0.2; B kept, 0.5 >= 0.2 -> 0.5 + 0.5 * 0.3 / 0.8;
    # C removed, 0.1 < 0.2 -> 0.5 * 0.1 / 0.2; D not added, 0.3 < 0.8 -> 0.5 * 0.3 / 0.8. Row 1: no previous visit.
    torch.testing.assert_close(scores, torch.tensor([[0.75, 0.6875, 0.25, 0.1875], [0.9, 0.5, 0.1, 0.3]]))


def test_rule_scores_at_one_half_are_the_released_update():
    rng = np.random.default_rng(0)
    probs = rng.random((200, 7))
    probs[0, :3] = [0.8, 0.2, 0.5]                                          # exactly at the thresholds
    previous = (rng.random((200, 7)) < 0.4).astype(np.float64)
    expected = previous.copy()                                             # the released update, literally
    expected[probs >= 0.7] = 1
    expected[probs < 0.3] = 0
    scores = rule_scores(torch.from_numpy(probs), torch.from_numpy(previous), torch.ones(200, dtype=torch.bool),
                         add_threshold=0.7, remove_threshold=0.3).numpy()
    np.testing.assert_array_equal(scores >= 0.5, expected.astype(bool))
    assert ((scores >= 0) & (scores <= 1)).all()


@pytest.mark.parametrize("representation", ["chain", "step"])
def test_first_visit_fallback_and_change_rule_by_hand(representation):
    model = _constant_model(representation=representation)
    scores = model.predict_proba([Sample(PATIENT, i) for i in range(3)])
    p1 = [sigmoid(b) for b in BIAS]                                          # first visit: f(h_t) alone
    np.testing.assert_allclose(scores[0], p1, rtol=1e-6)                  # the fallback: p itself
    assert (scores[0] >= 0.5).tolist() == [True, False, True]             # full set from the current visit
    # second visit, both representations: f(h_1) + f(h_2 - h_1) = 2b; previous set {A} (known)
    p2 = [sigmoid(2 * b) for b in BIAS]                                       # 0.982, 0.119, 0.5
    np.testing.assert_allclose(scores[1], [0.5 + 0.5 * (p2[0] - 0.2) / 0.8,    # A kept
                                           0.5 * p2[1] / 0.8,                  # B not added
                                           0.5 * p2[2] / 0.8], rtol=1e-6)      # C not added (0.5 < 0.8)
    # third visit: chain = b + 2 residuals = 3b; step = 2b; previous set {B, C}
    p3 = [sigmoid((3 if representation == "chain" else 2) * b) for b in BIAS]
    np.testing.assert_allclose(scores[2], [0.5 + 0.5 * (p3[0] - 0.8) / 0.2,    # A added (>= 0.8)
                                           0.5 * p3[1] / 0.2,                  # B removed (< 0.2)
                                           0.5 + 0.5 * (p3[2] - 0.2) / 0.8], rtol=1e-6)   # C kept
    assert (scores[2] >= 0.5).tolist() == [True, False, True]
    notes = model.prediction_notes()
    assert notes["samples_with_previous_visit"] == 2
    assert notes["mean_added_at_0.5"] == pytest.approx(0.5) and notes["mean_removed_at_0.5"] == pytest.approx(0.5)


def test_probability_inference_returns_p():
    scores = _constant_model(inference="probability").predict_proba([Sample(PATIENT, 2)])
    np.testing.assert_allclose(scores[0], [sigmoid(3 * b) for b in BIAS], rtol=1e-6)


def test_loss_by_hand():
    model = _constant_model(dropout="0")
    model.module.train()
    first, second = Sample(PATIENT, 0), Sample(PATIENT, 1)
    counts = dict.fromkeys(("samples", "ddi_term_samples", "ddi_pairs", "pairs"), 0.0)
    loss = model.batch_loss(model._pair_encoder.encode([first, second]), counts)
    p, q = [sigmoid(b) for b in BIAS], [sigmoid(2 * b) for b in BIAS]

    def bce(probs, target):
        return -sum(t * math.log(x) + (1 - t) * math.log(1 - x) for x, t in zip(probs, target)) / 3

    def margin(probs, target):   # torch's multilabel margin: over positive j, negative i of max(0, 1 - (x_j - x_i)) / D
        pos = [j for j, t in enumerate(target) if t]
        return sum(max(0.0, 1 - (probs[j] - probs[i])) for j in pos for i in range(3) if i not in pos) / 3

    # the predicted set at 0.5 is {A, C}: one interacting pair of one, rate 1 > 0.08, so the DDI term is on
    ddi = 2 * p[0] * p[2] / 3
    first_loss = 0.25 * 0.75 * bce(p, [1, 0, 0]) + 0.0125 * 0.75 * margin(p, [1, 0, 0]) + 0.25 * ddi
    second_loss = (0.25 * (0.75 * bce(p, [0, 1, 1]) + 0.25 * bce(p, [1, 0, 0]))
                   + 0.0125 * (0.75 * margin(p, [0, 1, 1]) + 0.25 * margin(p, [1, 0, 0]))
                   + 0.25 * ddi + 0.25 * sum((a - b) ** 2 for a, b in zip(p, q)) / 3)
    assert loss.item() == pytest.approx((first_loss + second_loss) / 2, rel=1e-5)
    assert counts["ddi_term_samples"] == 2 and counts["samples"] == 2


def test_config_checks():
    with pytest.raises(ValueError, match="remove_threshold"):
        MICRONConfig(add_threshold=0.3, remove_threshold=0.4)
    with pytest.raises(ValueError, match="max_visits >= 2"):
        MICRONConfig(max_visits=1)
    with pytest.raises(UserError, match="representation"):
        apply_overrides(MICRONConfig, {"representation": "sum"}, owner="model micron")


def _fit(patients, vocabs) -> tuple[MICRON, list[Sample]]:
    train, valid = make_samples(patients[:120], "every"), make_samples(patients[120:135], "last")
    resources = Resources(vocabs=vocabs, ddi_adj=np.zeros((len(vocabs["drug"]),) * 2, dtype=bool))
    model = MICRON.from_options({"dim": "16", "dropout": "0", "epochs": "40", "lr": "0.01"}, resources)
    report = model.fit(train, valid, seed=0, progress=Progress())
    assert {"ddi_term_share", "train_ddi_rate"} <= set(report.history[0])
    return model, make_samples(patients[135:], "every")


def test_fit_learns_a_rule_and_is_deterministic():
    patients, vocabs = rule_cohort(150)
    model, test = _fit(patients, vocabs)
    scores = model.predict_proba(test)
    truth = target_matrix(test, vocabs["drug"])
    assert any(s.index > 0 for s in test) and any(s.index == 0 for s in test)
    assert average_precision_rows(truth, scores).mean() > 0.95
    assert ((scores >= 0.5) == truth).mean() > 0.95                      # the rule's sets, drug by drug
    again, _ = _fit(patients, vocabs)
    np.testing.assert_array_equal(again.predict_proba(test), scores)
