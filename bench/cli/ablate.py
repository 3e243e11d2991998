"""`bench ablate`: a model's ablation ladder from one command, every row with the same seed and split.

The model class declares its rows as `ablation`, a tuple of bench.protocol.AblationStep (label, model,
overrides, reuse). A `reuse` row is not
trained here: it shows the latest run of that model on the same dataset (same dataset hash, seed,
split, split seed, ratios and protocol; re-scored from its stored predictions at the ablation's threshold, see
bench.analysis.rescore) after the others ran (a distilling row trains the teacher first when none exists).
With `--seeds`, every trained row is a seed group (bench.runner.run_seeds, one run per training seed on
the same split), a reused row is the latest compatible run of each seed, and the table shows mean ± std
over the seeds (bench.analysis.seed_rows).
`--set` options go to every trained row whose model has that option. The table is `bench compare`'s
(overall, then single/multi-visit and cost), one row per ablation step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bench.cli.console import stdout_console, user_errors
from bench.cli.options import (AllowModifiedRecorded, DataDir, Dataset, Format, Model, ModelSet, PrepSet, Protocol,
                                Ratios, Resources, ResultsDir, Seed, Seeds, Split, SplitSeed, Threads, Threshold,
                                check_format, run_options, seed_list, with_help)

AblationModel = with_help(Model, "a model that declares ablation steps (bench.protocol.AblationStep)")
AblationSeed = with_help(Seed, "the same training seed (initialisation, sampling, resampling) for every row")
AblationSeeds = with_help(Seeds, "every row once per training seed on the same split: a list 0,1,2 or a count 3; "
                                 "rows show mean ± std over the seeds; instead of --seed")
AblationSet = with_help(ModelSet, "model option key=value for every row that has it")
AblationThreshold = with_help(Threshold, "probability at or above which a drug is predicted (LEADER's student: 0.3)")
AblationResultsDir = with_help(ResultsDir, "where run folders are written and looked up")


def ablate(
    model: AblationModel,
    dataset: Dataset = "synthetic",
    seed: AblationSeed = 0,
    seeds: AblationSeeds = None,
    split_seed: SplitSeed = 0,
    set_: AblationSet = None,
    threshold: AblationThreshold = 0.5,
    protocol: Protocol = "last",
    split: Split = "random",
    ratios: Ratios = "8:1:1",
    results_dir: AblationResultsDir = Path("results"),
    data_dir: DataDir = None,
    resources: Resources = None,
    allow_modified: AllowModifiedRecorded = False,
    prep_set: PrepSet = None,
    threads: Threads = None,
    fmt: Format = "table",
) -> None:
    """Train every step of MODEL's ablation on DATASET with one seed (or each of --seeds) and print them
    side by side.

    Example: bench ablate --model MODEL --dataset synthetic --threshold 0.3
             bench ablate --model MODEL --dataset synthetic --seeds 3
             (MODEL: one whose class declares `ablation`, e.g. LEADER's student, docs/leader.md)
    """
    with user_errors():
        from bench.analysis.compare import FORMATS, render
        from bench.progress import RichProgressReporter
        from bench.runner import check_seed

        check_format(fmt, FORMATS)
        check_seed(seed)
        check_seed(split_seed, "--split-seed")
        chosen_seeds = seed_list(seed, seeds)
        base = run_options(model=model, dataset=dataset, seed=seed, split_seed=split_seed, set_=set_,
                           threshold=threshold, protocol=protocol, split=split, ratios=ratios, results_dir=results_dir,
                           data_dir=data_dir, resources=resources, prep_set=prep_set, threads=threads,
                           allow_modified=allow_modified)
        records = run_ablation(base, RichProgressReporter(), chosen_seeds)
        output = render(records, fmt)
    if isinstance(output, str):
        typer.echo(output, nl=False)
    else:
        stdout_console().print(output)


def run_ablation(base, progress, seeds: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """One row per ablation step of `base.model` (bench.runner.RunOptions), each relabelled
    "<model> (<label>)" for the table: a run record, or with `seeds` a row over those training seeds
    (bench.analysis.seed_rows; every trained step is a seed group of its own)."""
    import dataclasses
    from dataclasses import replace

    from bench.analysis.seed_rows import as_row, map_members
    from bench.errors import UserError
    from bench.registry import model_class
    from bench.runner import run, run_seeds

    steps = model_class(base.model).ablation
    if not steps:
        raise UserError(f"model {base.model} declares no ablation steps (`bench ls models` lists the models; "
                        "a model declares its steps as `ablation`)")
    trained: dict[int, list[dict[str, Any]]] = {}   # step -> its runs, one per seed
    for i, step in enumerate(steps):
        if step.reuse:
            continue
        fields = {f.name for f in dataclasses.fields(model_class(step.model).Config)}
        overrides = {k: v for k, v in base.overrides.items() if k in fields} | dict(step.overrides)
        options = replace(base, model=step.model, overrides=overrides)
        trained[i] = [run(options, progress)[0]] if seeds is None else run_seeds(options, seeds, progress).records
    references = next(iter(trained.values()), [])
    rows = []
    for i, step in enumerate(steps):
        found = trained.get(i) or [run for reference in references
                                   if (run := _latest_compatible(base, step.model, reference)) is not None]
        if not found:
            typer.echo(f"no {step.model} run on {base.dataset} with this seed, split and protocol: "
                       f"row {step.label!r} left out", err=True)
            continue
        if len(found) < len(references):
            typer.echo(f"row {step.label!r}: {step.model} has runs for {len(found)} of the {len(references)} "
                       "seeds with this split and protocol; the row shows those", err=True)
        name = f"{step.model} ({step.label})"
        rows.append(map_members(as_row(found), lambda r: {**r, "model": {**r["model"], "name": name}}))
    return rows


def _latest_compatible(base, model: str, reference: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newest run of `model` with the reference run's dataset hash, training seed, split, split seed,
    ratios and protocol (the same test samples), re-scored at the ablation's threshold if it used another."""
    from bench.errors import UserError
    from bench.analysis.rescore import rescore
    from bench.results import read_runs
    from bench.seed_groups import split_seed_of

    if reference is None or not (base.results_dir / base.dataset / model).is_dir():
        return None
    def key(r: dict[str, Any]) -> tuple:
        return (r["dataset"]["hash"], r["seed"], split_seed_of(r), r["split"]["scheme"], r["split"]["ratios"],
                r["protocol"])

    runs = [r for r in read_runs(base.results_dir) if r["model"]["name"] == model
            and r["dataset"]["name"] == base.dataset and key(r) == key(reference)]
    latest = max(runs, key=lambda r: r["created_at"], default=None)
    if latest is None:
        return None
    try:
        return rescore(latest, base.threshold)
    except UserError as exc:   # the trained rows are not lost for one unreadable reused row
        typer.echo(f"{exc}: row of {model} left out", err=True)
        return None
