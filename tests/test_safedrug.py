"""SafeDrug's pieces on hand-checkable inputs, and a tiny end-to-end fit through the common interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.safedrug import SafeDrug, SafeDrugConfig
from baselines.safedrug_layers import (DDI_LOSS_SCALE, MaskedLinear, MoleculeMPNN, controllable_beta,
                                      controllable_loss, radius1_fingerprints)
from baselines.visits import margin_targets
from bench.data import Patient, Sample, Visit, Vocab, make_samples
from bench.loading import build_resources
from bench.progress import Progress
from bench.protocol import Resources
from bench.splits import split_patients




MASK = torch.tensor([[1.0, 1.0, 0.0],    # drug 0 has substructures 0 and 1
                     [0.0, 0.0, 1.0]])   # drug 1 has substructure 2


def test_masked_layer_drug_sees_only_its_substructures():
    torch.manual_seed(0)
    layer = MaskedLinear(MASK)
    x = torch.rand(4, 3)
    base = layer(x).detach()
    # substructure 2 is outside drug 0's mask: its input and its weight cannot move drug 0
    bumped = x.clone()
    bumped[:, 2] += 5.0
    assert torch.equal(layer(bumped)[:, 0], base[:, 0])
    assert not torch.allclose(layer(bumped)[:, 1], base[:, 1])
    with torch.no_grad():
        layer.weight[2, 0] += 100.0
    assert torch.equal(layer(x)[:, 0], base[:, 0])
    # its masked-out weights get no gradient
    layer(x).sum().backward()
    assert layer.weight.grad[2, 0] == 0 and layer.weight.grad[0, 1] == 0 and layer.weight.grad[0, 0] != 0
    # the hand-computed output
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 7.0], [2.0, 7.0], [7.0, 3.0]]))
        layer.bias.zero_()
    np.testing.assert_allclose(layer(torch.tensor([[1.0, 1.0, 1.0]])).detach().numpy(), [[3.0, 3.0]])


def test_ddi_loss_zero_without_edges_and_positive_with():
    logits = torch.tensor([[4.0, 4.0, -4.0]])            # drugs 0 and 1 predicted: batch DDI rate 1 with an edge
    target, margin = torch.tensor([[1.0, 1.0, 0.0]]), margin_targets(torch.tensor([[1.0, 1.0, 0.0]]))
    no_edges = torch.zeros(3, 3)
    edge = torch.zeros(3, 3)
    edge[0, 1] = edge[1, 0] = 1.0
    loss_free, info_free = controllable_loss(logits, target, margin, no_edges, 0.06, 0.05)
    loss_edge, info_edge = controllable_loss(logits, target, margin, edge, 0.06, 0.05)
    assert info_free == {"ddi_rate": 0.0, "beta": 1.0}
    assert info_edge["ddi_rate"] == 1.0 and info_edge["beta"] == 0.0        # far above target: DDI loss only
    p = torch.sigmoid(torch.tensor(4.0)).item()
    assert loss_edge.item() == pytest.approx(DDI_LOSS_SCALE * 2 * p * p, rel=1e-5)  # ordered pairs (0,1),(1,0)
    assert loss_edge.item() > 0
    # with beta = 0 the loss is the DDI loss alone, which is zero on a graph without edges
    probs = torch.sigmoid(logits)
    assert ((probs @ no_edges) * probs).sum().item() == 0.0


def test_beta_is_max_not_min():
    assert controllable_beta(0.08, 0.06, 0.05) == pytest.approx(0.6)     # min(0, 0.6) would give 0
    assert controllable_beta(0.20, 0.06, 0.05) == 0.0                    # 1 - 2.8 < 0 clamps at 0
    assert controllable_beta(0.06, 0.06, 0.05) == 1.0
    assert controllable_beta(0.11, 0.06, 0.05) == pytest.approx(0.0)


def test_mixed_loss_uses_beta():
    # 3 predicted drugs, 1 interacting pair out of 3: rate 1/3 -> beta clamps to 0; with kp large it mixes
    logits = torch.tensor([[3.0, 3.0, 3.0]])
    target = torch.tensor([[1.0, 0.0, 1.0]])
    margin = margin_targets(target)
    adj = torch.zeros(3, 3)
    adj[0, 1] = adj[1, 0] = 1.0
    pure, _ = controllable_loss(logits, target, margin, torch.zeros(3, 3), 0.06, 10.0)
    mixed, info = controllable_loss(logits, target, margin, adj, 0.06, 10.0)
    beta = 1 + (0.06 - 1 / 3) / 10.0
    p = torch.sigmoid(torch.tensor(3.0)).item()
    assert info["beta"] == pytest.approx(beta)
    assert mixed.item() == pytest.approx(beta * pure.item() + (1 - beta) * DDI_LOSS_SCALE * 2 * p * p, rel=1e-5)


def test_fingerprints_and_mpnn_on_ethanol():
    # C-C-O: atoms (element, aromatic, H), single bonds (type 0)
    x = np.zeros((3, 9), dtype=np.int64)
    x[:, 0], x[:, 4] = [6, 6, 8], [3, 2, 1]
    edges = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])
    prints = radius1_fingerprints(x, edges, np.zeros((4, 3), dtype=np.int64))
    assert prints[0] == ((6, 0, 3), (((6, 0, 2), 0),))
    assert prints[1] == ((6, 0, 2), (((6, 0, 3), 0), ((8, 0, 1), 0)))
    assert len(set(prints)) == 3
    torch.manual_seed(0)
    mpnn = MoleculeMPNN(3, 4, layers=2)
    atom_molecule = torch.tensor([0, 0, 0, 1])
    out = mpnn(torch.tensor([0, 1, 2, 0]), torch.tensor(edges), atom_molecule, 2)
    assert out.shape == (2, 4)
    # molecules are separate graphs: changing molecule 0's atoms leaves molecule 1 (an isolated atom) as it was
    other = mpnn(torch.tensor([2, 2, 1, 0]), torch.tensor(edges), atom_molecule, 2)
    assert torch.equal(other[1], out[1]) and not torch.equal(other[0], out[0])


def test_mpnn_gradients_are_deterministic_with_threads():
    # hs[src]'s backward (index_put_ with accumulate) differed between identical runs on 2 CPU threads
    torch.manual_seed(0)
    n, e = 2000, 4000
    fingerprints, edges = torch.randint(0, 50, (n,)), torch.randint(0, n, (2, e))
    atom_molecule = torch.sort(torch.randint(0, 60, (n,))).values
    mpnn = MoleculeMPNN(50, 16, layers=2)
    torch.set_num_threads(2)
    try:
        grads = []
        for _ in range(3):
            mpnn.zero_grad()
            mpnn(fingerprints, edges, atom_molecule, 60).sin().sum().backward()
            grads.append(torch.cat([p.grad.flatten() for p in mpnn.parameters()]))
    finally:
        torch.set_num_threads(1)
    assert all(torch.equal(grads[0], g) for g in grads[1:])


def _tiny_resources() -> tuple[Resources, list[Sample]]:
    visits = [Visit(i, (f"d{i % 3}",), ("p1",), drugs) for i, drugs in
              enumerate([("A", "B"), ("B",), ("A", "C"), ("C",)])]
    patients = [Patient(1, tuple(visits[:3])), Patient(2, (visits[3],))]
    vocabs = {"diagnosis": Vocab(["d0", "d1", "d2"]), "procedure": Vocab(["p1"]), "drug": Vocab(["A", "B", "C"])}
    adj = np.zeros((3, 3), dtype=bool)
    adj[0, 1] = adj[1, 0] = True
    smiles = {"A": ("CC(=O)OC1=CC=CC=C1C(O)=O",), "B": ("CCO",), "C": ("c1ccccc1O", "CCN")}
    samples = [Sample(p, i) for p in patients for i in range(len(p.visits))]
    return Resources(vocabs=vocabs, ddi_adj=adj, smiles=smiles), samples


@pytest.mark.parametrize("train_mpnn", [True, False])
def test_train_mpnn_switch(train_mpnn):
    resources, samples = _tiny_resources()
    model = SafeDrug(SafeDrugConfig(dim=8, epochs=1, batch_size=2, lr=0.01, train_mpnn=train_mpnn), resources)
    torch.manual_seed(0)
    model.module = model.build_module()
    before = {k: v.clone() for k, v in model.module.mpnn.state_dict().items()}
    model.fit(samples, samples[:2], seed=0, progress=Progress())
    after = model.module.mpnn.state_dict()
    torch.manual_seed(0)
    fresh = model.build_module().mpnn.state_dict()   # fit re-initialises from the seed: compare to that
    assert all(torch.equal(before[k], fresh[k]) for k in before)
    changed = any(not torch.equal(before[k], after[k]) for k in before)
    assert changed is train_mpnn
    assert all(p.requires_grad is train_mpnn for p in model.module.mpnn.parameters())


def test_single_visit_and_batch_independence():
    resources, samples = _tiny_resources()
    model = SafeDrug(SafeDrugConfig(dim=8, dropout=0.0), resources)
    scores = model.predict_proba(samples)
    assert scores.shape == (len(samples), 3)
    single = [s for s in samples if s.index == 0]
    np.testing.assert_allclose(model.predict_proba(single), scores[[samples.index(s) for s in single]], atol=1e-6)


def test_config_checks():
    for bad in ({"dim": 0}, {"kp": 0.0}, {"dropout": 1.0}, {"target_ddi": 1.5}, {"lr": 0.0}):
        with pytest.raises(ValueError):
            SafeDrugConfig(**bad)


def test_tiny_fit_end_to_end_is_deterministic(small_bundle):
    split = split_patients(small_bundle.patients, "random", seed=0)
    train, valid = make_samples(split.train, "every"), make_samples(split.valid, "last")
    resources = build_resources(small_bundle, split.train, SafeDrug.needs)
    scores = []
    for _ in range(2):
        model = SafeDrug.from_options({"epochs": "2", "dim": "16"}, resources)
        report = model.fit(train, valid, seed=3, progress=Progress())
        assert report.epochs == 2 and {"train_ddi_rate", "mean_beta"} <= set(report.history[-1])
        assert report.notes["molecules"] > 0 and report.notes["substructures"] > 0
        scores.append(model.predict_proba(valid))
    np.testing.assert_array_equal(scores[0], scores[1])
    assert np.isfinite(scores[0]).all()


def test_inference_reuses_drug_embeddings_until_the_weights_change():
    resources, samples = _tiny_resources()
    model = SafeDrug(SafeDrugConfig(dim=8, dropout=0.0), resources)
    calls = []
    encode = model.module.drug_embeddings
    model.module.drug_embeddings = lambda: calls.append(1) or encode()
    first = model.predict_proba(samples)
    np.testing.assert_array_equal(model.predict_proba(samples[:1]), first[:1])
    assert len(calls) == 1                                   # encoded once for both calls
    with torch.no_grad():
        next(model.module.mpnn.parameters()).add_(0.5)       # in place: bumps the version counter
    changed = model.predict_proba(samples)
    assert len(calls) == 2 and not np.array_equal(changed, first)
    with torch.no_grad():
        model.module.eval()
        uncached = torch.sigmoid(model.module(model.encoder.encode(samples), encode())).numpy()
    np.testing.assert_allclose(changed, uncached, rtol=1e-6)
    model.set_state(model.state())
    model.predict_proba(samples[:1])
    assert len(calls) == 3                                   # a load re-encodes
