"""`bench ls models|datasets|metrics|runs`: what is registered (imports no model code), and the run folders."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from bench.cli.console import stdout_console, user_errors


class Kind(str, Enum):
    models = "models"
    datasets = "datasets"
    metrics = "metrics"
    runs = "runs"


def ls(
    kind: Kind = typer.Argument(..., help="models, datasets, metrics or runs"),
    results_dir: Path = typer.Option(None, "--results-dir", help="runs: the folder `bench run` wrote to "
                                                                 "(default: results)", show_default=False),
    incomplete: bool = typer.Option(False, "--incomplete", help="runs: only folders without run.json (a run "
                                                                 "killed before it finished)"),
    remove: bool = typer.Option(False, "--remove", help="runs: with --incomplete, delete those folders "
                                                         "(not those changed in the last 5 minutes)"),
) -> None:
    """List registered models, datasets or metrics, or the run folders under --results-dir.

    Examples: bench ls models
              bench ls runs --incomplete --remove
    """
    with user_errors():
        from bench.errors import UserError

        if kind is not Kind.runs and (results_dir is not None or incomplete or remove):
            raise UserError("--results-dir, --incomplete and --remove apply to `bench ls runs` only")
        if kind is Kind.runs:
            _runs(results_dir or Path("results"), incomplete, remove)
            return
    table = Table()
    if kind is Kind.models:
        from bench.registry import MODELS
        table.add_column("model"); table.add_column("summary")
        for entry in MODELS.values():
            table.add_row(entry.name, entry.summary)
    elif kind is Kind.datasets:
        from bench.registry import dataset_cards
        table.add_column("dataset"); table.add_column("summary"); table.add_column("card")
        for card in dataset_cards().values():
            table.add_row(card.name, card.summary, card.path.name if card.path else "")
    else:
        from bench.metric_registry import METRICS
        for column in ("metric", "label", "better", "needs", "aggregation", "definition"):
            table.add_column(column)
        for metric in METRICS.values():
            better = {"high": "higher", "low": "lower", None: "-"}[metric.better]
            table.add_row(metric.name, metric.label, better, ", ".join(metric.needs), metric.aggregation,
                          metric.description)
    stdout_console().print(table)


def _runs(results_dir: Path, incomplete: bool, remove: bool) -> None:
    """The run folders (all, or the incomplete ones), and with `remove` delete the incomplete ones."""
    from bench.errors import UserError
    from bench.results import remove_incomplete, run_folders

    if remove and not incomplete:
        raise UserError("--remove deletes incomplete run folders only: add --incomplete")
    if not results_dir.is_dir():
        raise UserError(f"--results-dir {results_dir}: no such folder (run `bench run` first)")
    folders = [f for f in run_folders(results_dir) if not (incomplete and f.complete)]
    console = stdout_console()
    if remove:
        removed, kept = remove_incomplete(folders)
        for folder in removed:
            console.print(f"removed {folder.path}", highlight=False)
        for folder in kept:
            console.print(f"kept {folder.path} (changed {folder.idle_seconds:.0f} s ago: a run may still be "
                          "writing it)", highlight=False)
        if not removed and not kept:
            console.print(f"no incomplete run folder under {results_dir}", highlight=False)
        return
    table = Table(title=f"{'incomplete ' if incomplete else ''}run folders in {results_dir}", title_justify="left")
    for column in ("dataset", "model", "run id", "status"):
        table.add_column(column, overflow="fold")
    for folder in folders:
        status = "complete" if folder.complete else "incomplete: no run.json"
        if folder.maybe_running:
            status += " (changed in the last 5 minutes: may still be running)"
        table.add_row(folder.dataset, folder.model, folder.run_id, status)
    console.print(table)
