"""`bench run`: train one model on one dataset, evaluate it and store run.json."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from bench.cli.console import print_warnings, stdout_console, user_errors
from bench.cli.options import (AllowModifiedRecorded, DataDir, Dataset, Model, ModelSet, PrepSet, Protocol, Ratios,
                                Resources, ResultsDir, Seed, Split, Threads, Threshold)


def run(
    model: Model,
    dataset: Dataset = "synthetic",
    seed: Seed = 0,
    set_: ModelSet = None,
    threshold: Threshold = 0.5,
    protocol: Protocol = "last",
    split: Split = "random",
    ratios: Ratios = "8:1:1",
    results_dir: ResultsDir = Path("results"),
    data_dir: DataDir = None,
    resources: Resources = None,
    allow_modified: AllowModifiedRecorded = False,
    prep_set: PrepSet = None,
    threads: Threads = None,
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
