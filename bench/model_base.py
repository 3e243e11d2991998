"""Shared plumbing for recommenders: config from `--set`, save/load as config.json + weights.safetensors.

Save and load are mirror images (as in peft): `save` writes the config dataclass as JSON, the model's
state as named arrays in safetensors, and the drug vocabulary it was trained on; `load` rebuilds the
model from the config, checks the vocabulary, then restores the state. config.json is stamped with its
`schema_version` (CONFIG_SCHEMA_VERSION) and the `package_version` that wrote it; `load` refuses a
newer schema version in one line and loads an unstamped file (written before the stamp) as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from safetensors.numpy import load_file, save_file

from bench.config import apply_overrides, config_to_dict
from bench.data import DatasetBundle
from bench.errors import UserError
from bench.file_versions import package_version, version_problem
from bench.io import atomic_write_text, atomic_path
from bench.progress import Progress
from bench.protocol import AblationStep, Resources, TeacherChoice, TeacherRequest, TeacherSource, TeacherSpec

CONFIG_FILE = "config.json"
CONFIG_SCHEMA_VERSION = 1  # layout of config.json; 1: the first stamped one (bench.file_versions)
WEIGHTS_FILE = "weights.safetensors"


def vocab_fingerprint(resources: Resources) -> str:
    """Short hash of the drug vocabulary: predictions' columns depend on it."""
    return hashlib.sha256("\n".join(resources.vocabs["drug"].tokens).encode()).hexdigest()[:16]


class BaseRecommender:
    """Base class: subclasses set `name`, `needs`, `Config` and implement fit / predict_proba /
    state / set_state. The optional capabilities (bench.protocol.Recommender) default to "none"."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    Config: ClassVar[type]
    hard_predictions: ClassVar[bool] = False
    latency_samples: ClassVar[int | None] = None
    teacher: ClassVar[TeacherSpec | None] = None
    ablation: ClassVar[tuple[AblationStep, ...]] = ()
    # `--set` options for a quick smoke fit (the conformance test and the CLI tests use them).
    smoke_options: ClassVar[dict[str, str]] = {}

    def __init__(self, config: Any, resources: Resources):
        self.config = config
        self.resources = resources

    @classmethod
    def parse_config(cls, options: Mapping[str, str]) -> Any:
        """`cls.Config` from `--set` options (UserError naming the bad one)."""
        return apply_overrides(cls.Config, options, owner=f"model {cls.name}")

    @classmethod
    def from_options(cls, options: dict[str, str], resources: Resources) -> Self:
        return cls(cls.parse_config(options), resources)

    # --- optional capabilities: defaults -------------------------------------------------------
    def prediction_notes(self) -> dict[str, Any]:
        return {}

    @classmethod
    def teacher_request(cls, config: Any) -> TeacherRequest | None:
        return None

    @classmethod
    def open_teacher(cls, choice: TeacherChoice, bundle: DatasetBundle, *, cache_dir: Path | None,
                     progress: Progress) -> TeacherSource:
        raise NotImplementedError(f"model {cls.name} declares no teacher")

    # --- state: named arrays -----------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def n_params(self) -> int:
        return int(sum(a.size for a in self.state().values()))

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        state = {k: np.ascontiguousarray(v) for k, v in self.state().items()}
        with atomic_path(path / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        meta = {"schema_version": CONFIG_SCHEMA_VERSION, "package_version": package_version(), "model": self.name,
                "config": config_to_dict(self.config), "drug_vocab": vocab_fingerprint(self.resources)}
        atomic_write_text(path / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path, resources: Resources) -> Self:
        config_path = path / CONFIG_FILE
        try:
            meta = json.loads(config_path.read_text())
        except FileNotFoundError:
            raise UserError(f"{config_path}: no saved model here (expected config.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{config_path}: not a valid saved-model config.json ({exc})") from None
        problem = "schema_version" in meta and version_problem(meta["schema_version"], CONFIG_SCHEMA_VERSION,
                                                                 "saved-model config.json")
        if problem:
            raise UserError(f"{config_path}: {problem}")
        if meta.get("model") != cls.name:
            raise UserError(f"{config_path}: holds model {meta.get('model')!r}, not {cls.name!r}")
        if meta.get("drug_vocab") != vocab_fingerprint(resources):
            raise UserError(f"{config_path}: model was trained on a different drug vocabulary "
                            "than the dataset given")
        field_names = {f.name for f in dataclasses.fields(cls.Config)}
        config = cls.Config(**{k: v for k, v in meta["config"].items() if k in field_names})
        model = cls(config, resources)
        model.set_state(load_file(str(path / WEIGHTS_FILE)))
        return model
