"""`bench synth-raw`: write synthetic raw MIMIC-III / MIMIC-IV tables at any fraction of MIMIC-IV's size."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from bench.cli.console import stdout_console, user_errors


def synth_raw(
    format_: str = typer.Option(..., "--format", help="mimic4 (hosp/*.csv.gz, lower-case headers) | "
                                                      "mimic3 (UPPER-case tables and headers, ICD-9 only)"),
    scale: float = typer.Option(..., help="fraction of full MIMIC-IV size: 1.0 = ~300k patients, 431k admissions, "
                                          "16M prescription rows; 0.001 = ~300 patients"),
    out: Path = typer.Option(..., help="output folder (created; existing files of the same names are replaced)"),
    seed: int = typer.Option(0, help="the same seed, format and scale give the same files"),
    resources: Path = typer.Option(None, help="folder holding ndc2rxnorm_mapping.txt "
                                              "(default: $MEDREC_RESOURCES)"),
) -> None:
    """Write raw hospital tables in the real MIMIC schemas (a load generator for the preprocessing).

    Example: bench synth-raw --format mimic4 --scale 0.1 --out /tmp/mimic4-0.1 --resources ~/medkb
    """
    with user_errors():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from bench.runner import check_seed
        from bench.prep.raw_tables import generate

        check_seed(seed)

        console = stdout_console()
        with Progress(TextColumn("generating {task.description}"), BarColumn(), TextColumn("{task.completed}/"
                      "{task.total} chunks"), TimeElapsedColumn(), transient=True,
                      console=console, disable=not console.is_terminal) as bar:
            task = bar.add_task(f"{format_} x{scale:g}", total=None)
            result = generate(format_, scale, out, resources=resources, seed=seed,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    table = Table(title=f"synthetic {result.format} at scale {result.scale:g} (seed {result.seed}) in {result.out}")
    table.add_column("table")
    table.add_column("file")
    table.add_column("rows", justify="right")
    table.add_column("MB", justify="right")
    for entry in result.tables:
        table.add_row(entry.name, str(entry.path.relative_to(result.out)), f"{entry.rows:,}",
                      f"{entry.bytes / 1e6:,.1f}")
    console.print(table)
    total = sum(entry.bytes for entry in result.tables)
    console.print(f"{total / 1e6:,.1f} MB written in {result.seconds:.1f} s")
