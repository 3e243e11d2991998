"""Cohort version 2: each mechanism present when on and absent when off, unseen codes stay out of
training, version 1 unchanged, the oracle is deterministic and a ceiling."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bench.loading import load_bundle
from bench.prep.synthetic_cohort import generate as generate_v1
from bench.prep.synthetic_v2.cohort import SyntheticV2Params, default_split_held_out, generate
from bench.prep.synthetic_v2.knowledge import load_cohort_knowledge
from bench.prep.synthetic_v2.prescribing import (AVOID, CONTINUE, ESCALATED, UNCODED_DRUG_SCALE, Prescriber,
                                                 Switches, VisitState, visit_probabilities)

CK = load_cohort_knowledge()
COND = {c: i for i, c in enumerate(CK.kb.conditions)}
DRUG = {d: i for i, d in enumerate(CK.kb.drugs)}
NONE = np.zeros(len(CK.kb.drugs), dtype=bool)


def probabilities(*conditions: str, coded: tuple[bool, ...] | None = None, previous=NONE,
                  escalated: frozenset[int] = frozenset(), **switches: bool) -> tuple[np.ndarray, set[str]]:
    treated = tuple(COND[c] for c in conditions)
    state = VisitState(treated=treated, coded=coded or (True,) * len(treated), regimens={}, previous=previous,
                       escalated=escalated)
    return visit_probabilities(CK, state, Switches(**switches))


@pytest.fixture(scope="module")
def cohort():
    return generate(SyntheticV2Params(n_patients=400))


def tags_of(bundle) -> set[str]:
    return {t for p in bundle.patients for v in p.visits for t in v.tags}


def test_version_1_is_byte_identical():
    # content hashes of version 1 as generated before version 2 existed (commit 98e0a0b)
    assert generate_v1(300, 0).hash == "a19ac0647ecc91c0"
    assert load_bundle("synthetic-v1", overrides={"n_patients": "300"}).hash == "a19ac0647ecc91c0"


def test_generation_is_deterministic(cohort):
    again = generate(SyntheticV2Params(n_patients=400))
    assert again.hash == cohort.hash
    assert generate(SyntheticV2Params(n_patients=400, seed=1)).hash != cohort.hash
    assert cohort.meta["generator_version"] == 2


def test_contraindication_moves_a_class_to_its_alternative_only_with_the_comorbidity():
    alone, _ = probabilities("type2_diabetes")
    with_ckd, tags = probabilities("type2_diabetes", "chronic_kidney_disease")
    assert alone[DRUG["A10B"]] > 0.1
    assert with_ckd[DRUG["A10B"]] < 0.5 * alone[DRUG["A10B"]]      # metformin withheld in renal impairment
    assert with_ckd[DRUG["A10A"]] >= alone[DRUG["A10A"]]           # insulin instead
    assert "interaction" in tags
    off, off_tags = probabilities("type2_diabetes", "chronic_kidney_disease", interactions=False)
    assert off[DRUG["A10B"]] == pytest.approx(alone[DRUG["A10B"]])
    assert "interaction" not in off_tags


def test_combination_class_is_not_additive_in_the_conditions():
    hf, _ = probabilities("heart_failure")
    af, _ = probabilities("atrial_fibrillation")
    both, _ = probabilities("heart_failure", "atrial_fibrillation")
    additive = 1 - (1 - hf[DRUG["C01A"]]) * (1 - af[DRUG["C01A"]])  # independent sources (noisy-OR)
    assert both[DRUG["C01A"]] > additive + 0.3
    off, _ = probabilities("heart_failure", "atrial_fibrillation", interactions=False)
    assert off[DRUG["C01A"]] == pytest.approx(additive)


def test_maintenance_drugs_continue_for_uncoded_conditions_only_with_time():
    statin = DRUG["C10A"]
    previous = NONE.copy()
    previous[statin] = True
    coded_first, _ = probabilities("hyperlipidemia")
    uncoded, tags = probabilities("hyperlipidemia", coded=(False,), previous=previous)
    assert uncoded[statin] >= CONTINUE
    assert "carry_over" in tags
    no_time, no_tags = probabilities("hyperlipidemia", coded=(False,), previous=previous, time=False)
    assert no_time[statin] == pytest.approx(coded_first[statin] * UNCODED_DRUG_SCALE)
    assert "carry_over" not in no_tags


def test_escalation_adds_the_second_line():
    hf = COND["heart_failure"]
    before, _ = probabilities("heart_failure")
    after, tags = probabilities("heart_failure", escalated=frozenset({hf}))
    assert before[DRUG["C03B"]] < 0.05 <= ESCALATED <= after[DRUG["C03B"]]
    assert "escalation" in tags
    assert probabilities("heart_failure", escalated=frozenset({hf}), time=False)[0][DRUG["C03B"]] < 0.05


def test_avoidance_replaces_an_interacting_class_by_its_alternative():
    p = np.zeros(len(CK.kb.drugs))
    p[[DRUG["B01A"], DRUG["M01A"]]] = 1.0  # an anticoagulant and an NSAID
    prescriber = replace(Prescriber.of(CK, Switches()), noise_p=np.eye(len(p))[DRUG["A06A"]])
    taken, replaced = prescriber.draw(np.random.default_rng(0), p, 4000)
    both = taken[:, DRUG["B01A"]] & taken[:, DRUG["M01A"]]
    assert replaced.mean() == pytest.approx(AVOID * (1 - 0.03) ** 2, abs=0.03)  # both drawn (no omission), avoided
    assert (taken[replaced, DRUG["N02B"]]).all() and not both[replaced].any()
    off = Prescriber.of(CK, Switches(avoidance=False))
    taken, replaced = replace(off, noise_p=prescriber.noise_p).draw(np.random.default_rng(0), p, 4000)
    assert not replaced.any() and taken[:, DRUG["M01A"]].mean() > 0.95


def test_each_mechanism_tags_visits_when_on_and_never_when_off(cohort):
    assert {"interaction", "carry_over", "escalation", "avoidance"} <= tags_of(cohort)
    off = generate(SyntheticV2Params(n_patients=400, interactions=False, time=False, avoidance=False))
    assert tags_of(off) == set()


def test_title_tail_and_incidental_codes_appear_only_when_on(cohort):
    tail = {CK.dx_codes[i] for codes in CK.tail for i in codes}
    incidental = {CK.dx_codes[i] for i in CK.incidental_dx}
    codes = set(cohort.vocabs["diagnosis"].tokens)
    assert codes & tail and codes & incidental
    off = generate(SyntheticV2Params(n_patients=400, titles=False, incidental=False))
    assert not set(off.vocabs["diagnosis"].tokens) & (tail | incidental)


def test_codes_kept_unseen_never_occur_in_training_patients_of_the_default_split():
    from bench.prep.synthetic_v2.patients import Context

    params = SyntheticV2Params(n_patients=1500)
    bundle = generate(params)
    ctx = Context.of(np.random.default_rng(params.seed), CK, params.switches)  # the generator's first draws
    unseen = {CK.dx_codes[i] for codes, seen in zip(CK.tail, ctx.tail_seen) for i in codes[~seen]}
    held_out = default_split_held_out(params.n_patients)
    used = {(p.id in held_out, code) for p in bundle.patients for v in p.visits for code in v.diagnoses
            if code in unseen}
    assert used and all(in_valid_or_test for in_valid_or_test, _ in used)


def test_oracle_probabilities_are_deterministic_and_valid(cohort):
    ids = [p.visits[-1].admission_id for p in cohort.patients[:20]]
    drugs = cohort.drug_vocab.tokens
    first = cohort.generator.probabilities(ids, drugs, draws=500)
    assert np.array_equal(first, cohort.generator.probabilities(ids, drugs, draws=500))
    assert first.shape == (20, len(drugs)) and ((first >= 0) & (first <= 1)).all()
