"""`bench compare`: the latest run per model and dataset, side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli.console import stdout_console, user_errors


def compare(
    results_dir: Path = typer.Option(Path("results"), help="folder that `bench run` wrote to"),
    dataset: str = typer.Option(None, "--dataset", "-d", help="only this dataset"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | md | csv | latex"),
) -> None:
    """Show the latest run of every model (per dataset), best value per column marked.

    Example: bench compare --dataset synthetic --format md
    """
    with user_errors():
        from bench.compare import FORMATS, render
        from bench.errors import UserError
        from bench.results import latest_runs, read_runs

        if fmt not in FORMATS:
            raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if not results_dir.is_dir():
            raise UserError(f"--results-dir {results_dir}: no such folder (run `bench run` first)")
        runs = latest_runs(read_runs(results_dir), dataset)
        if not runs:
            where = f" for dataset {dataset!r}" if dataset else ""
            raise UserError(f"no runs{where} under {results_dir} (run `bench run --model logreg` first)")
        output = render(runs, fmt)
    if isinstance(output, str):
        typer.echo(output, nl=False)
    else:
        stdout_console().print(output)
