"""`random`: uniform random scores, deterministic per (seed, patient, visit). A floor for tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bench.data import Sample
from bench.model_base import BaseRecommender
from bench.progress import Progress
from bench.protocol import FitReport


@dataclass(frozen=True)
class RandomConfig:
    seed: int = 0


class RandomScores(BaseRecommender):
    name: ClassVar[str] = "random"
    Config = RandomConfig

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int,
            progress: Progress) -> FitReport:
        self.config = RandomConfig(seed=seed)
        return FitReport()

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        """float32 [n, n_drugs]; a sample's row does not depend on the batch it is in."""
        out = np.empty((len(samples), self.resources.n_drugs), dtype=np.float32)
        for row, s in enumerate(samples):
            out[row] = np.random.default_rng([self.config.seed, s.patient.id, s.index]).random(out.shape[1])
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        pass
