"""`bench compare`: the latest run per model and dataset, side by side; paired significance and plots."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli.console import stdout_console, user_errors
from bench.cli.options import Dataset, Format, Rescore, ResultsDir, Seed, check_format, with_help

OnlyDataset = with_help(Dataset, "only this dataset")
YourRunsDir = with_help(ResultsDir, "folder that `bench run` wrote to")
BootstrapSeed = with_help(Seed, "random seed of the --vs bootstrap")


def compare(
    results_dir: YourRunsDir = Path("results"),
    dataset: OnlyDataset = None,
    fmt: Format = "table",
    vs: str = typer.Option(None, "--vs", help="reference MODEL: paired bootstrap of every other model against it"),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="bootstrap replicates for --vs"),
    seed: BootstrapSeed = 0,
    plot: Path = typer.Option(None, "--plot", help="also write PNG plots per dataset into this folder"),
    threshold: Rescore = None,
    reference: bool = typer.Option(False, "--reference", help="also show the committed reference runs, as rows "
                                                              "named 'MODEL (ref)' beside your own"),
    reference_dir: Path = typer.Option(None, "--reference-dir", help="where the reference runs are (default: the "
                                                                     "repository's results/reference)"),
    groups: bool = typer.Option(False, "--groups", help="also show the main metrics on every evaluation group "
                                                        "(single/multi-visit, rare/unseen codes, mechanism tags)"),
    vs_group: str = typer.Option(None, "--vs-group", help="--vs on this evaluation group's test samples only "
                                                          "(e.g. single_visit, unseen_code)"),
) -> None:
    """Show your latest run of every model (per dataset), best value per column marked.

    When a model's latest run belongs to a seed group (`bench run --seeds`), its row is that group:
    mean ± std over the training seeds (the table says which ± it shows), and --vs pairs the two
    models seed by seed on the same test samples (docs/evaluation.md).

    Your runs are those `bench run` wrote under --results-dir. The committed reference runs
    (results/reference/) are shown only with --reference, each as its own row named "MODEL (ref)":
    a model you ran keeps its row and the reference row sits below it, never merged. --vs takes
    either name (--vs "logreg (ref)").

    Cost columns: "fit s" (wall-clock training time), "train samples/s" (training samples per second
    of update time, run.json fit.train_samples_per_s; n/a for runs recorded before it and for models
    that do not train by updates), batch-1 latency "p50 ms" and inference throughput "samples/s". The
    table shows them in its second part, in every format (CSV: train_samples_per_s).

    --groups adds one table per dataset: Jaccard, F1, PRAUC and the DDI rate (where the dataset has
    interactions) on every evaluation group the runs hold (docs/evaluation.md#evaluation-groups), the
    group's test samples in its column header. --vs-group G runs the --vs comparison on group G alone.

    Example: bench compare --dataset synthetic --format md --vs logreg --plot plots/
             bench compare --reference
             bench compare --groups --threshold 0.3
    """
    with user_errors():
        from bench.analysis.compare import FORMATS, render
        from bench.errors import UserError
        from bench.analysis.paired import paired_table, render_paired
        from bench.analysis.reference import combined, default_reference_dir, reference_runs
        from bench.analysis.seed_rows import latest_rows, map_members
        from bench.results import read_runs

        check_format(fmt, FORMATS)
        if bootstrap < 1:
            raise UserError(f"--bootstrap must be at least 1, got {bootstrap}")
        from bench.runner import check_seed

        check_seed(seed)
        if threshold is not None:
            from bench.runner import check_threshold

            check_threshold(threshold)
        show_reference = "; `bench compare --reference` shows the committed reference runs"
        if not results_dir.is_dir() and not reference:
            raise UserError(f"--results-dir {results_dir}: no such folder (run `bench run` first{show_reference})")
        runs = latest_rows(read_runs(results_dir), dataset) if results_dir.is_dir() else []
        where = f" for dataset {dataset!r}" if dataset else ""
        if not runs and not reference:
            raise UserError(f"no runs of yours{where} under {results_dir} (run `bench run --model logreg` "
                            f"first{show_reference})")
        if reference:
            folder = reference_dir or default_reference_dir()
            refs = reference_runs(folder, dataset)
            if not refs and not runs:
                raise UserError(f"--reference: no reference runs{where} under {folder}, and none of yours "
                                f"under {results_dir}")
            if not refs:
                typer.echo(f"--reference: no reference runs{where} under {folder}", err=True)
            runs = combined(runs, refs)
        if threshold is not None:
            from bench.analysis.rescore import rescore

            runs = [map_members(r, lambda run: rescore(run, threshold)) for r in runs]
        outputs = [render(runs, fmt)]
        if groups:
            from bench.analysis.group_compare import render_groups

            outputs.append(render_groups(runs, fmt))
        from bench.analysis.efficiency import efficiency_rows, render_efficiency

        speed = render_efficiency(efficiency_rows(runs), fmt)
        if speed:
            outputs.append(speed)
        from bench.plugins import extra_tables

        outputs += extra_tables(runs, fmt)   # the plug-ins' tables (bench.plugins.Table)
        if vs is not None:
            outputs.append(render_paired(paired_table(runs, vs, n_boot=bootstrap, seed=seed, group=vs_group), fmt))
        elif vs_group is not None:
            raise UserError("--vs-group needs --vs MODEL (the model to compare against)")
        written = []
        if plot is not None:
            from bench.analysis.plots import write_plots

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
