"""The teacher's training loop (leader/teacher_training.py), its output-side options
(leader/teacher_head.py) and checkpoints (bench/checkpoints.py), with the tiny random LLaMA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data import make_samples, target_matrix
from bench.errors import UserError
from bench.metrics import average_precision_rows
from bench.progress import Progress
from leader import teacher_training
from leader.llm_inputs import length_bucketed_batches
from leader.teacher import LeaderTeacher
from leader.teacher_head import RunningCenter, prior_logits
from leader.teacher_training import parse_budget, step_groups, valid_subset

from tests.teacher_helpers import SMOKE, teacher, teacher_data


@pytest.fixture(scope="module")
def data(small_bundle):
    base = teacher_data(small_bundle)
    split = base["split"]
    return base | {"train16": make_samples(split.train, "last")[:16], "valid": make_samples(split.valid, "last")[:6]}


# --- options and pure pieces --------------------------------------------------------------------------

def test_parse_budget_units_and_one_line_errors(data):
    assert (parse_budget("45m"), parse_budget("90s"), parse_budget("1.5h"), parse_budget("")) == (2700, 90, 5400, None)
    assert parse_budget("none") is None
    for bad in ("45", "45x", "-1m", "0m", "m", "45 min"):
        with pytest.raises(UserError) as error:
            LeaderTeacher.parse_config({"budget": bad})
        assert "budget" in str(error.value) and "45m" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(UserError, match="steps >= 0"):
        LeaderTeacher.parse_config({"steps": "-1"})


def test_epoch_batches_and_step_groups():
    """Batches come from leader.llm_inputs.length_bucketed_batches (tests/test_teacher_speed.py)."""
    batches = length_bucketed_batches([5] * 10, 4, seed=3, epoch=0, pool_batches=1)
    assert sorted(len(b) for b in batches) == [2, 4, 4] and sorted(sum(batches, [])) == list(range(10))
    assert length_bucketed_batches([5] * 10, 4, seed=3, epoch=0, pool_batches=1) == batches  # (seed, epoch)
    assert length_bucketed_batches([5] * 10, 4, seed=3, epoch=1, pool_batches=1) != batches
    b = [[0], [1], [2], [3], [4]]
    assert step_groups(b, 2) == [[[0], [1]], [[2], [3]], [[4]]]
    assert step_groups(b, 1, rank=0, world=2) == [[[0]], [[2]]]        # 5 groups: 4 usable on 2 processes
    assert step_groups(b, 1, rank=1, world=2) == [[[1]], [[3]]]


def test_valid_subset_is_fixed_by_the_seed(data):
    valid = data["valid"]
    first = valid_subset(valid, 4, seed=0)
    assert len(first) == 4 and first == valid_subset(valid, 4, seed=0)
    assert [valid.index(s) for s in first] == sorted(valid.index(s) for s in first)
    assert valid_subset(valid, 100, seed=0) == valid


def test_prior_logits_and_running_center_by_hand():
    targets = np.array([[1, 0], [1, 1], [0, 0], [1, 0]])
    np.testing.assert_allclose(prior_logits(targets), [np.log(3), -np.log(3)], rtol=1e-6)
    np.testing.assert_allclose(prior_logits(np.zeros((2, 1))), [np.log(1e-4 / (1 - 1e-4))], rtol=1e-5)
    center = RunningCenter(2, momentum=0.05).train()
    out = center(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))           # mean (2, 3)
    assert out.tolist() == [[-1.0, -1.0], [1.0, 1.0]]
    center(torch.tensor([[5.0, 5.0], [5.0, 5.0]]))                  # (2, 3) + 0.05 * ((5, 5) - (2, 3))
    np.testing.assert_allclose(center.mean.numpy(), [2.15, 3.1], rtol=1e-6)
    center.eval()
    np.testing.assert_allclose(center(torch.tensor([[2.15, 3.1]])).numpy(), [[0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(center.mean.numpy(), [2.15, 3.1], rtol=1e-6)  # no update at inference


# --- the loop ----------------------------------------------------------------------------------------

def test_prior_bias_loss_at_step_0_is_the_priors_bce(data):
    """head_bias=prior: the first step's loss (full batch, weights of step 0) is the BCE of predicting
    each drug's training frequency, computed here by hand."""
    train = data["train"]
    y = target_matrix(train, data["resources"].vocabs["drug"]).astype(np.float64)
    p = np.clip(y.mean(axis=0), 1e-4, 1 - 1e-4)
    prior_bce = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    model = teacher(data["resources"], head_bias="prior", epochs=1, steps=0, batch_size=8, eval_every=1)
    report = model.fit(train, [], seed=0, progress=Progress())
    assert report.history[1]["step"] == 1
    assert report.history[1]["train_loss"] == pytest.approx(prior_bce, rel=1e-5)
    assert set(model.state()) >= {"head.weight", "head.bias"}


