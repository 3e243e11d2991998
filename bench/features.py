"""Simple fixed-size encodings of samples, shared by the reference models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bench.data import Sample, Vocab


def current_and_previous(samples: Sequence[Sample], vocabs: Mapping[str, Vocab]) -> np.ndarray:
    """float32 [n, n_diag + n_proc + n_drugs]: multi-hot current diagnoses and procedures, then the
    previous visit's drugs (all zero for a single-visit sample)."""
    diagnoses = vocabs["diagnosis"].multi_hot([s.current.diagnoses for s in samples])
    procedures = vocabs["procedure"].multi_hot([s.current.procedures for s in samples])
    previous = vocabs["drug"].multi_hot([s.history[-1].drugs if s.index else () for s in samples])
    return np.concatenate([diagnoses, procedures, previous], axis=1)
