"""The teacher's training speed-ups (docs/leader.md#training-speed): length-bucketed batches
(leader/llm_inputs.py), LoRA on the top layers with the frozen lower layers run apart and cached
(leader/frozen_prefix.py, leader/drug_scorer.py), gradient checkpointing; tiny random LLaMA."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from bench.data import make_samples
from bench.errors import UserError
from bench.progress import Progress
from leader import feature_cache
from leader.drug_scorer import use_cpu_bf16
from leader.frozen_prefix import PrefixCache, decoder_of, lower_states, stored_form, upper_states
from leader.llm_inputs import encode_prompts, length_bucketed_batches
from leader.teacher import LeaderTeacher

from tests.teacher_helpers import teacher, teacher_data


@pytest.fixture(scope="module")
def data(small_bundle):
    base = teacher_data(small_bundle)
    return base | {"test": make_samples(base["split"].test, "last")[:8]}


def with_random_adapter(model: LeaderTeacher) -> LeaderTeacher:
    """LoRA B matrices are zero at start (the adapter adds nothing): make them matter."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.scorer.body.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return model


# --- length-bucketed batches ----------------------------------------------------------------------

def test_bucketed_batches_by_hand():
    """Pools of 2 batches of 2: each pool sorted by length, then the batches shuffled."""
    lengths = [50, 10, 40, 20, 30, 60, 70]
    batches = length_bucketed_batches(lengths, batch_size=2, seed=3, epoch=0, pool_batches=2)
    order = np.random.default_rng([3, 0]).permutation(7).tolist()
    pools = [sorted(order[:4], key=lengths.__getitem__), sorted(order[4:], key=lengths.__getitem__)]
    expected = [pools[0][:2], pools[0][2:], pools[1][:2], pools[1][2:]]
    assert sorted(map(tuple, batches)) == sorted(map(tuple, expected))  # the same batches, shuffled
    for batch in batches:
        assert [lengths[i] for i in batch] == sorted(lengths[i] for i in batch)


@pytest.mark.parametrize("n, batch_size, pool", [(1, 4, 16), (37, 4, 3), (64, 4, 16), (10, 3, 1)])
def test_bucketed_batches_cover_every_index_once_and_reproduce(n, batch_size, pool):
    lengths = np.random.default_rng(0).integers(100, 400, n).tolist()
    epochs = [length_bucketed_batches(lengths, batch_size, seed=7, epoch=e, pool_batches=pool) for e in range(3)]
    for batches in epochs:
        assert Counter(i for b in batches for i in b) == Counter(range(n))
        assert all(1 <= len(b) <= batch_size for b in batches)
        assert sum(len(b) < batch_size for b in batches) <= 1 + n // (batch_size * pool)
    assert epochs[0] == length_bucketed_batches(lengths, batch_size, seed=7, epoch=0, pool_batches=pool)
    if n > batch_size:
        assert epochs[0] != epochs[1]  # reshuffled every epoch
        assert epochs[0] != length_bucketed_batches(lengths, batch_size, seed=8, epoch=0, pool_batches=pool)


def test_bucketing_cuts_padding():
    lengths = np.random.default_rng(0).integers(150, 385, 640).tolist()

    def padded(pool: int) -> int:
        batches = length_bucketed_batches(lengths, 4, seed=0, pool_batches=pool)
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded(16) < 0.85 * padded(1)


# --- the split forward and its cache --------------------------------------------------------------

@pytest.fixture(scope="module")
def top_lora(data):
    """LoRA on the top layer of tiny-llama's 2, with a non-zero adapter."""
    model = with_random_adapter(teacher(data["resources"], lora_layers=1))
    model.scorer.eval()
    return model


def test_lora_layers_adapts_only_the_top_layers(top_lora, data):
    adapted = {name.split(".layers.")[1].split(".")[0] for name, _ in top_lora.scorer.body.named_parameters()
               if "lora_A" in name}
    assert adapted == {"1"} and top_lora.scorer.n_frozen == 1
    assert {k.split(".layers.")[1].split(".")[0] for k in top_lora.state() if k.startswith("adapter.")} == {"1"}
    assert teacher(data["resources"]).scorer.n_frozen == 0          # default: every layer (the paper)
    assert teacher(data["resources"], lora="false").scorer.n_frozen == 2
    with pytest.raises(UserError, match="lora_layers=3"):
        teacher(data["resources"], lora_layers=3)