def test_feature_norms_round_trip_through_save_and_load(data, tmp_path):
    for norm in ("center", "layernorm"):
        model = teacher(data["resources"], feature_norm=norm, head_bias="prior", epochs=1, steps=0)
        model.fit(data["train"], [], seed=0, progress=Progress())
        names = {k for k in model.state() if k.startswith("norm.")}
        assert names == ({"norm.mean", "norm.seen"} if norm == "center" else {"norm.weight", "norm.bias"})
        if norm == "center":
            assert model.state()["norm.seen"] == 1.0 and np.abs(model.state()["norm.mean"]).sum() > 0
        model.save(tmp_path / norm)
        reloaded = LeaderTeacher.load(tmp_path / norm, data["resources"])
        np.testing.assert_array_equal(reloaded.predict_proba(data["valid"]), model.predict_proba(data["valid"]))


def test_overfit_16_prompts_to_prauc_near_1(data):
    """Proof that the loop can learn at all: a tiny teacher drives 16 training prompts to PRAUC ~1."""
    train = data["train16"]
    model = teacher(data["resources"], epochs=60, steps=0, batch_size=16, eval_every=20, valid_prompts=16,
                    lr="3e-3", head_lr="1e-2", head_bias="prior", max_tokens=128)
    report = model.fit(train, train, seed=0, progress=Progress())
    y = target_matrix(train, data["resources"].vocabs["drug"])
    prauc = float(average_precision_rows(y, model.predict_proba(train)).mean())
    assert prauc > 0.95, [h["valid_prauc"] for h in report.history]
    assert report.best_valid_prauc == pytest.approx(prauc, abs=1e-6)
    assert report.history[0]["valid_prauc"] < 0.9  # it learnt: the step-0 teacher is far from it


