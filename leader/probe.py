"""Linear probes: how much of the next drug set can be read off a teacher's features.

LEADER's student is pulled towards the teacher's pooled hidden state (arXiv 2402.02803, feature-level
distillation). That only helps when the state carries drug information the student's own inputs do
not. This module measures it on the VALIDATION split (never the test split): the same per-drug
logistic regression, trained on the same training samples (by default the student's seeded KD subset,
so the cached teacher features are reused), reads the drug sets off

- the teacher's features,
- the codes the baselines read (current diagnoses and procedures, previous visit's drugs),
- both concatenated (does the teacher add anything on top of the codes?),

next to each drug's training frequency. Scores are mean per-sample PRAUC (bench.metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.data import DatasetBundle, Sample, make_samples, target_matrix
from bench.features import current_and_previous
from bench.metrics import average_precision_rows
from bench.splits import split_patients
from leader.distill import kd_subset

__all__ = ["ProbeRow", "probe_prauc", "probe_rows"]


@dataclass(frozen=True)
class ProbeRow:
    inputs: str
    dims: int
    valid_prauc: float


def probe_prauc(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray,
                c: float = 1.0) -> float:
    """Mean per-sample PRAUC on the evaluation rows of per-drug L2 logistic regressions.

    Args:
        x_train: float [n, f] inputs, z-scored here with the training mean and std.
        y_train: bool [n, d] drug sets.
        x_eval: float [m, f]; y_eval: bool [m, d].
        c: inverse L2 strength (sklearn's C), the same for every input set.
    """
    from sklearn.linear_model import LogisticRegression

    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 1e-6, std, 1.0)
    xt, xe = (x_train - mean) / std, (x_eval - mean) / std
    scores = np.empty(y_eval.shape, dtype=np.float64)
    for j in range(y_train.shape[1]):
        column = y_train[:, j]
        if column.all() or not column.any():
            scores[:, j] = column.mean()        # one class in training: its frequency
            continue
        scores[:, j] = LogisticRegression(C=c, max_iter=2000).fit(xt, column).predict_proba(xe)[:, 1]
    return float(average_precision_rows(y_eval, scores).mean())


def probe_rows(bundle: DatasetBundle, features: Callable[[Sequence[Sample]], np.ndarray], *, seed: int = 0,
               split_seed: int = 0, split: str = "random", ratios: str = "8:1:1", protocol: str = "last",
               n_train: int = 2000, c: float = 1.0) -> list[ProbeRow]:
    """The probe table for one teacher (`features`: samples -> float32 [n, hidden]) on `bundle`.

    Training samples: every visit of the training patients (the split of `split_seed`), the seeded
    subset of `n_train` that a student with kd_samples=n_train and training seed `seed` distils on;
    evaluation: the validation split under `protocol`.
    """
    parts = split_patients(bundle.patients, split, split_seed, ratios)
    train_all = make_samples(parts.train, "every")
    train = [train_all[i] for i in np.flatnonzero(kd_subset(len(train_all), n_train, seed))]
    valid = make_samples(parts.valid, protocol)
    y_train, y_valid = (target_matrix(s, bundle.drug_vocab) for s in (train, valid))
    codes_train, codes_valid = (current_and_previous(s, bundle.vocabs) for s in (train, valid))
    teacher_train, teacher_valid = features(train), features(valid)
    frequency = np.broadcast_to(y_train.mean(0), y_valid.shape)
    inputs = (
        ("teacher features", teacher_train, teacher_valid),
        ("codes (current dx + proc, previous drugs)", codes_train, codes_valid),
        ("teacher features + codes", np.hstack([teacher_train, codes_train]), np.hstack([teacher_valid, codes_valid])),
    )
    rows = [ProbeRow(name, xt.shape[1], probe_prauc(xt, y_train, xv, y_valid, c)) for name, xt, xv in inputs]
    rows.append(ProbeRow("drug frequencies only", 0, float(average_precision_rows(y_valid, frequency).mean())))
    return rows
