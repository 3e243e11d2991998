"""The synthetic cohort generator (bench/prep/synthetic_cohort.py): deterministic, MIMIC-like, rare codes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bench.data import build_vocabs, make_samples
from bench.prep.synthetic_cohort import INSURANCES, PROFILE_FIELDS, generate, load_knowledge

FULL = 6000


@pytest.fixture(scope="module")
def cohort():
    """The full-size cohort (generates in a few seconds)."""
    return generate(n_patients=FULL, seed=0)


@pytest.fixture(scope="module")
def visits(cohort):
    return [v for p in cohort.patients for v in p.visits]


def test_same_seed_same_bundle_other_seed_other_bundle():
    a, b = generate(300, seed=7), generate(300, seed=7)
    assert a.hash == b.hash
    assert a.patients == b.patients and [v.profile for p in a.patients for v in p.visits] == \
        [v.profile for p in b.patients for v in p.visits]
    assert generate(300, seed=8).hash != a.hash
    assert generate(300, seed=7, name="other").name == "other"


def test_bundle_fields(cohort):
    n = FULL
    assert cohort.name == "synthetic"
    assert [p.id for p in cohort.patients] == list(range(1, n + 1))
    ids = [v.admission_id for p in cohort.patients for v in p.visits]
    assert len(ids) == len(set(ids))
    assert cohort.meta == {"source": "synthetic", "generator_version": 1, "seed": 0,
                           "n_patients": n}
    assert cohort.profile_fields == PROFILE_FIELDS
    assert cohort.vocabs == build_vocabs(cohort.patients)
    for code_type in ("diagnosis", "procedure", "drug"):
        assert set(cohort.titles[code_type]) == set(cohort.vocabs[code_type].tokens)
        assert all(cohort.titles[code_type].values())
    kb = load_knowledge()
    assert cohort.titles["drug"]["N02B"] == "other analgesics and antipyretics"
    assert set(cohort.drug_vocab.tokens) <= set(cohort.smiles)
    assert all(len(s) == 1 and s[0] for s in cohort.smiles.values())
    assert set(cohort.ddi_pairs) == set(kb.ddi_pairs) and cohort.ddi_matrix().any()


def test_visit_counts(cohort):
    counts = Counter(len(p.visits) for p in cohort.patients)
    assert min(counts) == 1 and 8 <= max(counts) <= 10
    assert 0.40 <= counts[1] / FULL <= 0.60
    assert len(make_samples(cohort.patients, "every")) == sum(k * c for k, c in counts.items())


def test_every_visit_has_codes_of_each_type_and_a_profile(visits):
    for v in visits:
        assert v.diagnoses and v.procedures and v.drugs
        assert len(set(v.diagnoses)) == len(v.diagnoses) and len(set(v.drugs)) == len(v.drugs)
        assert set(v.profile) == set(PROFILE_FIELDS) and all(v.profile.values())
    assert {v.profile["insurance"] for v in visits} == set(INSURANCES)
    assert {v.profile["admission_type"] for v in visits} == {"EMERGENCY", "ELECTIVE", "URGENT"}


def test_average_sizes_are_mimic_like(visits):
    def mean(kind):
        return np.mean([len(getattr(v, kind)) for v in visits])

    assert 8 <= mean("diagnoses") <= 14
    assert 2 <= mean("procedures") <= 5
    assert 12 <= mean("drugs") <= 20


def test_rare_codes_are_rare_but_present(cohort, visits):
    kb = load_knowledge()
    counts = Counter(c for v in visits for c in v.diagnoses)
    rare = [kb.dx_codes[i] for i, _ in kb.rare]
    assert all(1 <= counts[c] <= 4 for c in rare), {c: counts[c] for c in rare}
    common = [c for c in kb.dx_codes if c not in set(rare)]
    assert np.median([counts[c] for c in common]) > 50


def test_ddi_rate_is_moderate(cohort, visits):
    adj, index = cohort.ddi_matrix(), cohort.drug_vocab.index
    pairs = hits = 0
    for v in visits:
        ix = [index[d] for d in v.drugs]
        sub = adj[np.ix_(ix, ix)]
        pairs += len(ix) * (len(ix) - 1) // 2
        hits += int(sub.sum()) // 2
    assert 0.03 <= hits / pairs <= 0.12


def test_profile_carries_some_signal(visits):
    """Medicare patients (mostly older) take statins more often than privately insured ones."""
    def statin_share(insurance):
        group = [v for v in visits if v.profile["insurance"] == insurance]
        return np.mean(["C10A" in v.drugs for v in group])

    assert statin_share("Medicare") > statin_share("Private") + 0.05
