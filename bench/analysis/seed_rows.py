"""Rows of `bench compare` (and `bench report`, `bench ablate`) from runs and seed groups.

A row is a run record. For a (dataset, model) whose latest run belongs to a seed group (one
`bench run --seeds` call, bench.seed_groups), the row is built from every run of that group: its
metrics are the mean ± std (ddof=1) over the training seeds of each run's point estimate
(bench.seed_groups.seed_metrics, the figures of the group's aggregate record), its timing and training
speed the mean over the seeds, the rest the latest member's; `uncertainty` says "training_seeds" and
`_members` holds the member records in seed order (the paired comparison pairs them by seed). Otherwise
the row is the latest run itself, whose ± is its test resampling. A row is a pure function of its
members, so re-scoring or relabelling the members and building the row again (`map_members`) keeps it
consistent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.results import latest_runs
from bench.seed_groups import TEST_RESAMPLING, TRAINING_SEEDS, group_id_of, seed_metrics

Record = dict[str, Any]
MEMBERS = "_members"        # a seed-group row's member records, in seed order
PLANNED = "_planned_seeds"  # the seeds its group was started with (some may be missing)


def latest_groups(runs: Sequence[Record], dataset: str | None = None) -> list[list[Record]]:
    """Per (dataset, model), sorted: the runs of the seed group of its latest run (in seed order), or
    that latest run alone when it belongs to no group."""
    groups = []
    for newest in latest_runs(list(runs), dataset):
        key = (newest["dataset"]["name"], newest["model"]["name"])
        group = group_id_of(newest)
        if group is None:
            groups.append([newest])
            continue
        members = {r["seed"]: r for r in runs if (r["dataset"]["name"], r["model"]["name"]) == key
                   and group_id_of(r) == group}
        groups.append([members[seed] for seed in sorted(members)])
    return groups


def latest_rows(runs: Sequence[Record], dataset: str | None = None) -> list[Record]:
    """One row per (dataset, model): `as_row` of `latest_groups`."""
    return [as_row(members) for members in latest_groups(runs, dataset)]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mean_fields(parts: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The last part with each number that every part has replaced by its mean over the parts (kept as
    it is when all are equal, e.g. a parameter count); any other value is the last part's."""
    last = parts[-1]
    if last is None:
        return None
    out = dict(last)
    for key, value in last.items():
        values = [(part or {}).get(key) for part in parts]
        if _is_number(value) and all(_is_number(v) for v in values) and len(set(values)) > 1:
            out[key] = sum(values) / len(values)
    return out


def as_row(members: Sequence[Record]) -> Record:
    """The row of `members` (one run, or the runs of one seed group in seed order): a lone run is its
    own row; two or more runs give the seed-aggregated row (module docstring)."""
    if len(members) == 1:
        return members[0]
    latest = max(members, key=lambda r: r["created_at"])
    planned = (latest.get("seed_group") or {}).get("seeds") or [r["seed"] for r in members]
    return {**latest, "metrics": seed_metrics(members), "uncertainty": TRAINING_SEEDS,
            "timing": _mean_fields([r.get("timing") for r in members]),
            "fit": _mean_fields([r.get("fit") for r in members]),
            MEMBERS: list(members), PLANNED: list(planned)}


def members(row: Record) -> list[Record]:
    """The runs behind a row: a seed group's members in seed order, else the row's run alone."""
    return list(row.get(MEMBERS) or [row])


def seeds_of(row: Record) -> list[int]:
    """The training seeds behind a row."""
    return [r["seed"] for r in members(row)]


def map_members(row: Record, change: Callable[[Record], Record]) -> Record:
    """The row built again from its members after `change` (e.g. a re-scoring, a relabelling)."""
    return as_row([change(r) for r in members(row)])


def is_seed_row(row: Record) -> bool:
    return row.get("uncertainty") == TRAINING_SEEDS and MEMBERS in row


def uncertainty_note(rows: Sequence[Record]) -> str:
    """What ± means in a table of `rows`, e.g. "± = std over 3 training seeds (ddof=1) of each seed's
    value on the whole test set" or "± = std over 10 test resampling rounds of one run"."""
    seeded = [r for r in rows if is_seed_row(r)]
    if not seeded:
        rounds = sorted({(r.get("resampling") or {}).get("rounds") for r in rows} - {None})
        count = f"{rounds[0]} " if len(rounds) == 1 else ""
        return f"± = std over {count}test resampling rounds of one run"
    counts = sorted({len(members(r)) for r in seeded})
    how = "(ddof=1) of each seed's value on the whole test set"
    if len(seeded) == len(rows):
        count = f"{counts[0]} " if len(counts) == 1 else ""
        return f"± = std over {count}training seeds {how}"
    which = ", ".join(f"{r['model']['name']} ({len(members(r))} seeds)" for r in seeded)
    return (f"± = std over training seeds {how} for {which}; over the test resampling rounds of one run "
            "for the others")


def missing_seeds_notes(rows: Sequence[Record]) -> list[str]:
    """A note per seed-group row with fewer runs than its group was started with (a killed or removed run)."""
    notes = []
    for row in rows:
        found, planned = seeds_of(row), row.get(PLANNED) or []
        if is_seed_row(row) and len(found) < len(planned):
            notes.append(f"{row['dataset']['name']} {row['model']['name']}: {len(found)} of the {len(planned)} "
                         f"seeds of its group found ({', '.join(map(str, found))})")
    return notes


def uncertainty_kind(row: Record) -> str:
    """"training_seeds" for a seed-group row, else "test_resampling" (also for runs recorded before
    run.json said so)."""
    return TRAINING_SEEDS if is_seed_row(row) else TEST_RESAMPLING
