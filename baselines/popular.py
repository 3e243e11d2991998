"""`popular`: recommend the k drugs most often prescribed in training visits; k tuned on validation.

Scores follow the training frequency ranking (so PRAUC measures that ranking) and are mapped so
that exactly the top k lie at or above 0.5: with the default threshold the prediction is the top-k set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bench.data import Sample, target_matrix
from bench.model_base import BaseRecommender
from bench.progress import Progress
from bench.protocol import FitReport


@dataclass(frozen=True)
class PopularConfig:
    k: int = 0  # 0 = tune k on the validation split (best mean Jaccard)


def jaccard_by_k(targets: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Mean Jaccard of predicting the first k drugs of `order`, for k = 1..n_drugs.

    targets: bool [n_samples, n_drugs]; order: int [n_drugs] (most frequent first). Returns [n_drugs].
    """
    hits = np.cumsum(targets[:, order], axis=1)  # [n, n_drugs]: |top-k ∩ T| for each k
    k = np.arange(1, targets.shape[1] + 1)
    union = k[None, :] + targets.sum(axis=1, keepdims=True) - hits
    return (hits / np.maximum(union, 1)).mean(axis=0)


def rank_scores(order: np.ndarray, k: int) -> np.ndarray:
    """float32 [n_drugs]: decreasing along `order`; ranks < k in (0.5, 1), the rest in (0, 0.5)."""
    n = len(order)
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.arange(n)
    top = 1.0 - (ranks + 0.5) / (2 * k)
    rest = 0.5 * (1.0 - (ranks - k + 0.5) / max(n - k, 1))
    return np.where(ranks < k, top, rest).astype(np.float32)


class Popular(BaseRecommender):
    name: ClassVar[str] = "popular"
    Config = PopularConfig

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int,
            progress: Progress) -> FitReport:
        vocab = self.resources.vocabs["drug"]
        frequency = target_matrix(train, vocab).mean(axis=0)
        order = np.argsort(-frequency, kind="stable")
        curve = jaccard_by_k(target_matrix(valid, vocab), order)
        k = self.config.k or int(np.argmax(curve)) + 1
        self.config = PopularConfig(k=k)
        self._scores = rank_scores(order, k)
        self._frequency = frequency.astype(np.float32)
        return FitReport(notes={"k": k, "valid_jaccard_at_k": float(curve[k - 1])})

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        return np.tile(self._scores, (len(samples), 1))

    def state(self) -> dict[str, np.ndarray]:
        return {"scores": self._scores, "frequency": self._frequency}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self._scores, self._frequency = state["scores"], state["frequency"]
