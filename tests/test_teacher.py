"""LEADER's teacher (leader/teacher.py, leader/llm_inputs.py) and its feature cache
(leader/feature_cache.py), all with the tiny random LLaMA: seconds per test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from bench.data import make_samples, target_matrix
from bench.errors import UserError
from bench.progress import Progress
from leader import feature_cache, prompts
from leader.base_models import TINY_VERSION, load_tokenizer, resolve_base_model
from leader.llm_inputs import encode_prompts, last_token_index, pool_hidden, position_ids
from leader.teacher import LeaderTeacher

from tests.teacher_helpers import teacher, teacher_data



@pytest.fixture(scope="module")
def data(small_bundle):
    base = teacher_data(small_bundle)
    return base | {"test": make_samples(base["split"].test, "last")[:8]}


@pytest.fixture(scope="module")
def fitted(data):
    """A LoRA teacher after 3 steps (LoRA B matrices no longer zero, so the adapter matters)."""
    model = teacher(data["resources"])
    model.fit(data["train"], [], seed=0, progress=Progress())
    return model


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-llama")


def bce(scores: np.ndarray, targets: np.ndarray) -> float:
    p = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean())


# --- llm_inputs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("side", ["right", "left"])
def test_encode_prompts_appends_eos_and_pads(tokenizer, side):
    texts = ["Fever", "Acute pancreatitis and more"]
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    batch = encode_prompts(tokenizer, texts, max_tokens=64, padding_side=side)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    width = max(len(r) for r in rows) + 1
    assert ids.shape == mask.shape == batch["position_ids"].shape == (2, width)
    assert ids.dtype == mask.dtype == torch.int64
    assert len(rows[0]) < len(rows[1])  # the first row needs padding
    for i, row in enumerate(rows):
        real = ids[i][mask[i].bool()].tolist()
        assert real == row + [tokenizer.eos_token_id]   # the text, then one EOS
        assert (ids[i][~mask[i].bool()] == tokenizer.pad_token_id).all()
        n_pad = width - len(row) - 1
        expected = [1] * (len(row) + 1) + [0] * n_pad if side == "right" else [0] * n_pad + [1] * (len(row) + 1)
        assert mask[i].tolist() == expected
        assert batch["position_ids"][i][mask[i].bool()].tolist() == list(range(len(row) + 1))
        assert ids[i, last_token_index(mask)[i]] == tokenizer.eos_token_id


def test_encode_prompts_cuts_the_tail_to_the_budget_and_keeps_eos(tokenizer):
    batch = encode_prompts(tokenizer, ["Acute pancreatitis and more"], max_tokens=4)
    assert batch["input_ids"].shape == (1, 4) and batch["input_ids"][0, -1] == tokenizer.eos_token_id


def test_last_token_index_and_position_ids_on_both_sides():
    mask = torch.tensor([[1, 1, 1, 0, 0],    # right-padded
                         [0, 0, 1, 1, 1],    # left-padded
                         [1, 1, 1, 1, 1]])   # no padding
    assert last_token_index(mask).tolist() == [2, 4, 4]
    assert position_ids(mask).tolist() == [[0, 1, 2, 0, 0], [0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


def test_pool_hidden_last_and_mean():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
    last = pool_hidden(hidden, mask, "last")
    assert torch.equal(last, torch.stack([hidden[0, 1], hidden[1, 3]]))
    mean = pool_hidden(hidden, mask, "mean")
    assert torch.allclose(mean, torch.stack([hidden[0, :2].mean(0), hidden[1, 1:].mean(0)]))
    hidden[0, 2:] = hidden[1, 0] = float("nan")  # a padded position's state never leaks into the pooled one
    assert torch.equal(pool_hidden(hidden, mask, "last"), last)
    assert torch.allclose(pool_hidden(hidden, mask, "mean"), mean)


# --- the teacher --------------------------------------------------------------------------------

def test_forward_shapes(fitted, data):
    test, n_drugs = data["test"], data["resources"].n_drugs
    scores = fitted.predict_proba(test)
    assert scores.shape == (len(test), n_drugs) and scores.dtype == np.float32
    assert np.isfinite(scores).all() and scores.min() >= 0 and scores.max() <= 1
    features = fitted.hidden_features(test)
    assert features.shape == (len(test), fitted.hidden_size) == (len(test), 64) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert fitted.hidden_features([]).shape == (0, 64)
    # the output layer reads exactly these features
    with torch.no_grad():
        logits = fitted.scorer.head(fitted.scorer.norm(torch.from_numpy(features))).numpy()
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-logits)), atol=1e-5)


BUDGET = 4000


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_features_do_not_depend_on_padding(fitted, data, pooling):
    """A sample's features: alone, in a right-padded batch, in a left-padded batch, and the model run
    on its unpadded prompt (no mask, no position ids) agree."""
    state = fitted.state()
    models = {}
    for side in ("right", "left"):
        # a budget no prompt of the test samples reaches (tiny-llama has 4,096 positions), so lengths differ
        models[side] = teacher(data["resources"], padding_side=side, pooling=pooling, predict_batch_size=8,
                               max_tokens=BUDGET)
        models[side].set_state(state)
    samples = data["test"]
    texts = models["right"].prompts(samples)
    lengths = [len(encode_prompts(fitted.tokenizer, [t], max_tokens=BUDGET)["input_ids"][0]) for t in texts]
    assert len(set(lengths)) > 1  # the batch needs padding

    batched = {side: m.hidden_features(samples) for side, m in models.items()}
    alone = np.concatenate([models["right"].hidden_features([s]) for s in samples])
    with torch.no_grad():
        body = models["right"].scorer.body
        plain = []
        for text in texts:
            ids = encode_prompts(fitted.tokenizer, [text], max_tokens=BUDGET)["input_ids"]
            hidden = body(input_ids=ids).last_hidden_state[0]
            plain.append((hidden[-1] if pooling == "last" else hidden.mean(0)).numpy())
    np.testing.assert_allclose(batched["right"], alone, atol=1e-5)
    np.testing.assert_allclose(batched["left"], alone, atol=1e-5)
    np.testing.assert_allclose(np.stack(plain), alone, atol=1e-5)
    if pooling == fitted.config.pooling:  # the LoRA teacher's state gives the fitted one's features (at its own budget)
        same = teacher(data["resources"], pooling=pooling)
        same.set_state(state)
        np.testing.assert_allclose(same.hidden_features(samples), fitted.hidden_features(samples), atol=1e-5)


def test_training_lowers_the_loss(data):
    """12 full-batch LoRA steps (12 epochs of one step) on 8 fixed samples: BCE on them falls clearly
    (deterministic, seed 0); without validation samples the history logs the loss every eval_every steps."""
    train = data["train"]
    targets = target_matrix(train, data["resources"].vocabs["drug"])
    model = teacher(data["resources"], epochs=12, steps=0, eval_every=10, batch_size=8, grad_accum=1, lr="1e-3",
                    max_tokens=128)
    before = bce(model.predict_proba(train), targets)
    report = model.fit(train, [], seed=0, progress=Progress())
    after = bce(model.predict_proba(train), targets)
    assert after < before - 0.05, (before, after)
    assert [h["step"] for h in report.history] == [0, 10, 12]
    assert [h["valid_prauc"] for h in report.history] == [None] * 3 and report.history[0]["train_loss"] is None
    assert report.history[-1]["train_loss"] < report.history[1]["train_loss"]
    assert report.notes["steps"] == 12 and report.notes["prompts_seen"] == 12 * 8
    assert report.notes["stopped_by"] == "epochs" and report.epochs == 12 and report.best_valid_prauc is None


def test_grad_accumulation_counts_optimiser_steps(data):
    model = teacher(data["resources"], epochs=1, steps=0, batch_size=2, grad_accum=2)
    report = model.fit(data["train"], [], seed=0, progress=Progress())
    assert report.notes["steps"] == 2 and report.notes["prompts_seen"] == 8
    assert (report.notes["micro_batch"], report.notes["grad_accum"], report.notes["effective_batch"]) == (2, 2, 4)
    # training speed: the samples of every micro-batch; no validation pass while training
    assert report.train_samples == 8 and report.train_seconds > 0 and report.valid_seconds is None
    assert report.train_samples_per_s() > 0 and report.valid_time_share() is None


def test_fit_refuses_no_training_samples(data):
    with pytest.raises(ValueError, match="no training samples"):
        teacher(data["resources"]).fit([], [], seed=0, progress=Progress())


def test_save_load_round_trip_with_lora(fitted, data, tmp_path):
    fitted.save(tmp_path / "model")
    assert (tmp_path / "model" / "adapter" / "drug_head_columns.json").is_file()
    reloaded = LeaderTeacher.load(tmp_path / "model", data["resources"])
    assert set(reloaded.state()) == set(fitted.state())
    assert any(k.startswith("adapter.") for k in reloaded.state())
    for name, array in fitted.state().items():
        np.testing.assert_array_equal(reloaded.state()[name], array, err_msg=name)
    np.testing.assert_array_equal(reloaded.predict_proba(data["test"]), fitted.predict_proba(data["test"]))
    np.testing.assert_array_equal(reloaded.hidden_features(data["test"]), fitted.hidden_features(data["test"]))


def test_frozen_llm_trains_only_the_output_layer_and_round_trips(data, tmp_path):
    model = teacher(data["resources"], lora="false")
    report = model.fit(data["train"], [], seed=0, progress=Progress())
    bias = model.config.head_bias == "prior"   # the output layer's weight (and bias); centring has no parameters
    assert report.notes["trainable_params"] == (model.hidden_size + bias) * data["resources"].n_drugs
    assert not any(p.requires_grad for p in model.scorer.body.parameters())
    assert not any(name.startswith("adapter.") for name in model.state())   # no LoRA weights saved
    assert {"head.weight", "head.bias", "norm.mean"} <= set(model.state())
    model.save(tmp_path / "model")
    reloaded = LeaderTeacher.load(tmp_path / "model", data["resources"])
    assert reloaded.config.lora is False
    np.testing.assert_array_equal(reloaded.predict_proba(data["test"]), model.predict_proba(data["test"]))


def test_missing_base_model_is_a_one_line_user_error(data):
    with pytest.raises(UserError) as error:
        teacher(data["resources"], base_model="/no/such/folder")
    message = str(error.value)
    assert "/no/such/folder" in message and "\n" not in message


# --- the feature cache ----------------------------------------------------------------------------

@pytest.fixture
def copy_of_fitted(fitted, data):
    """A teacher with the fitted one's weights, free to be changed by a test."""
    model = teacher(data["resources"])
    model.set_state({k: v.copy() for k, v in fitted.state().items()})
    return model


