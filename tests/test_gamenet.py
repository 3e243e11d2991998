"""GAMENet's pieces on hand-checkable inputs, and a tiny end-to-end fit through the common interface."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.gamenet import (GAMENet, GAMENetConfig, GAMENetModule, ddi_loss, ddi_loss_mask, ddi_loss_probability,
                               normalized_adjacency, temperature_at)
from baselines.visits import VisitEncoder, ddi_pair_counts
from bench.data import Patient, Sample, Visit, Vocab, make_samples
from bench.loading import build_resources
from bench.progress import Progress
from bench.splits import split_patients


def test_ddi_loss_is_zero_without_edges_and_positive_with_one():
    probs = torch.tensor([[0.5, 0.5, 1.0], [0.2, 0.0, 0.0]])
    assert ddi_loss(probs, torch.zeros(3, 3)).tolist() == [0.0, 0.0]
    adj = torch.zeros(3, 3)
    adj[0, 1] = adj[1, 0] = 1.0
    # sample 1: p^T A p = 2 * 0.5 * 0.5 = 0.5, divided by D^2 = 9; sample 2: no interacting mass
    assert ddi_loss(probs, adj).tolist() == pytest.approx([0.5 / 9, 0.0])
    ddi, pairs = ddi_pair_counts(torch.tensor([[True, True, True], [True, False, False]]), adj)
    assert ddi.tolist() == [1.0, 0.0] and pairs.tolist() == [3.0, 0.0]   # DDI rates 1/3 and 0


def test_temperature_schedule():
    assert [temperature_at(k) for k in range(3)] == pytest.approx([0.5, 0.425, 0.36125])
    for k in range(10):
        assert temperature_at(k, 0.5, 0.85) == pytest.approx(0.5 * 0.85 ** k)


def test_ddi_loss_probability():
    assert ddi_loss_probability(0.05, 0.05, 0.5) == 0.0          # at the target: accuracy loss only
    assert ddi_loss_probability(0.01, 0.05, 0.5) == 0.0
    assert ddi_loss_probability(0.15, 0.05, 0.5) == pytest.approx(math.exp(-0.2))
    assert ddi_loss_probability(0.15, 0.05, 0.1) == pytest.approx(math.exp(-1.0))  # colder: rarer
    assert ddi_loss_probability(0.0501, 0.05, 0.5) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(ddi_loss_probability(np.array([0.0, 0.15]), 0.05, 0.5), [0.0, math.exp(-0.2)])
    assert ddi_loss_probability(0.0, 0.05, 1e-9) == 0.0                 # no overflow when cold


def test_ddi_loss_mask_decides_per_sample_with_a_seeded_generator():
    rates = np.array([0.0, 0.5, 0.04, 0.9])
    mask = ddi_loss_mask(rates, 0.05, 1e6, np.random.default_rng(0))   # hot: p ~ 1 above the target
    assert mask.tolist() == [False, True, False, True]
    draws = [ddi_loss_mask(np.full(1000, 0.15), 0.05, 0.5, np.random.default_rng(s)) for s in (1, 1)]
    np.testing.assert_array_equal(*draws)
    assert draws[0].mean() == pytest.approx(math.exp(-0.2), abs=0.04)


def test_normalized_adjacency_rows():
    adj = normalized_adjacency(np.array([[0, 2, 0], [2, 0, 0], [0, 0, 0]], dtype=np.float32)).numpy()
    np.testing.assert_allclose(adj, [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(adj.sum(axis=1), 1.0)


def test_dynamic_read_is_zero_without_history_and_attends_to_earlier_visits():
    query = torch.tensor([[1.0, 0.0], [1.0, 0.0]], requires_grad=True)
    keys = torch.tensor([[[5.0, 0.0], [0.0, 0.0], [0.0, 0.0]],    # single-visit sample: only its current visit
                         [[2.0, 0.0], [0.0, 0.0], [9.0, 9.0]]])   # two earlier visits, then the current one
    values = torch.tensor([[[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]],
                           [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    out = GAMENetModule.dynamic_read(query, keys, values, torch.tensor([0, 2]))
    weight = math.exp(2.0) / (math.exp(2.0) + 1.0)                 # softmax over scores (2, 0)
    np.testing.assert_allclose(out.detach().numpy(), [[0.0, 0.0], [weight, 1 - weight]], rtol=1e-6)
    out.sum().backward()
    assert torch.isfinite(query.grad).all() and query.grad[0].abs().sum() == 0


def test_single_visit_sample_ignores_everything_but_its_visit():
    vocabs = {"diagnosis": Vocab(["d0", "d1"]), "procedure": Vocab(["p0"]), "drug": Vocab(["A", "B", "C"])}
    single = Patient(1, (Visit(1, ("d0",), ("p0",), ("A",)),))
    longer = Patient(2, (Visit(2, ("d0",), ("p0",), ("A",)), Visit(3, ("d1",), ("p0",), ("B", "C"))))
    torch.manual_seed(0)
    module = GAMENetModule(2, 1, normalized_adjacency(np.ones((3, 3))), normalized_adjacency(np.eye(3)),
                           GAMENetConfig(dim=4)).eval()
    encoder = VisitEncoder(vocabs)
    alone = module(encoder.encode([Sample(single, 0)]))
    padded = module(encoder.encode([Sample(single, 0), Sample(longer, 1)]))  # padded to 2 visits
    np.testing.assert_allclose(padded[0].detach().numpy(), alone[0].detach().numpy(), rtol=1e-6)


def test_config_checks():
    with pytest.raises(ValueError, match="dropout"):
        GAMENetConfig(dropout=1.0)
    with pytest.raises(ValueError, match="temperature"):
        GAMENetConfig(temperature=0.0)
    with pytest.raises(ValueError, match="ddi_decision"):
        GAMENetConfig(ddi_decision="visit")


def _fit(small_bundle, **options):
    split = split_patients(small_bundle.patients, "random", seed=0)
    train, valid = make_samples(split.train, "every"), make_samples(split.valid, "last")
    resources = build_resources(small_bundle, split.train, GAMENet.needs)
    model = GAMENet.from_options({"epochs": "3", "dim": "8", "patience": "5", **options}, resources)
    report = model.fit(train, valid, seed=3, progress=Progress())
    return model, report, make_samples(split.test, "last")


def test_fit_is_deterministic_and_follows_the_schedule(small_bundle):
    model, report, test = _fit(small_bundle)
    again, _, _ = _fit(small_bundle)
    np.testing.assert_array_equal(model.predict_proba(test), again.predict_proba(test))
    assert [h["temperature"] for h in report.history] == pytest.approx([0.5, 0.425, 0.36125])
    assert any(s.is_single_visit for s in test)
    assert "ddi_memory_weight" in report.notes


def test_ddi_loss_switch(small_bundle):
    _, hot, _ = _fit(small_bundle, target_ddi="0", temperature="100", epochs="1", ddi_decision="batch")
    assert hot.history[0]["ddi_loss_share"] > 0.5                   # exp(-rate / 100) ~ 1
    _, per_sample, _ = _fit(small_bundle, target_ddi="0", temperature="100", epochs="1")
    assert per_sample.history[0]["ddi_loss_share"] > 0.5
    _, off, _ = _fit(small_bundle, use_ddi_loss="false", ddi_in_memory="false", epochs="1")
    assert off.history[0]["ddi_loss_share"] == 0 and "ddi_memory_weight" not in off.notes


def test_visit_encoding_over_real_codes_equals_the_padded_one(small_bundle):
    """The default computation (real codes only, stacked GRUs, bench.tensor_ops dropout) and the
    previous padded one (kept for the speed benchmark) are the same network: equal outputs in eval
    mode, equal gradients without dropout."""
    split = split_patients(small_bundle.patients, "random", seed=0)
    samples = make_samples(split.train, "every")[:48]
    resources = build_resources(small_bundle, split.train, GAMENet.needs)
    model = GAMENet.from_options({"dim": "8", "dropout": "0", "gcn_dropout": "0"}, resources)
    batch = model.encoder.encode(samples)
    assert batch.diagnoses.shape[1] > 1 and (batch.diagnoses == 0).any()        # padded both ways
    new = model.module
    old = GAMENetModule(len(resources.vocabs["diagnosis"]), len(resources.vocabs["procedure"]), new.ehr_gcn.adj,
                        new.ddi_gcn.adj, model.config, padded_codes=True)
    old.load_state_dict(new.state_dict())
    for module in (new, old):
        module.train()
        module(batch).pow(2).sum().backward()
    torch.testing.assert_close(new.eval()(batch), old.eval()(batch), rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(new.named_parameters(), old.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
