"""The command-line options that several verbs share, each defined once.

Every option is an `Annotated` alias: its type, flag names and help text. A verb declares it with its
own default, e.g. `seed: Seed = 0` or `dataset: Dataset` (required). Where a verb's help says
something of its own (`bench compare --dataset` filters, `bench rarity --threshold` re-scores), it
keeps the option and changes only the text: `RunsDataset = with_help(Dataset, "the dataset the runs
were made on")`. The helpers below turn the options that travel together into what the core takes.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from bench.data import DatasetBundle
    from bench.runner import RunOptions

# What is trained and on what.
Model = Annotated[str, typer.Option("--model", "-m", help="registered model, see `bench ls models`")]
Dataset = Annotated[str, typer.Option("--dataset", "-d", help="registered dataset, see `bench ls datasets`")]
ModelSet = Annotated[list[str], typer.Option("--set", help="model option key=value (repeatable), e.g. --set lr=0.01")]

# How the samples are drawn and scored (bench.runner.RunOptions).
Seed = Annotated[int, typer.Option(help="training seed: fixes initialisation, sampling and resampling "
                                         "(the split: --split-seed)")]
Seeds = Annotated[str, typer.Option(help="train once per training seed on the same split: a list 0,1,2 or a count 3 "
                                         "(seeds 0, 1, 2); writes a seed group; instead of --seed")]
SplitSeed = Annotated[int, typer.Option("--split-seed", help="fixes the random patient split, whatever the "
                                                             "training seed")]
Threshold = Annotated[float, typer.Option(help="probability at or above which a drug is predicted")]
Protocol = Annotated[str, typer.Option(help="last: one sample per patient (its last visit); every: every visit")]
TrainProtocol = Annotated[str, typer.Option(help="training samples: every: every visit of a training patient; "
                                                  "last: its last visit only (LEADER's data construction)")]
Split = Annotated[str, typer.Option(help="random (seeded, by patient) | leader | gamenet")]
Ratios = Annotated[str, typer.Option(help="train:valid:test patient ratios for random and leader splits")]
Threads = Annotated[int, typer.Option(help="torch CPU threads (default: torch's choice); recorded in run.json")]

# Where results are written and read.
ResultsDir = Annotated[Path, typer.Option(help="where run folders are written")]
RunsDir = Annotated[Path, typer.Option(help="folder that `bench run` wrote to; results/reference for the "
                                            "committed reference runs")]
Rescore = Annotated[float, typer.Option(help="re-score every run that stored probabilities at this threshold "
                                             "(default: each run's own)")]
Format = Annotated[str, typer.Option("--format", "-f", help="table | md | csv | latex")]

# How a dataset is prepared (bench.loading.load_bundle).
DataDir = Annotated[Path, typer.Option(help="raw tables of a MIMIC dataset (prepared and cached on first use)")]
Resources = Annotated[Path, typer.Option(help="drug-knowledge folder like medkb (default: $MEDREC_RESOURCES)")]
PrepSet = Annotated[list[str], typer.Option("--prep-set", help="preprocessing option key=value, "
                                                               "see `bench prepare --help`")]
_ALLOW_MODIFIED = ("use drug-knowledge files whose sha256 differs from the pinned one "
                   "(`bench resources verify`)")
AllowModified = Annotated[bool, typer.Option("--allow-modified-resources", help=_ALLOW_MODIFIED)]
AllowModifiedRecorded = Annotated[bool, typer.Option("--allow-modified-resources",
                                                     help=_ALLOW_MODIFIED + "; recorded in run.json")]


def with_help(option: Any, help: str) -> Any:
    """The shared `option` (one of the aliases above) with a verb's own help text."""
    kind, info = typing.get_args(option)
    info = copy.copy(info)
    info.help = help
    return Annotated[kind, info]


def check_format(fmt: str, choices: Sequence[str]) -> None:
    """UserError unless --format is one of `choices`."""
    from bench.errors import UserError

    if fmt not in choices:
        raise UserError(f"--format must be one of {', '.join(choices)}, got {fmt!r}")


def load_dataset(dataset: str, data_dir: Path | None, resources: Path | None, prep_set: list[str] | None,
                 allow_modified: bool, *, option: str = "--prep-set", **kwargs: Any) -> DatasetBundle:
    """The bundle that --dataset, --data-dir, --resources, --prep-set (its flag: `option`) and
    --allow-modified-resources name; `kwargs` go on to bench.loading.load_bundle."""
    from bench.config import parse_assignments
    from bench.loading import load_bundle

    return load_bundle(dataset, data_dir=data_dir, resources=resources,
                       overrides=parse_assignments(prep_set, option=option),
                       allow_modified_resources=allow_modified, **kwargs)


def seed_list(seed: int, seeds: str | None) -> tuple[int, ...] | None:
    """The training seeds of --seeds (None: one run with --seed); both given is a UserError."""
    from bench.errors import UserError
    from bench.seed_groups import parse_seeds

    if seeds is not None and seed != 0:
        raise UserError(f"--seed {seed} and --seeds {seeds}: give one of them")
    return None if seeds is None else parse_seeds(seeds)


def run_options(*, set_: list[str] | None, prep_set: list[str] | None, allow_modified: bool,
                **options: Any) -> RunOptions:
    """bench.runner.RunOptions from a verb's options: --set and --prep-set parsed, the rest as named."""
    from bench.config import parse_assignments
    from bench.runner import RunOptions

    return RunOptions(overrides=parse_assignments(set_), prep_overrides=parse_assignments(prep_set, option="--prep-set"),
                      allow_modified_resources=allow_modified, **options)
