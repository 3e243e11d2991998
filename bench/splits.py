"""Patient-level train/valid/test splits (docs/evaluation.md#splits).

Schemes:
- `random` (default): seeded shuffle of patients, then cut by `ratios` (8:1:1).
- `leader`: patients in subject-id order, cut 8:1:1 (LEADER's released code).
- `gamenet`: patients in subject-id order; first 2/3 train, next 1/6 test, last 1/6 valid
  (GAMENet/SafeDrug/MoleRec's released code; note test comes BEFORE valid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.data import Patient

SCHEMES = ("random", "leader", "gamenet")


@dataclass(frozen=True)
class Split:
    train: tuple[Patient, ...]
    valid: tuple[Patient, ...]
    test: tuple[Patient, ...]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


def parse_ratios(text: str) -> tuple[float, float, float]:
    """Parse "8:1:1" into normalised fractions."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise ValueError(f"split ratios must look like 8:1:1 (three non-negative numbers), got {text!r}")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def split_patients(patients: Sequence[Patient], scheme: str = "random", seed: int = 0,
                   ratios: str = "8:1:1") -> Split:
    """Split patients (never their visits) into train/valid/test."""
    if scheme not in SCHEMES:
        raise ValueError(f"split scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    ordered = sorted(patients, key=lambda p: p.id)
    n = len(ordered)
    if scheme == "gamenet":
        n_train = int(n * 2 / 3)
        n_test = (n - n_train) // 2
        test = ordered[n_train:n_train + n_test]
        return Split(tuple(ordered[:n_train]), tuple(ordered[n_train + n_test:]), tuple(test))
    if scheme == "random":
        order = np.random.default_rng(seed).permutation(n)
        ordered = [ordered[i] for i in order]
    f_train, f_valid, _ = parse_ratios(ratios)
    n_train = int(round(n * f_train))
    n_valid = int(round(n * f_valid))
    return Split(tuple(ordered[:n_train]), tuple(ordered[n_train:n_train + n_valid]),
                 tuple(ordered[n_train + n_valid:]))
