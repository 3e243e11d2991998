"""The committed reference runs, kept apart from a user's runs.

`results/reference/<dataset>/<model>/<run_id>/` holds the reference set committed with the repository
(run.json and predictions; no weights). `bench run` writes a user's runs to `results/<dataset>/...`,
and `bench.results.read_runs` never descends into a top-level `reference/` folder, so a user's
first run neither replaces nor mixes with a committed row. `bench compare --reference` adds the
reference rows, each labelled with a " (ref)" suffix on its model name and `_source: "reference"`:
a model with both a user run and a reference run shows two rows. Every other consumer reads the
user's runs only; `--results-dir results/reference` points one (report, rarity) at the reference set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.registry import REPO_ROOT
from bench.results import REFERENCE_FOLDER, read_runs

SUFFIX = " (ref)"
SOURCE_KEY = "_source"


def default_reference_dir() -> Path:
    """The repository's committed reference runs: `<repo>/results/reference`."""
    return REPO_ROOT / "results" / REFERENCE_FOLDER


def as_reference(record: dict[str, Any]) -> dict[str, Any]:
    """`record` labelled as a reference run: model name + " (ref)", `_source` "reference", the plain
    model name kept in `_model`."""
    name = record["model"]["name"]
    return {**record, SOURCE_KEY: "reference", "_model": name, "model": {**record["model"], "name": name + SUFFIX}}


def is_reference(record: dict[str, Any]) -> bool:
    return record.get(SOURCE_KEY) == "reference"


def source(record: dict[str, Any]) -> str:
    """"reference" for a committed reference run, else "user"."""
    return "reference" if is_reference(record) else "user"


def base_model(record: dict[str, Any]) -> str:
    """The registered model name of a run, without any " (ref)" label."""
    return record.get("_model", record["model"]["name"])


def reference_runs(reference_dir: Path, dataset: str | None = None) -> list[dict[str, Any]]:
    """The latest reference row per (dataset, model) (a run, or a seed group's runs:
    bench.analysis.seed_rows), every run labelled (`as_reference`); [] without the folder."""
    from bench.analysis.seed_rows import latest_rows, map_members

    if not reference_dir.is_dir():
        return []
    return [map_members(row, as_reference) for row in latest_rows(read_runs(reference_dir), dataset)]


def combined(user: list[dict[str, Any]], reference: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """User and reference rows together, by dataset then model; a model's reference row follows its
    user row ("logreg", "logreg (ref)")."""
    return sorted([*user, *reference], key=lambda r: (r["dataset"]["name"], base_model(r), is_reference(r)))