@pytest.mark.parametrize("side", ["right", "left"])
def test_split_forward_equals_full_forward(top_lora, side):
    texts = ["Fever", "Acute pancreatitis and more of it", "Cough, chest pain"]  # lengths differ: padding
    batch = encode_prompts(top_lora.tokenizer, texts, max_tokens=64, padding_side=side)
    model = decoder_of(top_lora.scorer.body)
    with torch.no_grad():
        full = top_lora.scorer.body(**batch).last_hidden_state
        for n_frozen in (0, 1, 2):
            lower = lower_states(model, batch["input_ids"], batch["attention_mask"], batch["position_ids"], n_frozen)
            split = upper_states(model, lower, batch["attention_mask"], batch["position_ids"], n_frozen)
            real = batch["attention_mask"].bool()
            torch.testing.assert_close(split[real], full[real], atol=1e-5, rtol=1e-5)


def test_cache_reuse_gives_identical_features(top_lora, data):
    samples = data["test"]
    texts = top_lora.prompts(samples)
    top_lora.scorer.cache = PrefixCache(1 << 30)
    cold = top_lora._forward_texts(texts, features=True, cached=True)
    cache = top_lora.scorer.cache
    assert (cache.hits, cache.misses, len(cache.states)) == (0, len(set(texts)), len(set(texts)))
    assert all(state.dtype == torch.float16 for state in cache.states.values())  # half the memory of fp32
    warm = top_lora._forward_texts(texts, features=True, cached=True)
    np.testing.assert_array_equal(warm, cold)
    assert cache.hits == len(samples)
    # alone (no padding) from the cache: the same to float tolerance
    alone = np.concatenate([top_lora._forward_texts([t], features=True, cached=True) for t in texts])
    np.testing.assert_allclose(alone, cold, atol=1e-5)
    # against the exact fp32 forward: only the fp16 rounding of the cached states
    np.testing.assert_allclose(cold, top_lora.hidden_features(samples), atol=5e-3)
    # a full cache keeps nothing more, and a row computed then still goes through the same rounding
    top_lora.scorer.cache = PrefixCache(0)
    np.testing.assert_array_equal(top_lora._forward_texts(texts, features=True, cached=True), cold)
    assert top_lora.scorer.cache.states == {}


def test_stored_form_keeps_large_states_in_fp32():
    small, large = torch.tensor([[1.5, -2.0]]), torch.tensor([[70000.0, 1.0]])
    assert stored_form(small).dtype == torch.float16 and stored_form(large).dtype == torch.float32
    cache = PrefixCache(max_bytes=6)
    cache.put("a", stored_form(small))   # 4 bytes
    cache.put("b", stored_form(small))   # would pass the budget
    assert list(cache.states) == ["a"] and cache.bytes == 4
    assert cache.get("a") is not None and cache.get("b") is None and (cache.hits, cache.misses) == (1, 1)


# --- training with the speed-ups ------------------------------------------------------------------

def test_training_on_top_layers_reuses_the_cache_in_later_epochs(data):
    train = data["train"]
    model = teacher(data["resources"], lora_layers=1, epochs=2, steps=0, batch_size=4, grad_accum=1)  # 2 x 8
    before = {k: v.copy() for k, v in model.state().items()}
    report = model.fit(train, [], seed=0, progress=Progress())
    assert report.notes["prompts_seen"] == 16
    cache = model.scorer.cache
    n = len(set(model.prompts(train)))
    assert (cache.misses, cache.hits, len(cache.states)) == (n, 16 - n, n)
    after = model.state()
    assert set(after) == set(before)
    assert all(not np.array_equal(after[k], before[k]) for k in after if "lora_B" in k or k == "head.weight")
    # the lower layers were not touched by training: a fresh build computes the same cached states
    fresh = teacher(data["resources"], lora_layers=1)
    texts = model.prompts(train)[:2]
    batch = fresh._inputs(texts)
    lower = lower_states(decoder_of(fresh.scorer.body), batch["input_ids"], batch["attention_mask"],
                         batch["position_ids"], 1)
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(cache.states[text].float().numpy(),
                                      stored_form(lower[i][batch["attention_mask"][i].bool()]).float().numpy())


