"""`bench teacher-probe`: can the drug sets be read off a leader-teacher's features (validation split)?"""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli.console import stdout_console, user_errors
from bench.cli.options import (AllowModified, DataDir, Dataset, PrepSet, Protocol, Ratios, Resources, ResultsDir, Seed,
                                Split, SplitSeed, Threads, load_dataset, with_help)

TeacherDataset = with_help(Dataset, "the dataset the teacher was trained on")
TeacherSeed = with_help(Seed, "the teacher run's training seed (and the distilled subset's)")
TeacherSplitSeed = with_help(SplitSeed, "the teacher run's split seed")
ValidProtocol = with_help(Protocol, "validation samples: last | every")
TeacherResultsDir = with_help(ResultsDir, "where the teacher run is")
ProbeThreads = with_help(Threads, "torch CPU threads")


def teacher_probe(
    dataset: TeacherDataset = "synthetic",
    teacher_run: str = typer.Option("", "--teacher-run", help="a leader-teacher run id or folder (default: the "
                                                              "latest compatible one, as leader-student picks)"),
    n_train: int = typer.Option(2000, "--n", help="training samples of the probes: the seeded subset a student "
                                                  "with kd_samples=N distils on (0 = all)"),
    c: float = typer.Option(1.0, "--c", help="inverse L2 strength of every probe (sklearn's C)"),
    seed: TeacherSeed = 0,
    split_seed: TeacherSplitSeed = 0,
    split: Split = "random",
    ratios: Ratios = "8:1:1",
    protocol: ValidProtocol = "last",
    results_dir: TeacherResultsDir = Path("results"),
    data_dir: DataDir = None,
    resources: Resources = None,
    allow_modified: AllowModified = False,
    prep_set: PrepSet = None,
    threads: ProbeThreads = None,
) -> None:
    """Validation PRAUC of linear probes on the teacher's features, on the codes, and on both.

    Example: bench teacher-probe --dataset synthetic --n 2000
    """
    with user_errors():
        from rich.table import Table

        from bench.errors import UserError
        from bench.progress import RichProgressReporter
        from leader.probe import probe_rows
        from leader.teacher_runs import find_teacher_run, load_teacher_run

        if c <= 0 or n_train < 0:
            raise UserError(f"--c must be > 0 and --n >= 0, got {c} and {n_train}")
        from bench.runner import check_sampling, check_seed

        check_seed(seed)
        check_seed(split_seed, "--split-seed")
        check_sampling(protocol, split, ratios)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        bundle = load_dataset(dataset, data_dir, resources, prep_set, allow_modified)
        folder = find_teacher_run(results_dir, dataset, bundle.hash, seed=seed, split_seed=split_seed, split=split,
                                  ratios=ratios, teacher_run=teacher_run)
        if folder is None:
            raise UserError(f"no leader-teacher run for {dataset} with seed {seed}, split {split} {ratios} and split "
                            f"seed {split_seed} under {results_dir} (bench run --model leader-teacher first)")
        teacher = load_teacher_run(folder, bundle, "explicit" if teacher_run else "latest",
                                   progress=RichProgressReporter())
        rows = probe_rows(bundle, teacher.features, seed=seed, split_seed=split_seed, split=split, ratios=ratios,
                          protocol=protocol, n_train=n_train, c=c)
    table = Table(title=f"{dataset}: linear probes, validation PRAUC (teacher {folder.name}, "
                        f"{n_train or 'all'} training samples, C={c})")
    for header in ("inputs", "dims", "valid PRAUC"):
        table.add_column(header, justify="left" if header == "inputs" else "right")
    for row in rows:
        table.add_row(row.inputs, str(row.dims), f"{row.valid_prauc:.4f}")
    stdout_console().print(table)
