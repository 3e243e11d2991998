"""Inference cost of every registered model: `predict_proba` at batch 1 and batch 256 on synthetic-small
(opt-in: `pytest --benchmark-only`), and the LEADER student against its teacher.

Every model is fitted once per module with its `smoke_options` (the conformance test's tiny settings:
one or two epochs, small dimensions, LLM models on the random 2-layer `tiny-llama`), so the figures
are the inference cost of each architecture at those sizes, not of the paper-size models. The test
split's samples (protocol `last`, seed 0) are cycled: batch 1 predicts the next sample at each call,
batch 256 repeats the test samples up to 256, as `bench run` does for its timing; as there, a model's
per-visit input encodings (`bench.protocol.InputCache`) are cleared before every call, so each call
pays for encoding its samples (here the clearing, a dict clear, is inside the timed call).

`pytest --benchmark-only -m slow` adds `leader-teacher` and `plain-llm` on SmolLM2-135M (the other
smoke options kept) and the student against that teacher. Timings use one torch thread
(`MEDREC_BENCH_THREADS` to change); `MEDREC_BENCH_BATCH` changes the large batch size (default 256)
for a quick try.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch

from bench.data import Sample, make_samples
from bench.loading import build_resources
from bench.progress import Progress
from bench.protocol import clear_input_cache
from bench.registry import MODELS, model_class
from bench.splits import split_patients

BATCH = int(os.environ.get("MEDREC_BENCH_BATCH", "256"))
LLM_MODELS = ("leader-teacher", "plain-llm")  # seconds per large batch: timed in pedantic mode, few rounds
LLM_BASE = "smollm2-135m"                       # the opt-in (slow) variant's base model
SMOKE_NOTE = ("fitted with smoke_options on synthetic-small (tiny settings; LLM models on the random 2-layer "
              "tiny-llama unless base_model says otherwise): architecture inference cost, not paper-size models")


pytestmark = pytest.mark.usefixtures("torch_threads")


@pytest.fixture(scope="module")
def setting(small_bundle) -> dict:
    split = split_patients(small_bundle.patients, "random", seed=0)
    return {"bundle": small_bundle, "split": split, "train": make_samples(split.train, "every"),
            "valid": make_samples(split.valid, "last"), "test": make_samples(split.test, "last")}


@pytest.fixture(scope="module")
def fitted(setting) -> Callable[..., dict]:
    """fitted(name, **overrides) -> {"model", "options", "fit_s"}: each (name, overrides) fitted once."""
    cache: dict[tuple, dict | BaseException] = {}

    def get(name: str, **overrides: str) -> dict:
        key = (name, tuple(sorted(overrides.items())))
        if key not in cache:
            cls = model_class(name)
            options = {**cls.smoke_options, **overrides}
            try:
                resources = build_resources(setting["bundle"], setting["split"].train, cls.needs)
                model = cls.from_options(dict(options), resources)
                start = time.perf_counter()
                model.fit(setting["train"], setting["valid"], seed=0, progress=Progress())
                cache[key] = {"model": model, "options": options, "fit_s": time.perf_counter() - start}
            except Exception as exc:  # fit once: later tests of the same model fail fast with the same error
                cache[key] = exc
        if isinstance(cache[key], BaseException):
            raise cache[key]
        return cache[key]

    return get


def large_batch(test: Sequence[Sample], size: int) -> list[Sample]:
    return [test[i % len(test)] for i in range(size)]


def _info(entry: dict, batch: int, seconds: float) -> dict:
    model = entry["model"]
    figure = {"latency_ms": seconds * 1000} if batch == 1 else {"samples_per_s": batch / seconds}
    return {"model": model.name, "batch_size": batch, "seconds_per_call": seconds, **figure,
            "options": entry["options"], "fit_seconds": entry["fit_s"], "saved_params": model.n_params(),
            "dataset": "synthetic-small", "torch_threads": torch.get_num_threads(), "note": SMOKE_NOTE}


def _time_predict(benchmark, entry: dict, test: Sequence[Sample], batch: int, *, rounds: int | None) -> float:
    """Benchmark predict_proba at `batch` (rounds=None: calibrated mode, else pedantic); the median, seconds."""
    model = entry["model"]
    if batch == 1:
        cycle = itertools.cycle(test)
        def call() -> np.ndarray:
            clear_input_cache(model)
            return model.predict_proba([next(cycle)])
    else:
        samples = large_batch(test, batch)

        def call() -> np.ndarray:
            clear_input_cache(model)
            return model.predict_proba(samples)
    if rounds != 1:
        call()  # warm-up (skipped for single-round calls that take minutes)
    scores = benchmark(call) if rounds is None else benchmark.pedantic(call, rounds=rounds, iterations=1)
    assert scores.shape == (batch, len(model.resources.vocabs["drug"])) and scores.dtype == np.float32
    return benchmark.stats.stats.median


def _rate(samples_per_s: float) -> str:
    return f"{samples_per_s:,.0f}" if samples_per_s >= 100 else f"{samples_per_s:.3g}"


def _report(benchmark, speed_note, entry: dict, batch: int, seconds: float, label: str) -> None:
    benchmark.extra_info.update(_info(entry, batch, seconds))
    ms = seconds * 1000
    if batch == 1:
        figure = (f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}") + " ms per sample"
    else:
        figure = f"{_rate(batch / seconds)} samples/s"
    speed_note(f"predict_proba batch {batch:>3} {label:<32} {figure}")


@pytest.mark.parametrize("batch", [1, BATCH], ids=lambda b: f"batch{b}")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_predict_proba(benchmark, fitted, setting, speed_note, name, batch):
    benchmark.group = f"predict_proba batch {batch} (smoke options)"
    entry = fitted(name)
    rounds = (10 if batch == 1 else 3) if name in LLM_MODELS else None
    seconds = _time_predict(benchmark, entry, setting["test"], batch, rounds=rounds)
    _report(benchmark, speed_note, entry, batch, seconds, name)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, BATCH], ids=lambda b: f"batch{b}")
@pytest.mark.parametrize("name", LLM_MODELS)
def test_predict_proba_smollm2(benchmark, fitted, setting, speed_note, name, batch):
    benchmark.group = f"predict_proba batch {batch} ({LLM_BASE})"
    entry = fitted(name, base_model=LLM_BASE)
    seconds = _time_predict(benchmark, entry, setting["test"], batch, rounds=5 if batch == 1 else 1)
    _report(benchmark, speed_note, entry, batch, seconds, f"{name} ({LLM_BASE})")


# --------------------------------------------------------------------------- student against teacher
@pytest.mark.parametrize("teacher_base", ["tiny-llama", pytest.param(LLM_BASE, marks=pytest.mark.slow)])
def test_student_vs_teacher_throughput(benchmark, fitted, setting, speed_note, teacher_base):
    """The student (benchmarked) and the teacher (timed the same way, same samples, same batch)."""
    benchmark.group = "leader-student vs leader-teacher"
    slow = teacher_base != "tiny-llama"
    teacher = fitted("leader-teacher", **({"base_model": teacher_base} if slow else {}))
    student = fitted("leader-student")
    samples = large_batch(setting["test"], BATCH)
    rounds = 1 if slow else 3

    if not slow:
        teacher["model"].predict_proba(samples)  # warm-up
    teacher_times = []
    for _ in range(rounds):
        start = time.perf_counter()
        teacher["model"].predict_proba(samples)
        teacher_times.append(time.perf_counter() - start)
    teacher_s = float(np.median(teacher_times))
    benchmark.pedantic(student["model"].predict_proba, args=(samples,), rounds=rounds, iterations=1, warmup_rounds=1)
    student_s = benchmark.stats.stats.median

    ratio = teacher_s / student_s
    benchmark.extra_info.update({
        "batch_size": BATCH, "test_samples": len(setting["test"]), "rounds": rounds,
        "student_samples_per_s": BATCH / student_s, "teacher_samples_per_s": BATCH / teacher_s,
        "student_over_teacher_throughput": ratio, "teacher_base_model": teacher_base,
        "student_options": student["options"], "teacher_options": teacher["options"],
        "student_params": student["model"].n_params(), "teacher_params": teacher["model"].n_params(),
        "torch_threads": torch.get_num_threads(), "note": SMOKE_NOTE})
    speed_note(f"leader-student vs leader-teacher ({teacher_base}), batch {BATCH}: student {_rate(BATCH / student_s)} "
               f"samples/s, teacher {_rate(BATCH / teacher_s)} samples/s -> student {ratio:,.1f}x the teacher's throughput")
