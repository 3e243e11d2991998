"""`bench synth-raw`: write raw MIMIC tables, either random ones at any fraction of MIMIC-IV's size (a load
generator) or an existing cohort (a dataset card's bundle) as MIMIC-IV tables, for peer toolkits."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from bench.cli.console import stdout_console, user_errors
from bench.cli.options import AllowModified, Dataset, PrepSet, with_help

CohortSet = with_help(PrepSet, "with --dataset: the dataset's option key=value (repeatable), e.g. n_patients=500")
SourceDataset = with_help(Dataset, "write this dataset's cohort (e.g. synthetic, synthetic-small) as MIMIC-IV "
                                   "tables instead of random ones")


def synth_raw(
    format_: str = typer.Option(None, "--format", help="load generator: mimic4 (hosp/*.csv.gz, lower-case headers) | "
                                                       "mimic3 (UPPER-case tables and headers, ICD-9 only)"),
    scale: float = typer.Option(None, help="load generator: fraction of full MIMIC-IV size: 1.0 = ~300k patients, "
                                           "431k admissions, 16M prescription rows; 0.001 = ~300 patients"),
    out: Path = typer.Option(..., help="output folder (created; existing files of the same names are replaced)"),
    seed: int = typer.Option(None, help="load generator: the same seed, format and scale give the same files "
                                        "(default 0)"),
    dataset: SourceDataset = None,
    prep_set: CohortSet = None,
    drop_unmapped: bool = typer.Option(False, "--drop-unmapped-drugs",
                                       help="with --dataset: leave out drug classes that no NDC maps back to "
                                            "(otherwise they are an error)"),
    allow_modified: AllowModified = False,
    resources: Path = typer.Option(None, help="drug-knowledge folder like medkb (default: $MEDREC_RESOURCES); the "
                                              "load generator reads only its ndc2rxnorm_mapping.txt"),
) -> None:
    """Write raw hospital tables in the real MIMIC schemas: random ones at any scale (a load generator for the
    preprocessing), or an existing cohort so that a peer toolkit sees exactly the patients this harness evaluates.

    Examples: bench synth-raw --format mimic4 --scale 0.1 --out /tmp/mimic4-0.1 --resources ~/medkb;
    bench synth-raw --dataset synthetic --out /tmp/synthetic-mimic4 --resources ~/medkb
    """
    with user_errors():
        _check_mode(format_, scale, seed, dataset, prep_set, drop_unmapped, allow_modified)
        if dataset is not None:
            from bench.config import parse_assignments
            from bench.prep.raw_tables.bundle_export import export_dataset

            with stdout_console().status(f"writing {dataset} as MIMIC-IV tables"):
                exported = export_dataset(dataset, out, resources=resources,
                                          overrides=parse_assignments(prep_set, option="--prep-set"),
                                          drop_unmapped=drop_unmapped, allow_modified_resources=allow_modified)
            _print_export(exported)
            return
        result = _generate(format_, scale, out, seed or 0, resources)
    _print_tables(f"synthetic {result.format} at scale {result.scale:g} (seed {result.seed}) in {result.out}",
                  result.tables, result.out, result.seconds)


def _check_mode(format_: str | None, scale: float | None, seed: int | None, dataset: str | None,
                prep_set: list[str] | None, drop_unmapped: bool, allow_modified: bool) -> None:
    """One mode at a time: the load generator (--format, --scale, --seed) or an existing cohort (--dataset,
    --prep-set, --drop-unmapped-drugs, --allow-modified-resources)."""
    from bench.errors import UserError

    generator = [name for name, value in (("--format", format_), ("--scale", scale), ("--seed", seed))
                 if value is not None]
    cohort = [name for name, given in (("--prep-set", bool(prep_set)), ("--drop-unmapped-drugs", drop_unmapped),
                                       ("--allow-modified-resources", allow_modified)) if given]
    if dataset is not None:
        if generator:
            raise UserError(f"--dataset writes an existing cohort; {', '.join(generator)} "
                            f"{'is' if len(generator) == 1 else 'are'} for the load generator (--format and --scale): "
                            "use one mode or the other")
        return
    if cohort:
        raise UserError(f"{', '.join(cohort)}: only with --dataset (not for the load generator, --format and --scale)")
    if seed is not None:
        from bench.runner import check_seed

        check_seed(seed)
    if format_ is None or scale is None:
        missing = " and ".join(name for name, value in (("--format", format_), ("--scale", scale)) if value is None)
        raise UserError(f"missing {missing}: give --format and --scale (random tables at any size) or --dataset "
                        "(an existing cohort, e.g. synthetic)")


def _generate(format_: str, scale: float, out: Path, seed: int, resources: Path | None):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bench.prep.raw_tables import generate

    console = stdout_console()
    with Progress(TextColumn("generating {task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total} chunks"), TimeElapsedColumn(), transient=True,
                  console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"{format_} x{scale:g}", total=None)
        return generate(format_, scale, out, resources=resources, seed=seed,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))


def _print_tables(title: str, tables, out: Path, seconds: float) -> None:
    console = stdout_console()
    table = Table(title=title)
    table.add_column("table")
    table.add_column("file")
    table.add_column("rows", justify="right")
    table.add_column("MB", justify="right")
    for entry in tables:
        table.add_row(entry.name, str(entry.path.relative_to(out)), f"{entry.rows:,}", f"{entry.bytes / 1e6:,.1f}")
    console.print(table)
    total = sum(entry.bytes for entry in tables)
    console.print(f"{total / 1e6:,.1f} MB written in {seconds:.1f} s")


def _print_export(result) -> None:
    _print_tables(f"{result.dataset} as MIMIC-IV tables in {result.out}", result.tables, result.out, result.seconds)
    console = stdout_console()
    choice = result.ndc
    written = len(choice.ndc)
    line = f"{written} drug classes written, each as one NDC that maps back to it"
    if choice.shared:
        line += (f"; for {len(choice.shared)} ({', '.join(choice.shared)}) every such NDC's RXCUI also has ATC4 rows "
                 "of other classes (this harness keeps the first row)")
    console.print(line)
    if result.dropped_classes:
        console.print(f"dropped {result.dropped_rows:,} drug rows of {len(result.dropped_classes)} classes without an "
                      f"NDC ({', '.join(result.dropped_classes)}); {result.visits_without_drugs:,} visits were left "
                      "without a drug (MIMIC preprocessing drops such visits)")
    console.print(f"prepared as MIMIC-IV with nothing filtered out: bench prepare --dataset mimic4 --data-dir "
                  f"{result.out} --resources {result.resources} --set top_diagnoses=0 --set top_procedures=0 "
                  "--set top_drugs=0 --set require_smiles=false")
