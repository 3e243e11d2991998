"""The evaluation groups: which test samples each breakdown of run.json's `metrics` covers.

Every run is scored on all its test samples and on these subsets (docs/evaluation.md#evaluation-groups):

* "all": every test sample.
* "single_visit" / "multi_visit": the patient has no earlier visit / has one (Sample.is_single_visit).
* "rare_code": the current visit's rarest diagnosis code is in 1-4 training visits (RARE_VISITS).
* "unseen_code": the current visit has a diagnosis code that no training visit has.
* one group per mechanism tag of the dataset (bench.data.Visit.tags, named after the tag: synthetic
  cohorts tag "interaction", "carry_over", "escalation", "avoidance"): the samples whose current visit
  carries the tag. A tag found anywhere in the dataset gets its group even when no test visit has it
  (then n = 0 and every metric null).

Code frequencies come from the training split only: the number of training visits (every visit of
the training patients, what every model trains on) that contain a code. `bench rarity` bins the same
count more finely.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from bench.data import Patient, Sample
from bench.errors import UserError

__all__ = ["NO_CODES", "RARE_VISITS", "CODE_GROUPS", "training_code_counts", "rarest_code_count", "dataset_tags",
           "visit_groups", "evaluation_groups"]

# a visit without diagnosis codes has no rare code: it is in neither code group
NO_CODES = np.iinfo(np.int64).max
RARE_VISITS = range(1, 5)             # "rare_code": the rarest code is in 1-4 training visits
CODE_GROUPS = ("rare_code", "unseen_code")


def training_code_counts(train: Iterable[Patient]) -> Counter[str]:
    """Diagnosis code -> number of training visits containing it."""
    counts: Counter[str] = Counter()
    for patient in train:
        for visit in patient.visits:
            counts.update(set(visit.diagnoses))
    return counts


def rarest_code_count(diagnoses: Sequence[str], counts: Counter[str]) -> int:
    """Training count of the rarest of `diagnoses` (0: one was never seen; NO_CODES when there are none)."""
    return min((counts[c] for c in diagnoses), default=NO_CODES)


def dataset_tags(patients: Iterable[Patient]) -> tuple[str, ...]:
    """The mechanism tags found on any visit of `patients`, sorted (empty for untagged data)."""
    return tuple(sorted({tag for patient in patients for visit in patient.visits for tag in visit.tags}))


def visit_groups(visit_index: np.ndarray) -> dict[str, np.ndarray]:
    """"all", "single_visit", "multi_visit" from int [n] visit indices: bool masks [n]. These three
    need nothing but the stored predictions (bench.analysis.rescore re-derives them from older files)."""
    single = np.asarray(visit_index) == 0    # Sample.is_single_visit: no earlier visit
    return {"all": np.ones(len(single), bool), "single_visit": single, "multi_visit": ~single}


def evaluation_groups(test: Sequence[Sample], train: Iterable[Patient],
                      tags: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Every evaluation group of the `test` samples as a bool mask [len(test)], in run.json's order:
    visit_groups, then CODE_GROUPS (code counts from the `train` patients), then one group per tag in
    `tags` (dataset_tags of the whole dataset, so a tag absent from the test split still has its
    empty group). A tag named like a built-in group is a UserError."""
    groups = visit_groups(np.array([s.index for s in test], dtype=np.int64))
    counts = training_code_counts(train)
    rarest = np.array([rarest_code_count(s.current.diagnoses, counts) for s in test], dtype=np.int64)
    groups["rare_code"] = (rarest >= RARE_VISITS.start) & (rarest < RARE_VISITS.stop)
    groups["unseen_code"] = rarest == 0
    for tag in tags:
        if tag in groups:
            raise UserError(f"visit tag {tag!r}: clashes with the evaluation group of that name; rename the tag")
        groups[tag] = np.array([tag in s.current.tags for s in test], dtype=bool)
    return groups