def test_feature_cache_writes_then_reads(copy_of_fitted, data, tmp_path, monkeypatch):
    model, samples, dataset_hash = copy_of_fitted, data["test"], data["bundle"].hash
    first = feature_cache.teacher_features(model, samples, dataset_hash, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, model.hidden_features(samples))
    key = feature_cache.feature_cache_key(model, samples, dataset_hash)
    path = tmp_path / "teacher-features" / f"{key}.safetensors"
    assert [p.name for p in (tmp_path / "teacher-features").iterdir()] == [path.name]  # no temp file left

    with safe_open(str(path), framework="numpy") as handle:
        assert set(handle.keys()) == {"features", "patient_id", "visit_index"}
        assert handle.get_tensor("features").dtype == np.float32
        assert handle.get_tensor("patient_id").tolist() == [s.patient.id for s in samples]
        assert handle.get_tensor("visit_index").tolist() == [s.index for s in samples]
        assert handle.get_tensor("patient_id").dtype == np.int64
        meta = handle.metadata()
    assert meta["key"] == key
    inputs = json.loads(meta["inputs"])
    assert inputs["dataset_hash"] == dataset_hash and inputs["prompt_version"] == prompts.PROMPT_VERSION
    assert inputs["base_model"] == {"spec": "tiny-llama", "tiny_version": TINY_VERSION}
    assert inputs["samples"]["n"] == len(samples) and inputs["config"]["pooling"] == LeaderTeacher.Config.pooling

    def fail(samples):
        raise AssertionError("features were recomputed instead of read from the cache")

    monkeypatch.setattr(model, "hidden_features", fail)
    np.testing.assert_array_equal(feature_cache.teacher_features(model, samples, dataset_hash, cache_dir=tmp_path),
                                  first)
    assert feature_cache.teacher_features(model, [], dataset_hash, cache_dir=tmp_path).shape == (0, 64)


