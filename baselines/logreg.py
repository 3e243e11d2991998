"""`logreg`: one linear multi-label layer (a logistic regression per drug, trained jointly).

Input x: float32 [batch, n_diag + n_proc + n_drugs], the multi-hot current diagnoses and procedures
plus the previous visit's drugs (`bench.features.current_and_previous`). Output: logits
[batch, n_drugs] = x W^T + b, trained with BCE-with-logits and L2 weight decay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from bench.config import TrainingConfig
from bench.data import Sample, target_matrix
from bench.features import current_and_previous
from bench.progress import Progress
from bench.protocol import FitReport
from bench.torch_model import TorchRecommender
from bench.training import fit_minibatch


@dataclass(frozen=True)
class LogRegConfig(TrainingConfig):
    """previous_drugs: feed the previous visit's drugs (false: current codes only, the inputs SafeDrug
    and MoleRec read; an ablation that shows how much the medication history is worth)."""

    lr: float = 1e-2
    weight_decay: float = 1e-5
    epochs: int = 100
    batch_size: int = 128
    patience: int = 3

    previous_drugs: bool = True

    owner: ClassVar[str] = "logreg"


class LogReg(TorchRecommender):
    name: ClassVar[str] = "logreg"
    Config = LogRegConfig
    smoke_options: ClassVar[dict[str, str]] = {"epochs": "2"}

    def build_module(self) -> torch.nn.Module:
        v = self.resources.vocabs
        return torch.nn.Linear(len(v["diagnosis"]) + len(v["procedure"]) + len(v["drug"]), len(v["drug"]))

    def features(self, samples: Sequence[Sample]) -> torch.Tensor:
        x = current_and_previous(samples, self.resources.vocabs)
        if not self.config.previous_drugs:
            x[:, -self.resources.n_drugs:] = 0.0
        return torch.from_numpy(x)

    def logits(self, samples: Sequence[Sample]) -> torch.Tensor:
        return self.module(self.features(samples))

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int,
            progress: Progress) -> FitReport:
        torch.manual_seed(seed)
        self.module = self.build_module()
        drugs = self.resources.vocabs["drug"]

        inputs = self.features(train)
        targets = torch.from_numpy(target_matrix(train, drugs).astype("float32"))

        def batch_loss(indices: np.ndarray) -> torch.Tensor:
            index = torch.from_numpy(indices)
            return torch.nn.functional.binary_cross_entropy_with_logits(self.module(inputs[index]), targets[index])

        return fit_minibatch(self.module, self.config, train=train, valid=valid, batch_loss=batch_loss,
                             predict=self.predict_proba, drug_vocab=drugs, seed=seed, progress=progress,
                             description="fit logreg")


@dataclass(frozen=True)
class LogRegCurrentConfig(LogRegConfig):
    previous_drugs: bool = False

    owner: ClassVar[str] = "logreg-current"


class LogRegCurrent(LogReg):
    """`logreg-current`: `logreg` over the current visit's codes alone (previous_drugs=false by
    default), the reference row that shows what a cohort gives without any medication history."""

    name: ClassVar[str] = "logreg-current"
    Config = LogRegCurrentConfig
