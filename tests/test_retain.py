"""RETAIN's pieces on hand-checkable inputs, the reverse-time attention against a per-sample
computation, and a fit that learns a simple rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.retain import RETAIN, RETAINConfig, RETAINModule, reverse_visits
from baselines.visits import VisitEncoder
from bench.config import apply_overrides
from bench.data import Patient, Sample, Visit, Vocab, make_samples, target_matrix
from bench.errors import UserError
from bench.metrics import average_precision_rows
from bench.progress import Progress
from bench.protocol import Resources
from tests.toy_cohort import rule_cohort

VOCABS = {"diagnosis": Vocab(["d0", "d1", "d2"]), "procedure": Vocab(["p0"]), "drug": Vocab(["A", "B"])}
PATIENT = Patient(1, (Visit(1, ("d0",), ("p0",), ("A",)), Visit(2, ("d1", "d2"), ("p0",), ("A", "B")),
                      Visit(3, ("d2",), (), ("B",))))


def _module(dim: int = 2, seed: int = 0) -> RETAINModule:
    torch.manual_seed(seed)
    return RETAINModule(3, 1, 2, RETAINConfig(dim=dim, dropout=0.0)).eval()


def test_reverse_visits_keeps_padding_in_place():
    x = torch.tensor([[10, 11, 12], [20, 21, 0]]).unsqueeze(-1)              # [B=2, V=3, 1]
    out = reverse_visits(x, torch.tensor([3, 2])).squeeze(-1)
    assert out.tolist() == [[12, 11, 10], [21, 20, 0]]


def test_visit_vectors_sum_codes_and_earlier_drugs_only():
    module = _module()
    with torch.no_grad():
        module.diagnosis_embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [4.0, 0.0]]))
        module.procedure_embedding.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
        module.drug_embedding.weight.copy_(torch.tensor([[0.0, 10.0], [0.0, 100.0]]))
    vectors = module.visit_vectors(VisitEncoder(VOCABS).encode([Sample(PATIENT, 2)]))
    # visit 0: d0 + p0 + drug A; visit 1: d1 + d2 + p0 + A + B; visit 2 (current): d2 only, its drug B hidden
    assert vectors[0].tolist() == [[1.0, 11.0], [6.0, 111.0], [4.0, 0.0]]


def test_single_visit_by_hand():
    module = _module()
    batch = VisitEncoder(VOCABS).encode([Sample(PATIENT, 0)])
    alpha, beta, v = module.attention(batch)
    assert alpha.tolist() == [[1.0]]
    v0 = module.visit_vectors(batch)[0, 0]
    h0 = module.beta_gru(v0.view(1, 1, -1))[0].view(-1)                       # one GRU step from zero
    expected = module.output(torch.tanh(module.beta(h0)) * v0)
    torch.testing.assert_close(module(batch)[0], expected)


def test_batched_forward_equals_one_sample_at_a_time():
    """Padding, per-sample reversal, the masked softmax and the stacked GRUs against torch.nn.GRU run
    on each sample's own reversed visits."""
    module = _module(dim=4, seed=1)
    samples = [Sample(PATIENT, 2), Sample(PATIENT, 0), Sample(PATIENT, 1)]
    batch = VisitEncoder(VOCABS).encode(samples)
    got = module(batch)
    for row, sample in enumerate(samples):
        v = module.visit_vectors(VisitEncoder(VOCABS).encode([sample]))[0].flip(0)   # [n, d], newest first
        g = module.alpha_gru(v.unsqueeze(0))[0][0]
        h = module.beta_gru(v.unsqueeze(0))[0][0]
        alpha = torch.softmax(module.alpha(g).squeeze(-1), dim=0)
        context = (alpha.unsqueeze(-1) * torch.tanh(module.beta(h)) * v).sum(0)
        torch.testing.assert_close(got[row], module.output(context), rtol=1e-5, atol=1e-6)
    alpha = module.attention(batch)[0]
    torch.testing.assert_close(alpha.sum(1), torch.ones(3))
    assert alpha[1, 1:].abs().sum() == 0 and alpha[2, 2] == 0                # zero at the padding


def test_reverse_time_current_visit_attention_ignores_older_visits():
    """In reverse time the GRU reaches the current visit first: changing the OLDEST visit moves only
    its own attention logit, so the current / previous alpha ratio stays (a forward GRU breaks this)."""
    module = _module(dim=4, seed=2)
    changed = Patient(2, (Visit(1, ("d1",), (), ("B",)),) + PATIENT.visits[1:])
    encoder = VisitEncoder(VOCABS)
    a = module.attention(encoder.encode([Sample(PATIENT, 2)]))[0][0]
    b = module.attention(encoder.encode([Sample(changed, 2)]))[0][0]
    torch.testing.assert_close(a[0] / a[1], b[0] / b[1])
    assert not torch.allclose(a[2] / a[0], b[2] / b[0])


def test_config_checks():
    with pytest.raises(ValueError, match="dropout"):
        RETAINConfig(dropout=1.0)
    with pytest.raises(UserError, match="embedding_init"):
        apply_overrides(RETAINConfig, {"embedding_init": "xavier"}, owner="model retain")


def _fit(patients, vocabs, **options) -> tuple[RETAIN, list[Sample]]:
    train, valid = make_samples(patients[:120], "every"), make_samples(patients[120:135], "last")
    model = RETAIN.from_options({"dim": "16", "dropout": "0", **options}, Resources(vocabs=vocabs))
    report = model.fit(train, valid, seed=0, progress=Progress())
    assert report.epochs >= 1 and "valid_current_visit_alpha" in report.notes
    return model, make_samples(patients[135:], "last")


def test_fit_learns_a_rule_and_is_deterministic():
    patients, vocabs = rule_cohort(150)
    model, test = _fit(patients, vocabs, epochs="40", lr="0.01")
    scores = model.predict_proba(test)
    assert average_precision_rows(target_matrix(test, vocabs["drug"]), scores).mean() > 0.95
    again, _ = _fit(patients, vocabs, epochs="40", lr="0.01")
    np.testing.assert_array_equal(again.predict_proba(test), scores)
    attention = model.visit_attention(test)
    np.testing.assert_allclose(attention.sum(1), 1.0, rtol=1e-5)