def test_feature_cache_key_changes_with_what_changes_the_features(copy_of_fitted, data, monkeypatch):
    model, samples, dataset_hash = copy_of_fitted, data["test"], data["bundle"].hash
    key = feature_cache.feature_cache_key(model, samples, dataset_hash)
    assert key == feature_cache.feature_cache_key(model, list(samples), dataset_hash)  # stable
    assert feature_cache.feature_cache_key(model, samples, "another-dataset") != key
    assert feature_cache.feature_cache_key(model, samples[:-1], dataset_hash) != key
    assert feature_cache.feature_cache_key(model, samples[::-1], dataset_hash) != key
    with monkeypatch.context() as patch:
        patch.setattr(prompts, "PROMPT_VERSION", prompts.PROMPT_VERSION + 1)
        assert feature_cache.feature_cache_key(model, samples, dataset_hash) != key
    with torch.no_grad():  # a LoRA weight
        next(p for n, p in model.scorer.body.named_parameters() if "lora_B" in n).add_(0.01)
    assert feature_cache.feature_cache_key(model, samples, dataset_hash) != key
    changed = feature_cache.feature_cache_key(model, samples, dataset_hash)
    with torch.no_grad():
        model.scorer.head.weight[0, 0] += 1.0
    assert feature_cache.feature_cache_key(model, samples, dataset_hash) != changed

    state = model.state()
    for options, same in (({"max_tokens": 200}, False), ({"pooling": "last"}, False), ({"lora_alpha": 16}, False),
                          ({"padding_side": "left", "predict_batch_size": 3}, True)):
        other = teacher(data["resources"], **options)
        other.set_state(state)
        assert (feature_cache.feature_cache_key(other, samples, dataset_hash)
                == feature_cache.feature_cache_key(model, samples, dataset_hash)) is same, options


