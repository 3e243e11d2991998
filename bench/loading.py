"""Turn a dataset name into a prepared bundle, and a bundle into the resources a model needs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from bench.data import DatasetBundle, Patient
from bench.protocol import NEEDS, Resources
from bench.registry import dataset_card, import_target


def load_bundle(name: str, *, data_dir: Path | None = None, resources: Path | None = None,
                overrides: dict[str, str] | None = None, cache_dir: Path | None = None,
                step: Callable[[str], None] = lambda _: None, allow_modified_resources: bool = False) -> DatasetBundle:
    """The dataset named by its card in datasets/: generated, read from the cache, or prepared from
    the raw tables in `data_dir` (with drug knowledge from `resources`). `overrides` are the
    loader's typed parameters as `--prep-set` strings; `step` is told what is being done;
    `allow_modified_resources` lets drug-knowledge files that differ from their pinned checksums be used."""
    card = dataset_card(name)
    return import_target(card.loader)(card, data_dir=data_dir, resources=resources, overrides=dict(overrides or {}),
                                      cache_dir=cache_dir, step=step, allow_modified_resources=allow_modified_resources)


def coprescription_graph(patients: Iterable[Patient], bundle: DatasetBundle) -> np.ndarray:
    """float32 [n_drugs, n_drugs]: number of visits in which two drugs were prescribed together
    (zero diagonal). Pass TRAINING patients only, or test prescriptions leak into the model."""
    vocab = bundle.drug_vocab
    visits = [v.drugs for p in patients for v in p.visits]
    hot = vocab.multi_hot(visits) if visits else np.zeros((0, len(vocab)), dtype=np.float32)
    graph = hot.T @ hot
    np.fill_diagonal(graph, 0.0)
    return graph


def build_resources(bundle: DatasetBundle, train_patients: Iterable[Patient],
                    needs: frozenset[str]) -> Resources:
    """The vocabularies plus exactly the optional resources in `needs`."""
    unknown = set(needs) - NEEDS
    if unknown:
        raise ValueError(f"unknown resource needs {sorted(unknown)}; known: {sorted(NEEDS)}")
    return Resources(
        vocabs=bundle.vocabs,
        profile_fields=bundle.profile_fields,
        ddi_adj=bundle.ddi_matrix() if "ddi" in needs else None,
        smiles=bundle.smiles if "smiles" in needs else None,
        titles=bundle.titles if "text" in needs else None,
        ehr_graph=coprescription_graph(train_patients, bundle) if "ehr_graph" in needs else None,
        generator=bundle.generator if "generator" in needs else None,
    )
