"""Shared pieces of the GAMENet / SafeDrug / MoleRec baselines, on hand-checkable inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.molecules import brics_fragments, build_molecule_set, molecule_graphs
from baselines.visits import (VisitEncoder, batch_ddi_rate, ddi_pair_score, margin_targets, masked_mean_embedding,
                             real_code_mean_embedding, real_code_sum_embedding)
from bench.data import Patient, Sample, Visit, Vocab


def _patient() -> Patient:
    visits = tuple(Visit(i, (f"d{i}",), ("p1",), (drug,)) for i, drug in enumerate(["A", "B", "C"]))
    return Patient(1, visits)


VOCABS = {"diagnosis": Vocab(["d0", "d1", "d2"]), "procedure": Vocab(["p1"]), "drug": Vocab(["A", "B", "C"])}


def test_encoder_hides_the_current_visits_drugs_and_keeps_the_last_visits():
    patient = _patient()
    batch = VisitEncoder(VOCABS).encode([Sample(patient, 2), Sample(patient, 0)])
    assert batch.lengths.tolist() == [3, 1]
    assert batch.history_drugs[0].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]  # current visit row empty
    assert batch.target.tolist() == [[0, 0, 1], [1, 0, 0]]
    assert batch.visit_mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.diagnoses[0, :, 0].tolist() == [1, 2, 3]  # index + 1, 0 is padding
    truncated = VisitEncoder(VOCABS, max_visits=2).encode([Sample(patient, 2)])
    assert truncated.diagnoses[0, :, 0].tolist() == [2, 3]  # the LAST two visits, current one included
    assert truncated.target.tolist() == [[0, 0, 1]]


def test_masked_mean_ignores_padding():
    embedding = torch.nn.Embedding(4, 2, padding_idx=0)
    with torch.no_grad():
        embedding.weight.copy_(torch.tensor([[9.0, 9.0], [1.0, 0.0], [3.0, 2.0], [0.0, 0.0]]))
    codes = torch.tensor([[[1, 2, 0], [0, 0, 0]]])
    np.testing.assert_allclose(masked_mean_embedding(embedding, codes)[0].detach().numpy(), [[2.0, 1.0], [0.0, 0.0]])
    # the same mean from the real codes only, with a dropout module (identity in eval mode)
    flat = real_code_mean_embedding(embedding, codes, torch.nn.Dropout(0.5).eval())
    np.testing.assert_allclose(flat[0].detach().numpy(), [[2.0, 1.0], [0.0, 0.0]])
    summed = real_code_sum_embedding(embedding, codes, torch.nn.Dropout(0.5).eval())
    np.testing.assert_allclose(summed[0].detach().numpy(), [[4.0, 2.0], [0.0, 0.0]])


def test_margin_targets_rows():
    target = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    assert margin_targets(target).tolist() == [[1, 2, -1, -1], [-1, -1, -1, -1], [0, 3, -1, -1]]


def test_ddi_pieces():
    probs = torch.tensor([[0.5, 0.5, 1.0]])
    assert ddi_pair_score(probs, torch.zeros(3, 3)).item() == 0.0
    adj = torch.zeros(3, 3)
    adj[0, 1] = adj[1, 0] = 1.0
    assert ddi_pair_score(probs, adj).item() == pytest.approx(2 * 0.5 * 0.5)
    assert batch_ddi_rate(torch.tensor([[1, 1, 1], [0, 0, 1]]), adj) == pytest.approx(1 / 3)
    assert margin_targets(torch.tensor([[0.0, 1.0, 1.0]])).tolist() == [[1, 2, -1]]


def test_molecules_and_brics_masks():
    aspirin = "CC(=O)OC1=CC=CC=C1C(O)=O"
    assert brics_fragments(aspirin) == ("[1*]C(C)=O", "[16*]c1ccccc1[16*]", "[3*]O[3*]", "[6*]C(=O)O")
    molecules = build_molecule_set(Vocab(["A", "B", "C"]), {"A": [aspirin, "CCO"], "B": ["CCO"], "C": ["not a smiles"]})
    assert molecules.drugs_without_smiles == ("C",)
    np.testing.assert_allclose(molecules.drug_molecule.sum(axis=1), [1.0, 1.0, 0.0])
    assert molecules.drug_substructure[2].sum() == 0
    assert molecules.drug_substructure[0].sum() == len(set(brics_fragments(aspirin)) | {"CCO"})
    graphs = molecule_graphs(molecules.smiles)
    assert graphs.num_graphs == 2 and graphs.x.shape[1] == 9 and graphs.edge_index.shape[0] == 2