def test_feature_cache_recomputes_corrupt_or_mismatching_files(copy_of_fitted, data, tmp_path):
    model, samples, dataset_hash = copy_of_fitted, data["test"], data["bundle"].hash
    expected = feature_cache.teacher_features(model, samples, dataset_hash, cache_dir=tmp_path)
    path = feature_cache.feature_cache_path(feature_cache.feature_cache_key(model, samples, dataset_hash), tmp_path)
    calls = []
    original = model.hidden_features
    model.hidden_features = lambda s: calls.append(len(s)) or original(s)

    path.write_bytes(b"not a safetensors file")
    np.testing.assert_array_equal(feature_cache.teacher_features(model, samples, dataset_hash, cache_dir=tmp_path),
                                  expected)
    assert calls == [len(samples)]
    path.write_bytes(path.read_bytes()[:-16])  # truncated
    feature_cache.teacher_features(model, samples, dataset_hash, cache_dir=tmp_path)
    assert calls == [len(samples)] * 2

    # a readable file under this key whose ids are not these samples'
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as handle:
        meta = handle.metadata()
    ids = np.arange(len(samples), dtype=np.int64)
    save_file({"features": np.zeros_like(expected), "patient_id": ids, "visit_index": ids}, str(path), metadata=meta)
    np.testing.assert_array_equal(feature_cache.teacher_features(model, samples, dataset_hash, cache_dir=tmp_path),
                                  expected)
    assert calls == [len(samples)] * 3
    feature_cache.teacher_features(model, samples, dataset_hash, cache_dir=tmp_path)  # the file is good again
    assert calls == [len(samples)] * 3


def test_folder_base_model_identity(data):
    folder = resolve_base_model("tiny-llama")
    identity = feature_cache.base_model_identity(str(folder))
    assert identity["path"] == str(folder.resolve())
    assert len(identity["config_sha256"]) == 64 and "tokenizer.json" in identity["tokenizer_sha256"]
    assert [name for name, _ in identity["weights"]] == ["model.safetensors"]
    assert all(size > 0 for _, size in identity["weights"])
    with pytest.raises(UserError):
        feature_cache.base_model_identity("/no/such/folder")
