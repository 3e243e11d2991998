"""`bench rarity`: every run's test accuracy binned by the training frequency of the visit's rarest code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bench.cli.console import stdout_console, user_errors
from bench.cli.options import (AllowModified, DataDir, Dataset, Format, PrepSet, Rescore, Resources, RunsDir,
                                check_format, load_dataset, with_help)

RunsDataset = with_help(Dataset, "the dataset the runs were made on")
RunDataDir = with_help(DataDir, "raw tables of a MIMIC dataset (as given to `bench run`)")
RunPrepSet = with_help(PrepSet, "preprocessing option key=value, as given to `bench run`")
RarityFormat = with_help(Format, "table | md | csv")


def rarity(
    dataset: RunsDataset,
    results_dir: RunsDir = Path("results"),
    run_ids: list[str] = typer.Option(None, "--run", help="only these run ids (repeatable); default: the latest "
                                                          "run of every model on DATASET"),
    edges: str = typer.Option("1,5,20", help="bin edges on the rarest code's number of training visits"),
    threshold: Rescore = None,
    fmt: RarityFormat = "table",
    data_dir: RunDataDir = None,
    resources: Resources = None,
    allow_modified: AllowModified = False,
    prep_set: RunPrepSet = None,
) -> None:
    """Accuracy per bin of how often the current visit's rarest diagnosis code occurs in training.

    Example: bench rarity --dataset synthetic --edges 1,5,20 --threshold 0.3
    """
    with user_errors():
        from bench.errors import UserError
        from bench.analysis.rarity import parse_edges, rarity_rows, render_rarity
        from bench.results import latest_runs, read_runs

        check_format(fmt, ("table", "md", "csv"))
        if threshold is not None:
            from bench.runner import check_threshold

            check_threshold(threshold)
        cuts = parse_edges(edges)
        if not results_dir.is_dir():
            raise UserError(f"--results-dir {results_dir}: no such folder (run `bench run` first)")
        runs = [r for r in read_runs(results_dir) if r["dataset"]["name"] == dataset]
        if run_ids:
            missing = sorted(set(run_ids) - {r["run_id"] for r in runs})
            if missing:
                raise UserError(f"--run {missing[0]}: no run of {dataset} with this id under {results_dir}")
            runs = sorted((r for r in runs if r["run_id"] in run_ids), key=lambda r: r["created_at"])
        else:
            runs = latest_runs(runs)
        if not runs:
            raise UserError(f"no runs for dataset {dataset!r} under {results_dir} (run `bench run` first)")
        bundle = load_dataset(dataset, data_dir, resources, prep_set, allow_modified)
        rows = rarity_rows(label_runs(runs), bundle, cuts, threshold)
        title = (f"{dataset}: test samples by the training visits of their rarest diagnosis code "
                 f"(threshold {'per run' if threshold is None else threshold})")
        output = render_rarity(rows, fmt, title)
    if isinstance(output, str):
        typer.echo(output, nl=False)
    else:
        stdout_console().print(output)


def label_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of a model that appears more than once are named by their --set options and run id too."""
    names = [r["model"]["name"] for r in runs]
    labelled = []
    for record, name in zip(runs, names):
        if names.count(name) > 1:
            sets = ",".join(f"{k}={v}" for k, v in sorted(record.get("overrides", {}).items()))
            name = f"{name} ({sets or 'defaults'}, {record['run_id']})"
        labelled.append({**record, "model": {**record["model"], "name": name}})
    return labelled
