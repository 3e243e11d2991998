"""`bench ls models|datasets|metrics`: what is registered (imports no model code)."""

from __future__ import annotations

from enum import Enum

import typer
from rich.table import Table

from bench.cli.console import stdout_console


class Kind(str, Enum):
    models = "models"
    datasets = "datasets"
    metrics = "metrics"


def ls(kind: Kind = typer.Argument(..., help="models, datasets or metrics")) -> None:
    """List registered models, datasets or metrics.

    Example: bench ls models
    """
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
        from bench.metrics import METRICS
        table.add_column("metric"); table.add_column("better"); table.add_column("needs scores")
        table.add_column("definition")
        for spec in METRICS.values():
            better = {True: "higher", False: "lower", None: "-"}[spec.higher_is_better]
            table.add_row(spec.name, better, "yes" if spec.needs_scores else "no", spec.description)
    stdout_console().print(table)
