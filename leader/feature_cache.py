"""The teacher's features for a set of samples, computed once and cached on disk.

LEADER (Liu et al., arXiv 2402.02803; docs/leader.md#distillation) distils the teacher into the student
at the feature level: the student's 128-d feature, projected to the teacher's width, is pulled
towards the teacher's final-layer hidden state of the prompt's last token. In the paper's OFFLINE
mode the teacher's hidden states of the training set are computed once and stored; this module is
that store. `teacher_features(teacher, samples, dataset_hash)` returns float32 [n, hidden] (the
pooled state `LeaderTeacher.hidden_features` computes, the same the output layer reads), rows aligned
with `samples`, read from

    cache_root(cache_dir) / "teacher-features" / "<key>.safetensors"

when present and valid, else computed and written atomically (a temp file then a rename, so a
reader never sees half a file). File content: `features` float32 [n, H], `patient_id` int64 [n],
`visit_index` int64 [n]; header metadata `key`, `format` and `inputs` (the key's inputs as JSON).
A file that cannot be read, has other shapes or dtypes, or whose ids or key differ is ignored,
recomputed and replaced.

The key is the sha256 of a JSON of everything that changes the features:
- the base model: `smollm2-135m` by its name; `tiny-llama` by its name and
  `leader.base_models.TINY_VERSION`; a folder by its resolved path, the sha256 of its config.json
  and of its tokenizer files, and the names and sizes of its weight files (hashing several GB of
  weights on every call would cost more than it saves);
- the adapter: sha256 over the teacher's `state()` (the output layer, and the LoRA weights when
  LoRA is on): per array, in sorted name order, its name, dtype, shape and bytes;
- the dataset hash, `leader.prompts.PROMPT_VERSION` and this store's FORMAT;
- the teacher settings that change the features: `lora`, `lora_r`, `lora_alpha` (the adapter's
  scaling alpha / r is not in the weights), `lora_targets`, `max_tokens` and `max_history` (the
  prompt text), `pooling`, and the compute precision (fp32 on CPU; bf16/fp16 autocast on a GPU
  gives features that differ in the third digit; with `lora_layers` the frozen layers' states pass
  through fp16, as in training);
- the samples: sha256 of the list of (patient.id, sample.index), with their count.

Left out on purpose: `padding_side` and `predict_batch_size` (position ids come from the attention
mask, so a row's features do not depend on its batch's padding, up to float rounding ~1e-6:
tests/test_teacher.py checks it), `lora_dropout` (off at inference), the optimiser settings (their
effect is in the adapter hash), `device` beyond its precision, and library versions (a torch or
transformers update may change the last digits; delete the folder to recompute).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.prep.bundle_store import cache_root
from bench.data import Sample
from bench.io import atomic_path
from bench.progress import Progress
from leader import base_models
from leader import prompts as leader_prompts

FORMAT = "medrec-teacher-features/1"
FOLDER = "teacher-features"
CHUNK = 256  # samples per `hidden_features` call: the progress bar moves per chunk
FEATURE_FIELDS = ("lora", "lora_r", "lora_alpha", "lora_targets", "max_tokens", "max_history", "pooling")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "added_tokens.json")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def base_model_identity(spec: str, cache_dir: Path | None = None) -> dict[str, Any]:
    """What names the base model's weights: the spec of a named model (+ TINY_VERSION for tiny-llama),
    or for a folder its resolved path, config.json and tokenizer checksums, weight file names and sizes."""
    if spec == base_models.SMOLLM2:
        return {"spec": spec}
    if spec == base_models.TINY_LLAMA:
        return {"spec": spec, "tiny_version": base_models.TINY_VERSION}
    folder = base_models.resolve_base_model(spec, cache_dir).resolve()  # UserError when not a model folder
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return {
        "path": str(folder),
        "config_sha256": _sha256((folder / "config.json").read_bytes()),
        "tokenizer_sha256": {p.name: _sha256(p.read_bytes()) for p in files if p.name in TOKENIZER_FILES},
        "weights": [[p.name, p.stat().st_size] for p in files if p.name.endswith(WEIGHT_SUFFIXES)],
    }


def adapter_hash(state: dict[str, np.ndarray]) -> str:
    """sha256 over named arrays (the teacher's `state()`): sorted names, each with dtype, shape, bytes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        array = np.ascontiguousarray(state[name])
        digest.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def sample_ids(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """(patient ids int64 [n], visit indices int64 [n]) of `samples`."""
    return (np.array([s.patient.id for s in samples], dtype=np.int64),
            np.array([s.index for s in samples], dtype=np.int64))


def _precision(teacher) -> str:
    from leader.teacher import _autocast_dtype

    if teacher.device.type != "cuda":
        precision = "bfloat16-autocast" if teacher.scorer.cpu_bf16 else "float32"
    else:
        precision = str(_autocast_dtype(teacher.device)).removeprefix("torch.")
    # `hidden_features` goes through the frozen-layer cache, whose states are kept in fp16
    return precision + ("+fp16-frozen-states" if teacher.scorer.cache is not None else "")


def feature_cache_inputs(teacher, samples: Sequence[Sample], dataset_hash: str) -> dict[str, Any]:
    """The JSON-able inputs of the cache key (see the module docstring)."""
    config = teacher.config
    patient_id, visit_index = sample_ids(samples)
    ids = json.dumps([[int(p), int(v)] for p, v in zip(patient_id, visit_index)]).encode()
    return {
        "format": FORMAT,
        "base_model": base_model_identity(config.base_model),
        "adapter_sha256": adapter_hash(teacher.state()),
        "dataset_hash": dataset_hash,
        "prompt_version": leader_prompts.PROMPT_VERSION,
        "config": {name: getattr(config, name) for name in FEATURE_FIELDS},
        "precision": _precision(teacher),
        "hidden_size": int(teacher.hidden_size),
        "samples": {"n": len(samples), "sha256": _sha256(ids)},
    }


def _key_of(inputs: dict[str, Any]) -> str:
    return _sha256(json.dumps(inputs, sort_keys=True).encode())[:32]


def feature_cache_key(teacher, samples: Sequence[Sample], dataset_hash: str) -> str:
    """32 hex digits: the file name (without suffix) of these samples' features under this teacher."""
    return _key_of(feature_cache_inputs(teacher, samples, dataset_hash))


def feature_cache_path(key: str, cache_dir: Path | None = None) -> Path:
    return cache_root(cache_dir) / FOLDER / f"{key}.safetensors"


def _read(path: Path, key: str, patient_id: np.ndarray, visit_index: np.ndarray, hidden: int) -> np.ndarray | None:
    """The cached features [n, H], or None when the file is missing, unreadable or does not match."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            if meta.get("key") != key or meta.get("format") != FORMAT:
                return None
            features = handle.get_tensor("features")
            ids = handle.get_tensor("patient_id"), handle.get_tensor("visit_index")
    except Exception:  # truncated, corrupt, not safetensors, a tensor missing: recompute
        return None
    n = len(patient_id)
    if (features.dtype != np.float32 or features.shape != (n, hidden)
            or not np.array_equal(ids[0], patient_id) or not np.array_equal(ids[1], visit_index)):
        return None
    return features


def teacher_features(teacher, samples: Sequence[Sample], dataset_hash: str, cache_dir: Path | None = None,
                     progress: Progress | None = None) -> np.ndarray:
    """float32 [len(samples), teacher.hidden_size]: `teacher.hidden_features(samples)`, rows aligned
    with `samples`, from the cache when a valid file for the same key exists, else computed (in chunks
    of CHUNK samples, one progress step each) and stored. `dataset_hash` is the bundle's `hash` (the
    teacher's prompts read its titles)."""
    hidden = int(teacher.hidden_size)
    if not samples:
        return np.zeros((0, hidden), dtype=np.float32)
    inputs = feature_cache_inputs(teacher, samples, dataset_hash)
    key = _key_of(inputs)
    path = feature_cache_path(key, cache_dir)
    patient_id, visit_index = sample_ids(samples)
    cached = _read(path, key, patient_id, visit_index, hidden)
    if cached is not None:
        return cached
    progress = progress or Progress()
    chunks = []
    with progress.task(f"teacher features ({len(samples)} samples)", total=-(-len(samples) // CHUNK)) as bar:
        for start in range(0, len(samples), CHUNK):
            chunks.append(np.asarray(teacher.hidden_features(samples[start:start + CHUNK]), dtype=np.float32))
            bar.advance(1)
    features = np.ascontiguousarray(np.concatenate(chunks))
    if features.shape != (len(samples), hidden):
        raise ValueError(f"teacher features have shape {features.shape}, expected {(len(samples), hidden)}")
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file({"features": features, "patient_id": patient_id, "visit_index": visit_index}, str(tmp),
                  metadata={"format": FORMAT, "key": key, "inputs": json.dumps(inputs, sort_keys=True)})
    return features
