"""MoleRec's pieces on hand-checkable inputs, and a tiny fit through the common interface."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.molerec import MoleRec, MoleRecConfig
from baselines.molerec_layers import anneal_beta, ddi_loss, masked_attention
from bench.data import Patient, Sample, Visit, Vocab
from bench.progress import Progress
from bench.protocol import Resources

ASPIRIN = "CC(=O)OC1=CC=CC=C1C(O)=O"
SMILES = {"A": (ASPIRIN,), "B": ("CCO", "CCN"), "C": ("c1ccccc1O",)}
VOCABS = {"diagnosis": Vocab(["d0", "d1", "d2"]), "procedure": Vocab(["p0", "p1"]), "drug": Vocab(["A", "B", "C"])}


def _resources() -> Resources:
    ddi = np.zeros((3, 3), dtype=bool)
    ddi[0, 2] = ddi[2, 0] = True
    return Resources(vocabs=VOCABS, ddi_adj=ddi, smiles=SMILES)


def _samples() -> list[Sample]:
    drugs = [("A", "C"), ("B",), ("A", "B"), ("C",)]
    patients = [Patient(p, tuple(Visit(10 * p + i, (f"d{(p + i) % 3}",), (f"p{i % 2}",), drugs[(p + i) % 4])
                                 for i in range(1 + p % 3))) for p in range(8)]
    return [Sample(p, i) for p in patients for i in range(len(p.visits))]


def test_annealing_follows_its_formula():
    assert anneal_beta(0.06, 0.06, 2.5) == 1.0
    assert anneal_beta(0.0, 0.06, 2.5) == 1.0  # below the target: clamped to 1
    assert anneal_beta(0.03, 0.06, 2.5) == 1.0
    assert anneal_beta(0.09, 0.06, 2.5) == pytest.approx(math.exp(2.5 * (1 - 0.09 / 0.06)))  # exp(-1.25)
    assert anneal_beta(0.12, 0.06, 2.5) == pytest.approx(math.exp(-2.5))
    assert anneal_beta(0.12, 0.06, 2.5) < anneal_beta(0.09, 0.06, 2.5) < 1.0


def test_ddi_loss_zero_without_edges_positive_with_one():
    probs = torch.tensor([[0.5, 0.5, 1.0], [1.0, 0.0, 1.0]])
    assert ddi_loss(probs, torch.zeros(3, 3), 0.0005).item() == 0.0
    adj = torch.zeros(3, 3)
    adj[0, 2] = adj[2, 0] = 1.0
    # p^T A p per sample: 2 * 0.5 * 1.0 = 1 and 2 * 1 * 1 = 2; mean 1.5; times the paper's 0.0005
    assert ddi_loss(probs, adj, 0.0005).item() == pytest.approx(0.0005 * 1.5)


def test_attention_masks_other_substructures_and_empty_rows_attend_to_nothing():
    torch.manual_seed(0)
    query, keys = torch.randn(3, 4), torch.randn(3, 4)
    mask = torch.tensor([[True, True, False], [False, False, True], [False, False, False]])
    a = masked_attention(query, keys, mask)
    assert torch.isfinite(a).all()
    np.testing.assert_allclose(a.sum(1).numpy(), [1.0, 1.0, 0.0], atol=1e-6)
    assert a[0, 2] == 0 and a[1, :2].abs().sum() == 0 and a[2].abs().sum() == 0
    keys2 = keys.clone()
    keys2[2] = 100.0  # substructure 2 is not molecule 0's
    assert torch.equal(masked_attention(query, keys2, mask)[0], a[0])


def test_module_masking_drug_path_and_molecule_without_substructure():
    torch.manual_seed(0)
    model = MoleRec(MoleRecConfig(dim=8, gin_layers=2), _resources())
    module = model.module.eval()
    mask = module.substructure_mask
    mask[0] = False  # molecule 0 loses its substructures: finite output, substructure part zero
    relevance = torch.rand(2, mask.shape[1])
    with torch.no_grad():
        reps = module.molecule_representations(relevance)               # [2, M, 2d]
        assert torch.isfinite(reps).all() and reps[:, 0, 8:].abs().sum() == 0
        # a substructure outside molecule 1's mask does not change molecule 1's representation:
        # neither its relevance (which scales its value vector) nor its vector after the SAB
        outside = int(torch.nonzero(~mask[1])[0])
        changed = relevance.clone()
        changed[:, outside] = 1.0 - changed[:, outside]
        assert torch.equal(module.molecule_representations(changed)[:, 1], reps[:, 1])
        assert not torch.equal(module.molecule_representations(changed), reps)
        g, u, a = module.molecules()
        u2 = u.clone()
        u2[outside] += 100.0
        assert torch.equal((a @ (relevance.unsqueeze(-1) * u2))[:, 1], (a @ (relevance.unsqueeze(-1) * u))[:, 1])
        # the drug-level path equals the per-ATC3 average of the molecule-level one
        logits = module.drug_logits(relevance)
        averaged = module.score(module.drug_molecule @ module.molecule_representations(relevance)).squeeze(-1)
        np.testing.assert_allclose(logits.numpy(), averaged.numpy(), rtol=1e-5, atol=1e-6)
        assert torch.isfinite(logits).all()


def test_config_range_checks():
    with pytest.raises(ValueError):
        MoleRecConfig(dropout=1.0)
    with pytest.raises(ValueError):
        MoleRecConfig(dim=10, heads=3)
    with pytest.raises(ValueError):
        MoleRecConfig(target_ddi=0.0)


def test_tiny_fit_is_deterministic_and_handles_single_visits(tmp_path):
    samples = _samples()
    options = {"epochs": "2", "dim": "8", "gin_layers": "2", "batch_size": "4"}
    first = MoleRec.from_options(options, _resources())
    report = first.fit(samples, samples[:4], seed=3, progress=Progress())
    assert report.epochs == 2 and {"mean_beta", "mean_batch_ddi", "mean_ddi_loss"} <= set(report.history[0])
    single = [s for s in samples if s.index == 0]
    scores = first.predict_proba(samples)
    assert scores.shape == (len(samples), 3) and np.isfinite(scores).all()
    np.testing.assert_allclose(first.predict_proba(single), scores[[samples.index(s) for s in single]], rtol=1e-5)
    second = MoleRec.from_options(options, _resources())
    second.fit(samples, samples[:4], seed=3, progress=Progress())
    np.testing.assert_array_equal(second.predict_proba(samples), scores)
    first.save(tmp_path / "m")
    np.testing.assert_array_equal(MoleRec.load(tmp_path / "m", _resources()).predict_proba(samples), scores)


def test_inference_cache_follows_parameter_changes():
    samples = _samples()
    model = MoleRec(MoleRecConfig(dim=8, gin_layers=2), _resources())
    first = model.predict_proba(samples)
    np.testing.assert_array_equal(model.predict_proba(samples), first)
    with torch.no_grad():
        model.module.gin.atoms.tables[0].weight.add_(1.0)  # in place: bumps the version counter
    changed = model.predict_proba(samples)
    assert not np.array_equal(changed, first)
    with torch.no_grad():  # the module's own forward, which encodes the molecules afresh
        uncached = torch.sigmoid(model.module(model.encoder.encode(samples))).numpy()
    np.testing.assert_allclose(changed, uncached, rtol=1e-6)


def test_new_computation_equals_the_previous_one():
    """The default computation (real codes only, stacked GRUs, bench.tensor_ops dropout, one lookup for
    the atom / bond tables) and the previous one (kept for the speed benchmark) are the same network:
    equal outputs in eval mode, equal gradients without dropout."""
    samples = _samples()
    options = {"dim": "8", "gin_layers": "2", "dropout": "0", "gin_dropout": "0"}
    new_model = MoleRec.from_options(options, _resources())
    old_model = MoleRec.from_options(options, _resources())
    old_model._previous_path = True
    old_model.module = old_model.build_module()
    old_model.module.load_state_dict(new_model.module.state_dict())
    batch = new_model.encoder.encode(samples)
    assert batch.diagnoses.shape[1] > 1 and (batch.diagnoses == 0).any()      # padded visits and codes
    new, old = new_model.module, old_model.module
    assert old.previous_path and not new.previous_path
    for module in (new, old):
        module.train()
        module(batch).pow(2).sum().backward()
    for (name, p), q in zip(new.named_parameters(), old.parameters()):
        # atol 1e-5: the biases before a batch norm have a zero gradient up to rounding (~1e-6 here)
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(new.eval()(batch), old.eval()(batch), rtol=1e-5, atol=1e-6)


def test_categorical_encoder_one_lookup_equals_per_table():
    from baselines.molecules import CategoricalEncoder

    torch.manual_seed(0)
    fused, per_table = CategoricalEncoder((3, 2, 4), 5), CategoricalEncoder((3, 2, 4), 5, per_table=True)
    per_table.load_state_dict(fused.state_dict())
    features = torch.tensor([[0, 1, 3], [2, 0, 0], [1, 1, 2]])
    expected = sum(fused.tables[i].weight[features[:, i]] for i in range(3))
    torch.testing.assert_close(fused(features), expected)
    torch.testing.assert_close(per_table(features), expected)
