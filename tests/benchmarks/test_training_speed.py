"""Training speed of every model that trains by epochs: one epoch of `fit` on a fixed subset
(opt-in: `pytest --benchmark-only tests/benchmarks/test_training_speed.py`).

The subset is synthetic-small's training split (seed 0, random 8:1:1, every visit a sample) and its
validation split (protocol `last`). Each round builds a fresh model with its DEFAULT sizes (not the
smoke options: the architecture's real training cost) and `epochs=1`, and fits it. extra_info holds
the run.json figures of the last round: training samples/s over the updates alone
(`FitReport.train_samples_per_s`, bench/training.py) and the validation share of the epoch. One torch
thread (`MEDREC_BENCH_THREADS` to change), as the reference runs.

`test_distilled_student_epoch_with_cached_teacher_features`: leader-student with a stand-in for cached
teacher features against leader-student-nokd, rounds interleaved (what distillation adds per epoch).

`test_previous_against_new_training_path`: GAMENet, MoleRec and the LEADER student keep their computation from
before the 2026-12 speed-up behind a private `_previous_path` flag (the same model: padded visit /
code tensors, torch's dropout and the per-parameter Adam loop). The new path is benchmarked and the
previous one timed the same way in the same run, rounds interleaved so that both see the same machine
load; extra_info holds both training samples/s and their ratio.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.data import make_samples
from bench.loading import build_resources
from bench.progress import Progress
from bench.registry import model_class
from bench.splits import split_patients

EPOCH_MODELS = ("logreg", "gamenet", "safedrug", "molerec", "leader-student-nokd")
WITH_PREVIOUS_PATH = ("gamenet", "molerec", "leader-student-nokd")
ROUNDS = 3

pytestmark = pytest.mark.usefixtures("torch_threads")


@pytest.fixture(scope="module")
def subset(small_bundle) -> dict:
    split = split_patients(small_bundle.patients, "random", seed=0)
    return {"split": split, "train": make_samples(split.train, "every"), "valid": make_samples(split.valid, "last")}


def _epoch(cls, resources, subset: dict, *, previous: bool = False):
    """Fit a fresh model with default sizes for one epoch; its FitReport."""
    model = cls.from_options({"epochs": "1"}, resources)
    if previous:
        model._previous_path = True
    return model.fit(subset["train"], subset["valid"], seed=0, progress=Progress())


@pytest.mark.parametrize("name", EPOCH_MODELS)
def test_one_training_epoch(benchmark, small_bundle, subset, name):
    cls = model_class(name)
    resources = build_resources(small_bundle, subset["split"].train, cls.needs)
    reports = []

    benchmark.pedantic(lambda: reports.append(_epoch(cls, resources, subset)), rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
    report = reports[-1]
    assert report.epochs == 1 and report.train_samples == len(subset["train"])
    benchmark.extra_info.update({
        "train_samples": report.train_samples,
        "train_samples_per_s": report.train_samples_per_s(),
        "valid_time_share": report.valid_time_share(),
        "threads": torch.get_num_threads(),
        "note": "one epoch of synthetic-small's training split at the model's default sizes",
    })


@pytest.mark.parametrize("name", WITH_PREVIOUS_PATH)
def test_previous_against_new_training_path(benchmark, small_bundle, subset, speed_note, name):
    benchmark.group = "training epoch: previous vs new path"
    cls = model_class(name)
    resources = build_resources(small_bundle, subset["split"].train, cls.needs)
    _epoch(cls, resources, subset, previous=True)                     # warm-up of the previous path
    rates = {"previous": [], "new": [], "previous_cpu": [], "new_cpu": []}

    def record(report, path: str) -> None:
        rates[path].append(report.train_samples_per_s())
        rates[path + "_cpu"].append(report.train_samples / report.train_cpu_seconds)

    def new_epoch() -> None:
        record(_epoch(cls, resources, subset), "new")
        # the previous path right after each new round: both see the same machine load
        record(_epoch(cls, resources, subset, previous=True), "previous")

    benchmark.pedantic(new_epoch, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    new, previous = statistics.median(rates["new"][1:]), statistics.median(rates["previous"][1:])
    new_cpu, previous_cpu = statistics.median(rates["new_cpu"][1:]), statistics.median(rates["previous_cpu"][1:])
    benchmark.extra_info.update({
        "train_samples": len(subset["train"]), "train_samples_per_s": new,
        "previous_train_samples_per_s": previous, "speedup": new / previous,
        # per CPU second of the process (FitReport.train_cpu_seconds): less moved by other work on the machine
        "train_samples_per_cpu_s": new_cpu, "previous_train_samples_per_cpu_s": previous_cpu,
        "speedup_cpu": new_cpu / previous_cpu,
        "rounds": ROUNDS, "threads": torch.get_num_threads(),
        "note": "one epoch of synthetic-small's training split at default sizes; the benchmarked time "
                "includes one epoch of the previous path per round (timed apart: previous_train_samples_per_s)",
    })
    speed_note(f"{name} one training epoch (synthetic-small): new {new:,.0f} samples/s, previous path "
               f"{previous:,.0f} samples/s -> {new / previous:.2f}x; per CPU second {new_cpu:,.0f} vs "
               f"{previous_cpu:,.0f} -> {new_cpu / previous_cpu:.2f}x (median of {ROUNDS}, same run)")
    assert new > previous


class CachedFeatures:
    """Stands in for a teacher whose features are already cached (leader/feature_cache.py): fixed
    seeded float32 rows of the default teacher's width (SmolLM2-135M, 576), read without any LLM
    pass. Only the cost of training with them is measured, not what they teach."""

    hidden_size = 576

    def __init__(self, samples):
        rows = np.random.default_rng(0).standard_normal((len(samples), self.hidden_size)).astype(np.float32)
        self._row = {(s.patient.id, s.index): r for s, r in zip(samples, rows)}

    def features(self, samples):
        return np.stack([self._row[(s.patient.id, s.index)] for s in samples])


def test_distilled_student_epoch_with_cached_teacher_features(benchmark, small_bundle, subset, speed_note):
    """One epoch of leader-student (distillation on every training sample, the default) against one
    of leader-student-nokd, rounds interleaved: what distillation adds to a training epoch once the
    teacher's features are cached."""
    benchmark.group = "training epoch: distilled student vs no-KD"
    kd_cls, nokd_cls = model_class("leader-student"), model_class("leader-student-nokd")
    kd_resources = replace(build_resources(small_bundle, subset["split"].train, frozenset()),
                           teacher=CachedFeatures(subset["train"]))
    nokd_resources = build_resources(small_bundle, subset["split"].train, nokd_cls.needs)
    rates = {"kd": [], "nokd": []}

    def kd_epoch() -> None:
        rates["kd"].append(_epoch(kd_cls, kd_resources, subset).train_samples_per_s())
        rates["nokd"].append(_epoch(nokd_cls, nokd_resources, subset).train_samples_per_s())

    benchmark.pedantic(kd_epoch, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    kd, nokd = statistics.median(rates["kd"][1:]), statistics.median(rates["nokd"][1:])
    benchmark.extra_info.update({"train_samples_per_s": kd, "nokd_train_samples_per_s": nokd,
                                 "kd_over_nokd": kd / nokd, "rounds": ROUNDS, "threads": torch.get_num_threads()})
    speed_note(f"leader-student one training epoch with cached teacher features (synthetic-small): {kd:,.0f} "
               f"samples/s, leader-student-nokd {nokd:,.0f} samples/s -> {kd / nokd:.2f}x (median of {ROUNDS})")
