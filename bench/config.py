"""Model configs: frozen dataclasses overridden by `--set key=value`, with type checking.

`TrainingConfig` holds the fields every mini-batch-trained model shares (bench.training.fit_minibatch)
and their range checks; a model's config extends it (or `HistoryTrainingConfig`, which adds
`max_visits`), adds its own fields and checks, and redeclares a shared field to change its default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from bench.errors import UserError

C = TypeVar("C")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_assignments(items: list[str] | None, option: str = "--set") -> dict[str, str]:
    """["lr=0.01", "epochs=3"] -> {"lr": "0.01", "epochs": "3"}."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _field_types(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(text: str, tp: Any) -> Any:
    """Convert a --set string to the field's declared type; ValueError when it does not fit."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and text.lower() in {"none", "null"}:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(text, arg)
            except ValueError:
                continue
        raise ValueError
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if text not in choices:
            raise ValueError
        return text
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError
    if tp is int:
        return int(text)
    if tp is float:
        return float(text)
    if tp is str:
        return text
    raise ValueError


def describe_fields(config_cls: type) -> str:
    """`lr (float), epochs (int), ...` for error messages and help."""
    parts = []
    for name, tp in _field_types(config_cls).items():
        if typing.get_origin(tp) is typing.Literal:
            parts.append(f"{name} ({'|'.join(map(str, typing.get_args(tp)))})")
        else:
            parts.append(f"{name} ({_type_name(tp)})")
    return ", ".join(parts)


def apply_overrides(config_cls: type[C], overrides: Mapping[str, str], *, owner: str,
                    base: Mapping[str, Any] | None = None) -> C:
    """Build `config_cls` from its defaults, then `base` (already typed, e.g. a dataset card's
    parameters), then the typed values of the `overrides` strings."""
    types_by_name = _field_types(config_cls)
    values: dict[str, Any] = dict(base or {})
    for key, text in overrides.items():
        if key not in types_by_name:
            raise UserError(f"unknown option {key!r} for {owner}; valid fields: {describe_fields(config_cls)}")
        tp = types_by_name[key]
        try:
            values[key] = _coerce(text, tp)
        except ValueError:
            expected = "|".join(map(str, typing.get_args(tp))) if typing.get_origin(tp) is typing.Literal \
                else _type_name(tp)
            raise UserError(f"option {key}={text!r} for {owner} expects {expected}; "
                            f"valid fields: {describe_fields(config_cls)}") from None
    try:
        return config_cls(**values)
    except ValueError as exc:  # a __post_init__ range check
        raise UserError(f"{owner}: {exc}") from None


def require(checks: Mapping[str, bool], owner: str) -> None:
    """Range checks of a config's `__post_init__`: {"lr > 0": lr > 0, ...}; ValueError naming every
    failed rule (apply_overrides turns it into a one-line UserError)."""
    failed = [rule for rule, ok in checks.items() if not ok]
    if failed:
        raise ValueError(f"{owner} config needs " + ", ".join(failed))


def config_to_dict(config: object) -> dict[str, Any]:
    return dataclasses.asdict(config)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrainingConfig:
    """Adam with `lr` and `weight_decay` on shuffled mini-batches of `batch_size` samples for at most
    `epochs` epochs, stopping after `patience` epochs without a better validation PRAUC.

    `patience` 10 (5 until 2026-12): on `synthetic`, validation PRAUC of the neural baselines creeps up by
    about 0.001 per few epochs over long noisy plateaus, and with 5 a fit's length became a matter of luck
    (SafeDrug, seed 0: stopped at epoch 21 at 0.650 in one run, went on to epoch 37 and 0.658 in another
    run of the same model that happened to find small new bests).

    A subclass names itself in range-check errors with `owner` and adds rules by extending
    `checks()`. Changing a default here changes every model that does not redeclare the field
    (tests/test_training_config.py pins each model's values)."""

    lr: float = 2e-3
    weight_decay: float = 0.0
    epochs: int = 50
    batch_size: int = 32
    patience: int = 10

    owner: ClassVar[str] = "model"

    def __post_init__(self) -> None:
        require(self.checks(), self.owner)

    def checks(self) -> dict[str, bool]:
        """{rule: holds} for every range rule of the config; a subclass returns `super().checks() | {...}`."""
        return {"lr > 0": self.lr > 0, "weight_decay >= 0": self.weight_decay >= 0, "epochs >= 1": self.epochs >= 1,
                "batch_size >= 1": self.batch_size >= 1, "patience >= 1": self.patience >= 1}


@dataclass(frozen=True)
class HistoryTrainingConfig(TrainingConfig):
    """A TrainingConfig of a model that reads the visit history: at most the last `max_visits` visits."""

    max_visits: int = 20

    def checks(self) -> dict[str, bool]:
        return super().checks() | {"max_visits >= 1": self.max_visits >= 1}
