"""`bench run`: train one model on one dataset, evaluate it and store run.json."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from bench.cli.console import print_warnings, stdout_console, user_errors
from bench.cli.options import (AllowModifiedRecorded, DataDir, Dataset, Model, ModelSet, PrepSet, Protocol, Ratios,
                                Resources, ResultsDir, Seed, Seeds, Split, SplitSeed, Threads, Threshold, TrainProtocol,
                                run_options, seed_list)


def run(
    model: Model,
    dataset: Dataset = "synthetic",
    seed: Seed = 0,
    seeds: Seeds = None,
    split_seed: SplitSeed = 0,
    set_: ModelSet = None,
    threshold: Threshold = 0.5,
    protocol: Protocol = "last",
    train_protocol: TrainProtocol = "every",
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

    --seeds trains one run per training seed on the same patient split (--split-seed) and writes the
    group's mean ± std over the seeds to results/<dataset>/<model>/seed-groups/<group id>.json.

    Examples: bench run --model logreg --dataset synthetic --seed 0
              bench run --model logreg --dataset synthetic --seeds 0,1,2
              bench run --model logreg --dataset mimic3-demo --data-dir DEMO --resources MEDKB
    """
    with user_errors():
        from bench.progress import RichProgressReporter
        from bench.runner import run as run_model
        from bench.runner import run_seeds

        chosen_seeds = seed_list(seed, seeds)
        options = run_options(model=model, dataset=dataset, seed=seed, split_seed=split_seed, set_=set_,
                              threshold=threshold, protocol=protocol, train_protocol=train_protocol,
                              split=split, ratios=ratios,
                              results_dir=results_dir, data_dir=data_dir, resources=resources, prep_set=prep_set,
                              threads=threads, allow_modified=allow_modified)
        if chosen_seeds is None:
            record, folder = run_model(options, RichProgressReporter())
            written = folder / "run.json"
        else:
            from bench.analysis.seed_rows import as_row

            group = run_seeds(options, chosen_seeds, RichProgressReporter())
            record = as_row(group.records)
            written = group.path
            for member, folder in zip(group.records, group.folders):
                stdout_console().print(f"seed {member['seed']}: {folder / 'run.json'}")
    print_summary(record, written)
    print_warnings(record["dataset"]["meta"].get("warnings"))


def print_summary(record: dict, written: Path | None) -> None:
    """The run's metrics per group (the registry's model metrics, mean ± std), its cost and the test set's
    own metrics (ground-truth DDI rate). `record` may be a seed group's row (bench.analysis.seed_rows):
    then ± is the std over its training seeds and the cost the mean over them."""
    from bench.analysis.seed_rows import is_seed_row, seeds_of, uncertainty_note
    from bench.metric_registry import model_metrics, target_metrics
    from bench.seed_groups import split_seed_of

    console = stdout_console()
    seeds = (f"seeds {', '.join(map(str, seeds_of(record)))}" if is_seed_row(record)
             else f"seed {record['seed']}")
    table = Table(title=f"{record['model']['name']} on {record['dataset']['name']} "
                        f"({seeds}, split seed {split_seed_of(record)}, threshold "
                        f"{record['threshold']}, protocol {record['protocol']})",
                  caption=uncertainty_note([record]))
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

    def whole_test_set(entry: dict) -> float | None:   # a run's point, a seed group's mean of points
        return entry.get("point", entry.get("mean"))

    truth = " | ".join(f"{m.label} {point:.4f}" for m in target_metrics()
                       if (point := whole_test_set(record["metrics"]["all"].get(m.name, {}))) is not None)
    t = record["timing"]
    p50, p95 = latency_text(t), latency_text(t, "latency_ms_p95")
    latency = p50 if p50 == p95 and t.get("latency_ms_p95") is None else f"{p50}/{p95} ms"
    throughput = throughput_text(t) + ("" if t.get("throughput_per_s") is None else " samples/s")
    console.print(f"fit {t['fit_seconds']:.1f} s | latency p50/p95 {latency} | "
                  f"throughput {throughput} (batch {t.get('throughput_batch_size')}) | "
                  f"peak RSS {t['peak_rss_mb']:.0f} MB | "
                  f"{t['n_params']:,} parameters" + (f" | {truth}" if truth else ""))
    if written is not None:
        console.print(f"written: {written}")
