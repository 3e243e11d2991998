"""`oracle`: the ceiling of a generated cohort, the generator's own prescribing probabilities.

For each visit it returns P(class prescribed | the generator's latent state of that visit): the
patient's true conditions (coded or not), regimens, escalations and the previous visit's drugs, with
the prescribing step's randomness (random extra classes, omissions, interaction avoidance) averaged
out by seeded re-draws (bench.prep.synthetic_v2.oracle). No model that sees only codes can know that
state, so the oracle's scores bound what the cohort lets any model reach (in expectation; a finite
test set can put a lucky model a little above it). It trains nothing and exists only for generated
cohorts that keep their generator (`synthetic`, `synthetic-small`; not `synthetic-v1` or MIMIC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from bench.data import Sample
from bench.errors import UserError
from bench.model_base import BaseRecommender
from bench.progress import Progress
from bench.protocol import FitReport


class PrescribingModel(Protocol):
    """What the oracle reads from Resources.generator (bench.prep.synthetic_v2.oracle.PrescribingOracle)."""

    def probabilities(self, admission_ids: Sequence[int], drugs: Sequence[str], draws: int) -> np.ndarray: ...


@dataclass(frozen=True)
class OracleConfig:
    draws: int = 4000  # re-draws per visit; the standard error of a probability is at most 0.5 / sqrt(draws)

    def __post_init__(self) -> None:
        if self.draws < 1:
            raise ValueError("draws must be >= 1")


class Oracle(BaseRecommender):
    name: ClassVar[str] = "oracle"
    needs: ClassVar[frozenset[str]] = frozenset({"generator"})
    Config = OracleConfig

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int,
            progress: Progress) -> FitReport:
        self._generator()
        return FitReport(notes={"draws": self.config.draws})

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        """float [n, n_drugs] in the drug vocabulary's order."""
        scores = self._generator().probabilities([s.current.admission_id for s in samples],
                                                 self.resources.vocabs["drug"].tokens, draws=self.config.draws)
        return scores.astype(np.float32)

    def _generator(self) -> PrescribingModel:
        if self.resources.generator is None:
            raise UserError("model oracle needs a generated cohort that keeps its generator (synthetic, "
                            "synthetic-small); this dataset has none")
        return self.resources.generator

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        pass
