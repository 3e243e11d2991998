"""Registries of models and datasets, as lazy "module:attribute" strings.

Nothing here imports a model or a heavy library: `bench ls` stays fast and never pulls in torch,
torch_geometric or transformers. `resolve` imports on demand.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bench.errors import unknown_name

REPO_ROOT = Path(__file__).resolve().parents[1]
CARDS_DIR = REPO_ROOT / "datasets"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    target: str  # "module:Class"
    summary: str
    paper: str = ""


MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        ModelEntry("random", "baselines.random_scores:RandomScores",
                   "uniform random scores, a floor for tests"),
        ModelEntry("popular", "baselines.popular:Popular",
                   "the k drugs most often prescribed in training, k tuned on validation"),
        ModelEntry("logreg", "baselines.logreg:LogReg",
                   "linear multi-label model over current diagnoses, procedures and previous drugs"),
        ModelEntry("gamenet", "baselines.gamenet:GAMENet",
                   "GRUs over visits + graph memory (co-prescription GCN minus DDI GCN) + dynamic memory",
                   "Shang et al., AAAI 2019"),
        ModelEntry("safedrug", "baselines.safedrug:SafeDrug",
                   "GRUs over visits; global MPNN molecule branch x BRICS-masked local branch; controllable DDI loss",
                   "Yang et al., IJCAI 2021"),
        ModelEntry("molerec", "baselines.molerec:MoleRec",
                   "GRUs over visits; GIN molecules, set-transformer substructures, molecule-substructure attention",
                   "Yang et al., WWW 2023"),
        ModelEntry("plain-llm", "baselines.plain_llm:PlainLLM",
                   "a generating LLM reads LEADER's prompt and writes class names, matched to ATC3 (hard predictions)",
                   "LLM baseline of Liu et al., arXiv 2402.02803"),
        ModelEntry("leader-teacher", "leader.teacher:LeaderTeacher",
                   "LEADER(T): LLM (LoRA) over the patient prompt, last-token state -> drug output layer",
                   "Liu et al., arXiv 2402.02803"),
        ModelEntry("leader-student", "leader.student:LeaderStudent",
                   "LEADER(S): transformers over visits, profile prompt, feature distillation from leader-teacher",
                   "Liu et al., arXiv 2402.02803"),
        ModelEntry("leader-student-nokd", "leader.student:LeaderStudentNoKD",
                   "LEADER(S) without distillation (profile alignment kept): the no-KD ablation",
                   "Liu et al., arXiv 2402.02803"),
    ]
}


@dataclass(frozen=True)
class DatasetCard:
    """A dataset as described by `datasets/<name>.toml`: where it comes from and how to build it."""

    name: str
    loader: str  # "module:function"(card, *, data_dir, resources, overrides, cache_dir, step) -> DatasetBundle
    summary: str
    params: dict[str, Any] = field(default_factory=dict)  # defaults of the loader's typed parameters
    format: str = ""    # raw table layout: mimic3 | mimic4 ("" for built-in data)
    download: str = ""  # where a user gets the raw data
    license: str = ""
    source: str = ""
    path: Path | None = None
    fetch: dict[str, Any] = field(default_factory=dict)  # [fetch]: base_url, page, sha256 per file (bench.prep.data_fetch)


@cache
def dataset_cards() -> dict[str, DatasetCard]:
    """Every card in datasets/*.toml, keyed by name."""
    cards = {}
    for path in sorted(CARDS_DIR.glob("*.toml")):
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
        card = DatasetCard(name=raw["name"], loader=raw["loader"], summary=raw.get("summary", ""),
                           params=dict(raw.get("params", {})), format=raw.get("format", ""),
                           download=raw.get("download", ""), license=raw.get("license", ""),
                           source=raw.get("source", ""), path=path, fetch=dict(raw.get("fetch", {})))
        cards[card.name] = card
    return cards


def import_target(target: str) -> Any:
    """Import "package.module:attr"."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def model_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    return MODELS[name]


def model_class(name: str) -> type:
    return import_target(model_entry(name).target)


def dataset_card(name: str) -> DatasetCard:
    cards = dataset_cards()
    if name not in cards:
        raise unknown_name("dataset", name, cards)
    return cards[name]
