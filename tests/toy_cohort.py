"""A tiny cohort with a rule a model can learn (tests of the history models: RETAIN, MICRON)."""

from __future__ import annotations

import numpy as np

from bench.data import Patient, Visit, Vocab

N_CODES = 6


def rule_cohort(n_patients: int, seed: int = 0, max_visits: int = 3) -> tuple[list[Patient], dict[str, Vocab]]:
    """Patients of 1..max_visits visits; each visit has one or two of N_CODES diagnoses `dK`, one
    procedure, and exactly the drugs `K` of its diagnoses `dK` (so PRAUC 1 is reachable)."""
    rng = np.random.default_rng(seed)
    patients = []
    for pid in range(n_patients):
        visits = []
        for v in range(int(rng.integers(1, max_visits + 1))):
            codes = sorted(int(c) for c in rng.choice(N_CODES, size=int(rng.integers(1, 3)), replace=False))
            visits.append(Visit(pid * 10 + v, tuple(f"d{c}" for c in codes), ("p0",), tuple(str(c) for c in codes)))
        patients.append(Patient(pid, tuple(visits)))
    vocabs = {"diagnosis": Vocab([f"d{c}" for c in range(N_CODES)]), "procedure": Vocab(["p0"]),
              "drug": Vocab([str(c) for c in range(N_CODES)])}
    return patients, vocabs
