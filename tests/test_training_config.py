"""The shared training config (bench.config.TrainingConfig): every trained model extends it, keeps
its own defaults, and gets the same range checks and `--set` handling."""

from __future__ import annotations

import dataclasses

import pytest

from baselines.cognet import COGNetConfig
from baselines.gamenet import GAMENetConfig
from baselines.logreg import LogRegConfig
from baselines.micron import MICRONConfig
from baselines.molerec import MoleRecConfig
from baselines.retain import RETAINConfig
from baselines.safedrug import SafeDrugConfig
from bench.config import HistoryTrainingConfig, TrainingConfig, apply_overrides, config_to_dict
from bench.errors import UserError
from leader.student import DistilledStudentConfig, StudentConfig

# Each model's defaults of the shared fields, as they were before the base existed: a change of a
# base default must not move a model's figures.
DEFAULTS = {
    LogRegConfig: dict(lr=1e-2, weight_decay=1e-5, epochs=100, batch_size=128, patience=3),  # 30 until 2026-12
    GAMENetConfig: dict(lr=1e-3, weight_decay=0.0, epochs=100, batch_size=32, patience=10, max_visits=20),  # epochs 40, patience 5 until 2026-12
    SafeDrugConfig: dict(lr=2e-3, weight_decay=0.0, epochs=100, batch_size=32, patience=10, max_visits=20),  # epochs 60, patience 5 until 2026-12
    MoleRecConfig: dict(lr=2e-3, weight_decay=0.0, epochs=200, batch_size=64, patience=10, max_visits=20),  # epochs 50, patience 5 until 2026-12
    MICRONConfig: dict(lr=2e-3, weight_decay=1e-5, epochs=100, batch_size=32, patience=10, max_visits=20),
    RETAINConfig: dict(lr=2e-3, weight_decay=0.0, epochs=100, batch_size=32, patience=10, max_visits=20),
    COGNetConfig: dict(lr=1e-3, weight_decay=0.0, epochs=200, batch_size=16, patience=10, max_visits=20),
    StudentConfig: dict(lr=5e-4, weight_decay=0.0, epochs=100, batch_size=16, patience=10, max_visits=10),
    DistilledStudentConfig: dict(lr=5e-4, weight_decay=0.0, epochs=100, batch_size=16, patience=10, max_visits=10),
}
CONFIGS = list(DEFAULTS)
BAD = {"lr": "0", "weight_decay": "-1", "epochs": "0", "batch_size": "0", "patience": "0", "max_visits": "0"}


@pytest.mark.parametrize("config_cls", CONFIGS, ids=lambda c: c.__name__)
def test_defaults_kept(config_cls):
    assert issubclass(config_cls, TrainingConfig)
    values = config_to_dict(config_cls())
    assert {k: values[k] for k in DEFAULTS[config_cls]} == DEFAULTS[config_cls]
    assert ("max_visits" in values) == issubclass(config_cls, HistoryTrainingConfig)


@pytest.mark.parametrize("config_cls", CONFIGS, ids=lambda c: c.__name__)
def test_shared_range_checks(config_cls):
    names = {f.name for f in dataclasses.fields(config_cls)}
    for key, text in BAD.items():
        if key not in names:
            continue
        with pytest.raises(UserError, match=f"{config_cls.owner} config needs .*{key}"):
            apply_overrides(config_cls, {key: text}, owner="model")


@pytest.mark.parametrize("config_cls", CONFIGS, ids=lambda c: c.__name__)
def test_set_and_round_trip(config_cls):
    config = apply_overrides(config_cls, {"lr": "0.05", "epochs": "2"}, owner="model")
    assert (config.lr, config.epochs) == (0.05, 2)
    assert config_cls(**config_to_dict(config)) == config  # what save() writes, load() reads back
