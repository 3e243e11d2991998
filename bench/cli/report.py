"""`bench report`: one Markdown report of a dataset's latest runs (tables, significance, plots, provenance)."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli.console import user_errors
from bench.cli.options import Dataset, RunsDir, Seed, with_help

ReportDataset = with_help(Dataset, "the dataset to report on")
BootstrapSeed = with_help(Seed, "random seed of the bootstrap")


def report(
    dataset: ReportDataset,
    out: Path = typer.Option(..., "--out", "-o", help="Markdown file to write; plots go to <stem>_plots/ beside it"),
    vs: str = typer.Option(None, "--vs", help="reference MODEL of the significance table (default: the model with "
                                              "the best mean Jaccard)"),
    results_dir: RunsDir = Path("results"),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="bootstrap replicates of the significance table"),
    seed: BootstrapSeed = 0,
) -> None:
    """Write a Markdown report of the latest run of every model on DATASET (a model's latest seed group,
    `bench run --seeds`, as mean ± std over its training seeds).

    It reports on your runs (--results-dir); `--results-dir results/reference` reports on the
    committed reference runs instead.

    Example: bench report --dataset synthetic --out reports/synthetic.md --vs popular
             bench report --dataset synthetic --out reports/reference.md --results-dir results/reference
    """
    with user_errors():
        from bench.errors import UserError
        from bench.analysis.report import write_report
        from bench.analysis.seed_rows import latest_rows
        from bench.results import read_runs

        if out.suffix.lower() != ".md":
            raise UserError(f"--out {out}: expected a Markdown file name ending in .md")
        if out.is_dir():
            raise UserError(f"--out {out}: is a folder; expected a Markdown file name ending in .md")
        if bootstrap < 1:
            raise UserError(f"--bootstrap must be at least 1, got {bootstrap}")
        from bench.runner import check_seed

        check_seed(seed)
        if not results_dir.is_dir():
            raise UserError(f"--results-dir {results_dir}: no such folder (run `bench run` first)")
        path = write_report(latest_rows(read_runs(results_dir), dataset), dataset, out, vs=vs,
                            n_boot=bootstrap, seed=seed)
    typer.echo(f"wrote {path}")
