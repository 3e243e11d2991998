"""`bench run`: train one model on one dataset, evaluate it and store run.json."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from bench.cli.console import print_warnings, stdout_console, user_errors


def run(
    model: str = typer.Option(..., "--model", "-m", help="registered model, see `bench ls models`"),
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="registered dataset, see `bench ls datasets`"),
    seed: int = typer.Option(0, help="fixes the split, initialisation, sampling and resampling"),
    set_: list[str] = typer.Option(None, "--set", help="model option key=value (repeatable), e.g. --set lr=0.01"),
    threshold: float = typer.Option(0.5, help="probability at or above which a drug is predicted"),
    protocol: str = typer.Option("last", help="last: one sample per patient (its last visit); every: every visit"),
    split: str = typer.Option("random", help="random (seeded, by patient) | leader | gamenet"),
    ratios: str = typer.Option("8:1:1", help="train:valid:test patient ratios for random and leader splits"),
    results_dir: Path = typer.Option(Path("results"), help="where run folders are written"),
    data_dir: Path = typer.Option(None, help="raw tables of a MIMIC dataset (prepared and cached on first use)"),
    resources: Path = typer.Option(None, help="drug-knowledge folder (default: $MEDREC_RESOURCES)"),
    allow_modified: bool = typer.Option(False, "--allow-modified-resources",
                                        help="use drug-knowledge files whose sha256 differs from the pinned one "
                                             "(`bench resources verify`); recorded in run.json"),
    prep_set: list[str] = typer.Option(None, "--prep-set", help="preprocessing option key=value, see `bench prepare --help`"),
    threads: int = typer.Option(None, help="torch CPU threads (default: torch's choice); recorded in run.json"),
) -> None:
    """Train MODEL on DATASET, evaluate the test split and write results/<dataset>/<model>/<run_id>/run.json.

    Examples: bench run --model logreg --dataset synthetic --seed 0
              bench run --model logreg --dataset mimic3-demo --data-dir DEMO --resources MEDKB
    """
    with user_errors():
        from bench.config import parse_assignments
        from bench.progress import RichProgressReporter
        from bench.runner import RunOptions
        from bench.runner import run as run_model

        options = RunOptions(model=model, dataset=dataset, seed=seed, overrides=parse_assignments(set_),
                             threshold=threshold, protocol=protocol, split=split, ratios=ratios,
                             results_dir=results_dir, data_dir=data_dir, resources=resources,
                             prep_overrides=parse_assignments(prep_set, option="--prep-set"), threads=threads,
                             allow_modified_resources=allow_modified)
        record, folder = run_model(options, RichProgressReporter())
    print_summary(record, folder)
    print_warnings(record["dataset"]["meta"].get("warnings"))


def print_summary(record: dict, folder: Path) -> None:
    """The run's metrics per group (the registry's model metrics, mean ± std), its cost and the test set's
    own metrics (ground-truth DDI rate)."""
    from bench.metric_registry import model_metrics, target_metrics

    console = stdout_console()
    table = Table(title=f"{record['model']['name']} on {record['dataset']['name']} "
                        f"(seed {record['seed']}, threshold {record['threshold']}, protocol {record['protocol']})")
    table.add_column("group")
    table.add_column("n", justify="right")
    names = [metric.name for metric in model_metrics()]
    for name in names:
        table.add_column(name, justify="right")
    for group, entry in record["metrics"].items():
        cells = []
        for name in names:
            mean, std = (entry.get(name) or {}).get("mean"), (entry.get(name) or {}).get("std")
            cells.append("n/a" if mean is None else f"{mean:.4f} ± {std:.4f}")
        table.add_row(group, str(entry["n"]), *cells)
    console.print(table)
    from bench.timing import latency_text, throughput_text

    truth = " | ".join(f"{m.label} {point:.4f}" for m in target_metrics()
                       if (point := record["metrics"]["all"].get(m.name, {}).get("point")) is not None)
    t = record["timing"]
    p50, p95 = latency_text(t), latency_text(t, "latency_ms_p95")
    latency = p50 if p50 == p95 and t.get("latency_ms_p95") is None else f"{p50}/{p95} ms"
    throughput = throughput_text(t) + ("" if t.get("throughput_per_s") is None else " samples/s")
    console.print(f"fit {t['fit_seconds']:.1f} s | latency p50/p95 {latency} | "
                  f"throughput {throughput} (batch {t.get('throughput_batch_size')}) | "
                  f"peak RSS {t['peak_rss_mb']:.0f} MB | "
                  f"{t['n_params']:,} parameters" + (f" | {truth}" if truth else ""))
    console.print(f"written: {folder / 'run.json'}")