class FakeClock:
    """time.perf_counter for the loop: 10 s per call."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 10.0
        return self.now


def test_budget_stops_training_and_keeps_the_best_checkpoint(data, monkeypatch, tmp_path):
    monkeypatch.setattr(teacher_training, "time", FakeClock())
    model = teacher(data["resources"], epochs=50, steps=0, batch_size=2, eval_every=2, budget="5m", lr="1e-2",
                    head_lr="1e-1", patience=0)
    model.use_checkpoints(tmp_path)
    report = model.fit(data["train"], data["valid"], seed=0, progress=Progress())
    assert report.notes["stopped_by"] == "budget" and report.notes["budget_s"] == 300
    assert report.notes["steps"] < report.notes["planned_steps"] == 200
    # the closing pass is assumed to last as long as the previous one (here 10-20 fake seconds)
    assert report.history[-2]["elapsed_s"] < 300 and report.history[-1]["elapsed_s"] <= 300 + 40
    scores = [h["valid_prauc"] for h in report.history]
    assert report.best_valid_prauc == max(scores)
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))   # first of the best: later ties are not better
    assert report.notes["best_step"] == report.history[best]["step"]
    # the model holds the best checkpoint's weights: its validation PRAUC is the best one
    y = target_matrix(data["valid"], data["resources"].vocabs["drug"])
    assert float(average_precision_rows(y, model.predict_proba(data["valid"])).mean()) == pytest.approx(max(scores))
    saved = teacher_training.latest_checkpoint(tmp_path)
    assert saved.step == report.notes["steps"] and saved.state["loop"]["stop"] == "budget"


def test_resume_continues_from_the_saved_step_as_if_never_interrupted(data, monkeypatch, tmp_path):
    options = dict(epochs=3, steps=0, batch_size=2, eval_every=2, lr="1e-2")  # 4 steps per epoch, 12 in all
    whole = teacher(data["resources"], **options)
    expected = whole.fit(data["train"], data["valid"], seed=0, progress=Progress())

    real_save = teacher_training.save_checkpoint

    def save_then_die(folder, step, tensors, state):
        real_save(folder, step, tensors, state)
        if step == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(teacher_training, "save_checkpoint", save_then_die)
    first = teacher(data["resources"], **options)
    first.use_checkpoints(tmp_path / "ck")
    with pytest.raises(KeyboardInterrupt):
        first.fit(data["train"], data["valid"], seed=0, progress=Progress())
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["step-00000006"]
    monkeypatch.setattr(teacher_training, "save_checkpoint", real_save)

    again = teacher(data["resources"], **options)
    again.use_checkpoints(tmp_path / "ck")
    report = again.fit(data["train"], data["valid"], seed=0, progress=Progress())
    assert report.notes["resumed_from_step"] == 6 and report.notes["steps"] == 12
    assert report.notes["prompts_seen"] == expected.notes["prompts_seen"] == 24
    strip = [{k: v for k, v in h.items() if k != "elapsed_s"} for h in report.history]
    assert strip == [{k: v for k, v in h.items() if k != "elapsed_s"} for h in expected.history]
    for name, array in whole.state().items():
        np.testing.assert_allclose(again.state()[name], array, atol=1e-6, err_msg=name)

    # a finished checkpoint: nothing left to train, the same best weights
    done = teacher(data["resources"], **options)
    done.use_checkpoints(tmp_path / "ck")
    final = done.fit(data["train"], data["valid"], seed=0, progress=Progress())
    assert final.notes["resumed_from_step"] == 12 and final.notes["stopped_by"] == "epochs"
    np.testing.assert_array_equal(done.predict_proba(data["valid"]), again.predict_proba(data["valid"]))


def test_a_restarted_identical_bench_run_resumes_then_clears_its_checkpoints(monkeypatch, tmp_path):
    """Through the runner: its checkpoint folder is derived from the run (bench.checkpoints), a second
    identical run continues from the step the first one saved, and the folder goes once the run is written."""
    from bench.runner import RunOptions, run
    from bench.timing import TimingOptions

    options = RunOptions(model="leader-teacher", dataset="synthetic-small", results_dir=tmp_path / "results",
                         cache_dir=tmp_path / "cache", train_protocol="last",
                         overrides={**SMOKE, "steps": "4", "eval_every": "2", "epochs": "2"},
                         timing=TimingOptions(latency_samples=2, batch_size=8, min_seconds=0.0))
    real_save = teacher_training.save_checkpoint

    def save_then_die(folder, step, tensors, state):
        real_save(folder, step, tensors, state)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(teacher_training, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(options, Progress())
    [folder] = (tmp_path / "cache" / "checkpoints").iterdir()
    assert folder.name.startswith("leader-teacher-") and [p.name for p in folder.iterdir()] == ["step-00000002"]
    monkeypatch.setattr(teacher_training, "save_checkpoint", real_save)

    record, _ = run(options, Progress())
    fit = record["fit"]
    assert fit["notes"]["resumed_from_step"] == 2 and fit["notes"]["steps"] == 4
    assert [h["step"] for h in fit["history"]] == [0, 2, 4]
    assert all(0 <= h["valid_prauc"] <= 1 for h in fit["history"]) and fit["best_valid_prauc"] is not None
    assert record["train_protocol"] == "last" and not folder.exists()


def test_auto_device_on_a_gpu_folds_grad_accum_into_the_micro_batch():
    from leader.teacher_training import batch_shape

    config = LeaderTeacher.parse_config({"batch_size": "4", "grad_accum": "8"})
    assert batch_shape(config, torch.device("cuda")) == (32, 1)     # same 32 prompts per optimiser step
    assert batch_shape(config, torch.device("cpu")) == (4, 8)
    explicit = LeaderTeacher.parse_config({"batch_size": "4", "grad_accum": "8", "device": "cuda"})
    assert batch_shape(explicit, torch.device("cuda")) == (4, 8)    # an explicit device keeps them
