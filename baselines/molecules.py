"""Molecules of the drug vocabulary for SafeDrug and MoleRec: RDKit parsing, BRICS substructures,
drug <-> molecule <-> substructure matrices, and molecular graphs for torch_geometric.

Each ATC3 class is represented by the molecules of its representative drugs (the dataset's SMILES
list). A class without any parsable SMILES gets an all-zero row in every drug matrix, so the
molecule branches contribute nothing for it; the papers' preprocessing drops such classes instead
(`require_smiles=true`, the default for the MIMIC datasets), so this only matters when a user keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import BRICS

from bench.data import Vocab

RDLogger.DisableLog("rdApp.*")

# Categorical atom and bond features (OGB-style), with their number of values.
HYBRIDISATION = (Chem.HybridizationType.SP, Chem.HybridizationType.SP2, Chem.HybridizationType.SP3,
                 Chem.HybridizationType.SP3D, Chem.HybridizationType.SP3D2)
BOND_TYPES = (Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC)
ATOM_FEATURE_SIZES = (120, 4, 11, 11, 9, 5, 6, 2, 2)
BOND_FEATURE_SIZES = (5, 6, 2)


@dataclass(frozen=True)
class MoleculeSet:
    """smiles: [M] parsable molecules (canonical SMILES, deduplicated).
    drug_molecule: float32 [n_drugs, M], row-normalised (a drug's row averages its molecules).
    substructures: [S] BRICS fragment SMILES.  molecule_substructure: float32 [M, S] 0/1.
    drug_substructure: float32 [n_drugs, S] 0/1, 1 where any of the drug's molecules has the fragment
    (SafeDrug's local-branch mask).  drugs_without_smiles: ATC3 codes with no parsable molecule."""

    smiles: tuple[str, ...]
    drug_molecule: np.ndarray
    substructures: tuple[str, ...]
    molecule_substructure: np.ndarray
    drug_substructure: np.ndarray
    drugs_without_smiles: tuple[str, ...]


@cache
def _parse(smiles: str) -> Chem.Mol | None:
    return Chem.MolFromSmiles(smiles)


@cache
def brics_fragments(smiles: str) -> tuple[str, ...]:
    """Sorted distinct BRICS leaf fragments of a molecule (the molecule itself when it does not break).

    Breaks every BRICS bond at once (`BreakBRICSBonds`) and takes the pieces: the leaves that
    SafeDrug's `BRICSDecompose` returns, in linear time. `BRICSDecompose` searches fragment
    combinations and exhausted 24 GB on a large peptide (insulin) here."""
    mol = _parse(smiles)
    if mol is None:
        return ()
    pieces = Chem.GetMolFrags(BRICS.BreakBRICSBonds(mol), asMols=True, sanitizeFrags=False)
    return tuple(sorted({Chem.MolToSmiles(piece) for piece in pieces}))


def build_molecule_set(drug_vocab: Vocab, smiles_by_drug: Mapping[str, Sequence[str]],
                       max_per_drug: int = 0) -> MoleculeSet:
    """Molecules and substructures for every drug of the vocabulary (max_per_drug 0 = all SMILES)."""
    molecules: dict[str, int] = {}
    drug_rows: list[list[int]] = []
    for drug in drug_vocab.tokens:
        rows = []
        listed = list(smiles_by_drug.get(drug, ()))
        for smiles in listed[:max_per_drug] if max_per_drug else listed:
            mol = _parse(smiles)
            if mol is None:
                continue
            canonical = Chem.MolToSmiles(mol)
            rows.append(molecules.setdefault(canonical, len(molecules)))
        drug_rows.append(sorted(set(rows)))
    smiles = tuple(molecules)
    drug_molecule = np.zeros((len(drug_vocab), len(smiles)), dtype=np.float32)
    for d, rows in enumerate(drug_rows):
        if rows:
            drug_molecule[d, rows] = 1.0 / len(rows)
    fragments = [brics_fragments(s) for s in smiles]
    substructures = tuple(sorted({f for frags in fragments for f in frags}))
    index = {f: i for i, f in enumerate(substructures)}
    molecule_substructure = np.zeros((len(smiles), len(substructures)), dtype=np.float32)
    for m, frags in enumerate(fragments):
        molecule_substructure[m, [index[f] for f in frags]] = 1.0
    drug_substructure = ((drug_molecule > 0).astype(np.float32) @ molecule_substructure > 0).astype(np.float32)
    missing = tuple(drug for drug, rows in zip(drug_vocab.tokens, drug_rows) if not rows)
    return MoleculeSet(smiles, drug_molecule, substructures, molecule_substructure, drug_substructure, missing)


def _atom_features(atom: Chem.Atom) -> list[int]:
    hybrid = atom.GetHybridization()
    return [min(atom.GetAtomicNum(), 119), min(int(atom.GetChiralTag()), 3), min(atom.GetDegree(), 10),
            min(max(atom.GetFormalCharge() + 5, 0), 10), min(atom.GetTotalNumHs(), 8),
            min(atom.GetNumRadicalElectrons(), 4),
            HYBRIDISATION.index(hybrid) if hybrid in HYBRIDISATION else len(HYBRIDISATION),
            int(atom.GetIsAromatic()), int(atom.IsInRing())]


def _bond_features(bond: Chem.Bond) -> list[int]:
    kind = bond.GetBondType()
    return [BOND_TYPES.index(kind) if kind in BOND_TYPES else len(BOND_TYPES),
            min(int(bond.GetStereo()), 5), int(bond.GetIsConjugated())]


def molecule_graphs(smiles: Sequence[str]):
    """A torch_geometric `Batch` of molecular graphs, one per SMILES: x int64 [atoms, 9] and
    edge_attr int64 [edges, 3] categorical features (sizes ATOM_FEATURE_SIZES / BOND_FEATURE_SIZES),
    edge_index [2, edges] with both directions, batch int64 [atoms] = molecule index."""
    from torch_geometric.data import Batch, Data

    graphs = []
    for text in smiles:
        mol = _parse(text)
        if mol is None:
            raise ValueError(f"cannot parse SMILES {text!r}")
        x = torch.tensor([_atom_features(a) for a in mol.GetAtoms()], dtype=torch.int64).reshape(-1, 9)
        pairs, features = [], []
        for bond in mol.GetBonds():
            i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            f = _bond_features(bond)
            pairs += [(i, j), (j, i)]
            features += [f, f]
        edge_index = torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2).t().contiguous()
        edge_attr = torch.tensor(features, dtype=torch.int64).reshape(-1, 3)
        graphs.append(Data(x=x, edge_index=edge_index, edge_attr=edge_attr))
    return Batch.from_data_list(graphs)


class CategoricalEncoder(torch.nn.Module):
    """Sum of one embedding per categorical column: int64 [N, F] -> float [N, dim].

    The F tables are looked up as one (their weights concatenated, each column's indices offset
    to its table's rows): one summing lookup (`embedding_bag`) instead of F lookups and sums, the same values up to
    summation order. `per_table=True` does F separate lookups (the computation before the
    2026-12 speed-up, kept for the same-run training benchmark)."""

    def __init__(self, sizes: Sequence[int], dim: int, per_table: bool = False):
        super().__init__()
        self.tables = torch.nn.ModuleList(torch.nn.Embedding(size, dim) for size in sizes)
        self.per_table = per_table
        self.register_buffer("offsets", torch.tensor([0, *sizes[:-1]], dtype=torch.int64).cumsum(0),
                             persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.per_table:
            return sum(table(features[:, i]) for i, table in enumerate(self.tables))
        weight = torch.cat([table.weight for table in self.tables])              # [sum(sizes), dim]
        return torch.nn.functional.embedding_bag(features + self.offsets, weight, mode="sum")
