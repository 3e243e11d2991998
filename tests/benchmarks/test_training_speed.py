"""Training speed of every model that trains by epochs: one epoch of `fit` on a fixed subset
(opt-in: `pytest --benchmark-only tests/benchmarks/test_training_speed.py`).

The subset is synthetic-small's training split (seed 0, random 8:1:1, every visit a sample) and its
validation split (protocol `last`). Each round builds a fresh model with its DEFAULT sizes (not the
smoke options: the architecture's real training cost) and `epochs=1`, and fits it. extra_info holds
the run.json figures of the last round: training samples/s over the updates alone
(`FitReport.train_samples_per_s`, bench/training.py) and the validation share of the epoch. One torch
thread (`MEDREC_BENCH_THREADS` to change), as the reference runs.
"""

from __future__ import annotations

import pytest
import torch

from bench.data import make_samples
from bench.loading import build_resources
from bench.progress import Progress
from bench.registry import model_class
from bench.splits import split_patients

EPOCH_MODELS = ("logreg", "gamenet", "safedrug", "molerec", "leader-student-nokd")

pytestmark = pytest.mark.usefixtures("torch_threads")


@pytest.fixture(scope="module")
def subset(small_bundle) -> dict:
    split = split_patients(small_bundle.patients, "random", seed=0)
    return {"split": split, "train": make_samples(split.train, "every"), "valid": make_samples(split.valid, "last")}


@pytest.mark.parametrize("name", EPOCH_MODELS)
def test_one_training_epoch(benchmark, small_bundle, subset, name):
    cls = model_class(name)
    resources = build_resources(small_bundle, subset["split"].train, cls.needs)
    reports = []

    def one_epoch() -> None:
        model = cls.from_options({"epochs": "1"}, resources)
        reports.append(model.fit(subset["train"], subset["valid"], seed=0, progress=Progress()))

    benchmark.pedantic(one_epoch, rounds=3, iterations=1, warmup_rounds=1)
    report = reports[-1]
    assert report.epochs == 1 and report.train_samples == len(subset["train"])
    benchmark.extra_info.update({
        "train_samples": report.train_samples,
        "train_samples_per_s": report.train_samples_per_s(),
        "valid_time_share": report.valid_time_share(),
        "threads": torch.get_num_threads(),
        "note": "one epoch of synthetic-small's training split at the model's default sizes",
    })
