"""Registries of models and datasets, as lazy "module:attribute" strings.

Models come from the plug-ins (bench.plugins: baselines, leader and any in $MEDREC_PLUGINS); datasets
from the cards in datasets/*.toml. Nothing here imports a model or a heavy library: `bench ls` stays
fast and never pulls in torch, torch_geometric or transformers. `model_class` imports on demand.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bench.errors import unknown_name
from bench.plugins import ModelEntry, import_entry, import_target, plugins

__all__ = ["ModelEntry", "import_target", "models", "model_entry", "model_class", "DatasetCard", "dataset_cards",
           "dataset_card", "REPO_ROOT", "CARDS_DIR"]

REPO_ROOT = Path(__file__).resolve().parents[1]
CARDS_DIR = REPO_ROOT / "datasets"


def models() -> dict[str, ModelEntry]:
    """Every registered model, keyed by name: the plug-ins' entries (bench.plugins), in their order."""
    return {entry.name: entry for plugin in plugins() for entry in plugin.models}


def __getattr__(name: str) -> Any:
    """`MODELS`: `models()` as a module attribute, read afresh (plug-ins load on first use)."""
    if name == "MODELS":
        return models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def model_entry(name: str) -> ModelEntry:
    registered = models()
    if name not in registered:
        raise unknown_name("model", name, registered)
    return registered[name]


def model_class(name: str) -> type:
    """The registered model's class (imported now; a one-line UserError when its module fails)."""
    entry = model_entry(name)
    return import_entry("model", name, entry.target)


def dataset_card(name: str) -> DatasetCard:
    cards = dataset_cards()
    if name not in cards:
        raise unknown_name("dataset", name, cards)
    return cards[name]
