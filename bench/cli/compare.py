"""`bench compare`: the latest run per model and dataset, side by side; paired significance and plots."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli.console import stdout_console, user_errors


def compare(
    results_dir: Path = typer.Option(Path("results"), help="folder that `bench run` wrote to"),
    dataset: str = typer.Option(None, "--dataset", "-d", help="only this dataset"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | md | csv | latex"),
    vs: str = typer.Option(None, "--vs", help="reference MODEL: paired bootstrap of every other model against it"),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="bootstrap replicates for --vs"),
    seed: int = typer.Option(0, "--seed", help="random seed of the --vs bootstrap"),
    plot: Path = typer.Option(None, "--plot", help="also write PNG plots per dataset into this folder"),
    threshold: float = typer.Option(None, "--threshold", help="re-score every run that stored probabilities at "
                                                              "this threshold (default: each run's own)"),
) -> None:
    """Show the latest run of every model (per dataset), best value per column marked.

    Example: bench compare --dataset synthetic --format md --vs logreg --plot plots/
    """
    with user_errors():
        from bench.compare import FORMATS, render
        from bench.errors import UserError
        from bench.paired import paired_table, render_paired
        from bench.results import latest_runs, read_runs

        if fmt not in FORMATS:
            raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if bootstrap < 1:
            raise UserError(f"--bootstrap must be at least 1, got {bootstrap}")
        from bench.runner import check_seed

        check_seed(seed)
        if not results_dir.is_dir():
            raise UserError(f"--results-dir {results_dir}: no such folder (run `bench run` first)")
        runs = latest_runs(read_runs(results_dir), dataset)
        if threshold is not None:
            from bench.rescore import rescore
            from bench.runner import check_threshold

            check_threshold(threshold)
            runs = [rescore(r, threshold) for r in runs]
        if not runs:
            where = f" for dataset {dataset!r}" if dataset else ""
            raise UserError(f"no runs{where} under {results_dir} (run `bench run --model logreg` first)")
        outputs = [render(runs, fmt)]
        from bench.efficiency import efficiency_rows, render_efficiency

        speed = render_efficiency(efficiency_rows(runs), fmt)
        if speed:
            outputs.append(speed)
        if vs is not None:
            outputs.append(render_paired(paired_table(runs, vs, n_boot=bootstrap, seed=seed), fmt))
        written = []
        if plot is not None:
            from bench.plots import write_plots

            written = write_plots(runs, plot)
    for output in outputs:
        if isinstance(output, str):
            typer.echo(output, nl=False)
            if len(outputs) > 1 and output is not outputs[-1]:
                typer.echo("")
        else:
            stdout_console().print(output)
    for path in written:
        typer.echo(f"wrote {path}", err=True)
