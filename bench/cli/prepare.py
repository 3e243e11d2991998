"""`bench prepare`: build (or reuse from the cache) a dataset bundle and print its summary."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from bench.cli.console import print_warnings, stdout_console, user_errors
from bench.cli.options import AllowModified, DataDir, Dataset, Resources, load_dataset, with_help

RawTables = with_help(DataDir, "folder of the raw tables (MIMIC-III: *.csv[.gz]; MIMIC-IV: hosp/)")


def prepare(
    dataset: Dataset,
    data_dir: RawTables = None,
    resources: Resources = None,
    allow_modified: AllowModified = False,
    set_: list[str] = typer.Option(None, "--set", help="preprocessing option key=value (repeatable): top_diagnoses, "
                                   "top_procedures, top_drugs, require_smiles, min_visits, subsample, subsample_seed, titles"),
    cache_dir: Path = typer.Option(None, help="bundle cache (default: $MEDREC_CACHE or ~/.cache/medrec-bench)"),
) -> None:
    """Read raw tables, map drugs to ATC3, filter, join and cache the bundle; print what survived each step.

    Example: bench prepare --dataset mimic3-demo --data-dir mimic-iii-clinical-database-demo-1.4 --resources medkb
    """
    console = stdout_console()
    with user_errors():
        with console.status(f"preparing {dataset}") as status:
            bundle = load_dataset(dataset, data_dir, resources, set_, allow_modified, option="--set",
                                  cache_dir=cache_dir, step=lambda what: status.update(f"preparing {dataset}: {what}"))
    print_summary(bundle.name, bundle.hash, bundle.meta)
    print_warnings(bundle.meta.get("warnings"))


def print_summary(name: str, content_hash: str, meta: dict) -> None:
    console = stdout_console()
    summary = meta.get("summary", {})
    table = Table(title=f"{name} (hash {content_hash})", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("patients", f"{summary['patients']:,}")
    table.add_row("visits", f"{summary['visits']:,}")
    for kind, n in summary["codes"].items():
        table.add_row(f"{kind} codes", f"{n:,} (avg {summary['avg_codes_per_visit'][kind]:.2f} per visit)")
    table.add_row("single-visit patients", f"{summary['single_visit_share']:.1%}")
    table.add_row("ground-truth DDI rate", f"{summary['ddi_rate_ground_truth']:.4f}")
    if "drugs_in_ddi_graph" in summary:   # bundles prepared before the DDI graph's nodes were kept lack it
        source = f", nodes: {meta['ddi_nodes_source']}" if "ddi_nodes_source" in meta else ""
        table.add_row("drug classes in the DDI graph", f"{summary['drugs_in_ddi_graph']:,}/{summary['codes']['drug']:,}"
                      f"{source}")
    if summary.get("ddi_coverage_ground_truth") is not None:
        table.add_row("ground-truth pairs the DDI graph judges", f"{summary['ddi_coverage_ground_truth']:.1%}")
    if "ndc_coverage_distinct" in summary:
        counts = meta["counts"]
        table.add_row("NDC mapping coverage (distinct)",
                      f"{summary['ndc_coverage_distinct']:.1%} ({counts['ndc_distinct_mapped']:,}/{counts['ndc_distinct']:,})")
        table.add_row("NDC mapping coverage (rows)",
                      f"{summary['ndc_coverage_rows']:.1%} ({counts['ndc_rows_mapped']:,}/{counts['ndc_rows']:,})")
    console.print(table)
    if meta.get("counts"):
        steps = Table(title="step by step")
        steps.add_column("count")
        steps.add_column("value", justify="right")
        for key, value in meta["counts"].items():
            steps.add_row(key.replace("_", " "), f"{value:,}")
        console.print(steps)
