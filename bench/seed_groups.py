"""Training seeds: a seed group is what one `bench run --seeds` call trains, one ordinary run per training
seed on the SAME patient split (`--split-seed`), plus an aggregate record of the group.

Each member's run.json names its group (`seed_group`: id and seeds). The aggregate record,
`results/<dataset>/<model>/seed-groups/<group id>.json` (written atomically, after every member), lists
the member runs and, per group of test samples and metric, the mean and the sample standard deviation
(ddof=1) over the seeds of each member's point estimate (its value on the whole test set). A member's
own mean ± std stays what it always was: the test resampling of that one run (run.json `uncertainty`).

docs/run-record.md describes both records; bench.analysis.seed_rows turns groups into `bench compare` rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import UserError
from bench.io import atomic_write_text
from bench.run_record import SEED_GROUP_VERSION, SeedGroupRecord

GROUPS_FOLDER = "seed-groups"   # results/<dataset>/<model>/seed-groups/<group id>.json
STD_DDOF = 1                    # sample standard deviation over seeds (n - 1 in the denominator)
MAX_COUNT = 1000               # `--seeds N` trains N models: a larger N is a typo
TEST_RESAMPLING = "test_resampling"   # run.json `uncertainty`: ± over the resampling rounds of one run
TRAINING_SEEDS = "training_seeds"     # the aggregate's `uncertainty`: ± over the seeds of a group


@dataclass(frozen=True)
class SeedGroup:
    """One `bench run --seeds` call: its id (a run id, bench.runner.new_run_id) and its training seeds."""

    id: str
    seeds: tuple[int, ...]

    def entry(self) -> dict[str, Any]:
        """run.json's `seed_group`."""
        return {"id": self.id, "seeds": list(self.seeds)}


def parse_seeds(text: str, option: str = "--seeds") -> tuple[int, ...]:
    """"0,1,2" -> (0, 1, 2) (distinct seeds, in the order given); "3" -> (0, 1, 2) (a count). A one-line
    UserError for anything else; every seed must pass bench.runner.check_seed."""
    from bench.runner import check_seed

    expected = (f"{option} {text!r}: expected a count like 3 (seeds 0, 1, 2) or a comma-separated list of "
                "distinct integers >= 0 like 0,1,2")
    parts = [part.strip() for part in text.split(",")]
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise UserError(expected) from None
    if len(numbers) == 1:
        if not 1 <= numbers[0] <= MAX_COUNT:
            raise UserError(f"{option} {text!r}: a count of seeds must lie between 1 and {MAX_COUNT}")
        return tuple(range(numbers[0]))
    if len(set(numbers)) != len(numbers):
        raise UserError(expected)
    for seed in numbers:
        check_seed(seed, option)
    return tuple(numbers)


def split_seed_of(record: Mapping[str, Any]) -> int:
    """The seed of a run's patient split: run.json `split_seed`; runs written before it existed used
    their one `seed` for the split too."""
    value = record.get("split_seed")
    return record["seed"] if value is None else value


def group_id_of(record: Mapping[str, Any]) -> str | None:
    """The id of the seed group a run belongs to (None: a single run)."""
    return (record.get("seed_group") or {}).get("id")


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and std (ddof=STD_DDOF) of `values`; None where a value is None (std also with one value)."""
    if not values or any(v is None for v in values):
        return None, None
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=STD_DDOF)) if len(array) > STD_DDOF else None
    return float(array.mean()), std


def seed_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per group of test samples present in every record and per metric: {"mean", "std", "values"} over
    the records' point estimates (`values`: one per record, in order; mean and std null when any is
    null, std also with fewer than two records), and `n` (test samples, the first record's)."""
    if not records:
        raise ValueError("no runs to aggregate")
    first = records[0]["metrics"]
    out: dict[str, dict[str, Any]] = {}
    for group, entry in first.items():
        if not all(group in r["metrics"] for r in records):
            continue
        aggregated: dict[str, Any] = {"n": entry.get("n")}
        for name, value in entry.items():
            if not isinstance(value, dict):
                continue
            points = [(r["metrics"][group].get(name) or {}).get("point") for r in records]
            mean, std = _mean_std(points)
            aggregated[name] = {"mean": mean, "std": std, "values": points}
        out[group] = aggregated
    return out


def group_record(group: SeedGroup, records: Sequence[Mapping[str, Any]]) -> SeedGroupRecord:
    """The aggregate record of a finished group from its member runs' records (in seed order)."""
    first = records[0]
    return SeedGroupRecord(
        schema_version=SEED_GROUP_VERSION,
        kind="seed_group",
        group_id=group.id,
        created_at=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        model=first["model"]["name"],
        dataset={"name": first["dataset"]["name"], "hash": first["dataset"]["hash"]},
        split={"scheme": first["split"]["scheme"], "ratios": first["split"]["ratios"]},
        split_seed=split_seed_of(first),
        protocol=first["protocol"],
        threshold=first["threshold"],
        overrides=dict(first.get("overrides") or {}),
        seeds=[r["seed"] for r in records],
        runs=[{"seed": r["seed"], "run_id": r["run_id"]} for r in records],
        uncertainty=TRAINING_SEEDS,
        std_ddof=STD_DDOF,
        metrics=seed_metrics(records),
    )


def group_path(results_dir: Path, dataset: str, model: str, group_id: str) -> Path:
    return results_dir / dataset / model / GROUPS_FOLDER / f"{group_id}.json"


def write_group(results_dir: Path, record: SeedGroupRecord) -> Path:
    """Write the aggregate record atomically; returns its path."""
    from bench.results import json_safe

    path = group_path(results_dir, record["dataset"]["name"], record["model"], record["group_id"])
    atomic_write_text(path, json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n")
    return path