def test_same_seed_same_training_with_and_without_bucketing_reproduces(data):
    states = []
    for pool in (4, 4, 1):
        model = teacher(data["resources"], steps=2, batch_size=2, grad_accum=1, bucket_batches=pool)
        model.fit(data["train"], [], seed=0, progress=Progress())
        states.append(model.state())
    for k in states[0]:
        np.testing.assert_array_equal(states[0][k], states[1][k], err_msg=k)
    assert any(not np.array_equal(states[0][k], states[2][k]) for k in states[0])  # other batches


def test_gradient_checkpointing_gives_the_same_training(data):
    states = []
    for checkpointing in ("false", "true"):
        model = teacher(data["resources"], steps=2, batch_size=4, grad_accum=1, lora_layers=1,
                        gradient_checkpointing=checkpointing)
        layers = decoder_of(model.scorer.body).layers
        assert all(layer.gradient_checkpointing == (checkpointing == "true") for layer in layers)
        model.fit(data["train"], [], seed=0, progress=Progress())
        states.append(model.state())
    for k in states[0]:
        np.testing.assert_allclose(states[1][k], states[0][k], atol=1e-6, err_msg=k)


def test_cpu_bf16_choice_and_feature_cache_precision(data, monkeypatch):
    assert use_cpu_bf16("on") and not use_cpu_bf16("off")
    monkeypatch.setattr("leader.drug_scorer.cpu_has_native_bf16", lambda: True)
    assert use_cpu_bf16("auto")
    monkeypatch.setattr("leader.drug_scorer.cpu_has_native_bf16", lambda: False)
    assert not use_cpu_bf16("auto")
    plain, bf16 = teacher(data["resources"], cpu_bf16="off"), teacher(data["resources"], cpu_bf16="on")
    samples = data["test"][:2]
    assert (feature_cache.feature_cache_inputs(plain, samples, "h")["precision"],
            feature_cache.feature_cache_inputs(bf16, samples, "h")["precision"]) == ("float32", "bfloat16-autocast")
    features = bf16.hidden_features(samples)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, plain.hidden_features(samples), atol=0.1)  # bf16 rounding only


def test_a_teacher_run_stores_its_training_features_for_the_students_to_read(tmp_path, small_bundle):
    """store_train_features: right after fit the runner has the teacher write its training samples'
    features (through the warm frozen-layer cache) to the feature cache; a student on the same split and
    protocol reads that file, and the features equal those a fresh process computes from the saved run."""
    from bench.data import make_samples
    from bench.runner import RunOptions, run
    from bench.splits import split_patients
    from bench.timing import TimingOptions
    from leader.teacher_runs import load_teacher_run
    from tests.teacher_helpers import SMOKE

    options = RunOptions(model="leader-teacher", dataset="synthetic-small", results_dir=tmp_path / "results",
                         cache_dir=tmp_path / "cache", train_protocol="last", save_model=True,
                         overrides={**SMOKE, "lora_layers": "1", "store_train_features": "true", "steps": "2"},
                         timing=TimingOptions(latency_samples=2, batch_size=8, min_seconds=0.0))
    record, folder = run(options, Progress())
    stored = record["fit"]["notes"]["stored_after_fit"]
    train = make_samples(split_patients(small_bundle.patients, "random", seed=0).train, "last")
    assert stored["train_features"] == len(train) == record["dataset"]["n_train"]
    path = feature_cache.feature_cache_path(stored["key"], tmp_path / "cache")
    assert path.is_file()

    opened = load_teacher_run(folder, small_bundle, "explicit", cache_dir=tmp_path / "cache")
    assert feature_cache.feature_cache_key(opened.teacher, train, small_bundle.hash) == stored["key"]
    from safetensors.numpy import load_file

    fresh = opened.teacher.hidden_features(train)   # a new scorer: every frozen state computed again
    np.testing.assert_allclose(load_file(str(path))["features"], fresh, rtol=1e-5, atol=1e-5)
    before = path.stat().st_mtime_ns
    np.testing.assert_array_equal(opened.features(train), load_file(str(path))["features"])
    assert path.stat().st_mtime_ns == before   # read, not recomputed
