"""`bench rarity`: every run's test accuracy binned by the training frequency of the visit's rarest code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bench.cli.console import stdout_console, user_errors


def rarity(
    dataset: str = typer.Option(..., "--dataset", "-d", help="the dataset the runs were made on"),
    results_dir: Path = typer.Option(Path("results"), help="folder that `bench run` wrote to; "
                                                            "results/reference for the committed reference runs"),
    run_ids: list[str] = typer.Option(None, "--run", help="only these run ids (repeatable); default: the latest "
                                                          "run of every model on DATASET"),
    edges: str = typer.Option("1,5,20", help="bin edges on the rarest code's number of training visits"),
    threshold: float = typer.Option(None, help="re-score every run with stored probabilities at this threshold "
                                               "(default: each run's own)"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | md | csv"),
    data_dir: Path = typer.Option(None, help="raw tables of a MIMIC dataset (as given to `bench run`)"),
    resources: Path = typer.Option(None, help="drug-knowledge folder (default: $MEDREC_RESOURCES)"),
    allow_modified: bool = typer.Option(False, "--allow-modified-resources",
                                        help="use drug-knowledge files whose sha256 differs from the pinned one "
                                             "(`bench resources verify`)"),
    prep_set: list[str] = typer.Option(None, "--prep-set", help="preprocessing option key=value, as given to `bench run`"),
) -> None:
    """Accuracy per bin of how often the current visit's rarest diagnosis code occurs in training.

    Example: bench rarity --dataset synthetic --edges 1,5,20 --threshold 0.3
    """
    with user_errors():
        from bench.config import parse_assignments
        from bench.errors import UserError
        from bench.loading import load_bundle
        from bench.analysis.rarity import parse_edges, rarity_rows, render_rarity
        from bench.results import latest_runs, read_runs

        if fmt not in ("table", "md", "csv"):
            raise UserError(f"--format must be one of table, md, csv, got {fmt!r}")
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
        bundle = load_bundle(dataset, data_dir=data_dir, resources=resources,
                             overrides=parse_assignments(prep_set, option="--prep-set"),
                             allow_modified_resources=allow_modified)
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
