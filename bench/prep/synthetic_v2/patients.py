"""Patients of cohort version 2: latent conditions and treatment state, drawn visit by visit.

Per patient (as version 1): age, ethnicity, chronic conditions with comorbidity structure, a
maintenance regimen chosen at each chronic condition's onset, profile fields. Per visit: admission
type, which chronic conditions are coded (time mechanism: only some), acute conditions (some still
active from the previous admission), their diagnosis codes (common codes, or one code of the
condition's title-only tail), incidental codes, procedures, then the prescribing step
(bench.prep.synthetic_v2.prescribing). Parameters and their clinical reasons:
datasets/synthetic/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.prep.synthetic_cohort import (MAX_VISITS, NOISE_DX, Lookups, common_codes, draw_conditions,
                                         draw_demographics, draw_procedures, draw_profile, draw_regimen)
from bench.prep.synthetic_v2.knowledge import CohortKnowledge
from bench.prep.synthetic_v2.prescribing import Prescriber, Switches, VisitState, visit_probabilities

CODED_CHRONIC = {True: 0.60, False: 0.90}  # chance a chronic condition is coded in a visit (time on / off)
NEW_CHRONIC = 0.15        # a new chronic condition since the last admission (as version 1)
ACUTE_PERSISTS = 0.25     # an acute condition is still active at the next admission (time mechanism)
TAIL_SHARE = 0.15         # a coded condition is coded by one tail code instead of its common codes
UNSEEN_SHARE = 0.20       # share of each condition's tail codes kept for validation and test patients
INCIDENTAL_DX = 9.0       # Poisson mean of incidental diagnosis codes per visit
INCIDENTAL_PROC = 0.4     # Poisson mean of incidental procedure codes per visit
SINGLE_VISIT = (0.70, 0.035, 0.50, 0.80)  # P(one visit) = clip(a - b x chronic conditions, lo, hi)


@dataclass(frozen=True)
class Context:
    """Everything shared by the patients of one cohort."""

    ck: CohortKnowledge
    lookups: Lookups
    switches: Switches
    prescriber: Prescriber
    tail_p: tuple[np.ndarray, ...]       # per condition: Zipf weights over its tail codes
    tail_seen: tuple[np.ndarray, ...]    # per condition: bool, False for codes kept for valid/test

    @classmethod
    def of(cls, rng: np.random.Generator, ck: CohortKnowledge, switches: Switches) -> Context:
        tail_p, tail_seen = [], []
        for codes in ck.tail:
            weights = 1.0 / np.arange(1, len(codes) + 1)
            seen = np.ones(len(codes), dtype=bool)
            held = int(round(UNSEEN_SHARE * len(codes)))
            if held and len(codes) > held:
                seen[rng.choice(len(codes), size=held, replace=False)] = False
            tail_p.append(weights)
            tail_seen.append(seen)
        return cls(ck=ck, lookups=Lookups.of(ck.kb), switches=switches, prescriber=Prescriber.of(ck, switches),
                   tail_p=tuple(tail_p), tail_seen=tuple(tail_seen))


def draw_patient(rng: np.random.Generator, ctx: Context, may_use_unseen: bool) -> list[dict]:
    """One patient's visits as dicts: dx / proc / drugs (index lists), admission type, profile, tags
    and p_drug (float32 [n_drugs], the prescribing probabilities before the draw, for the oracle).
    `may_use_unseen`: the patient is in validation or test of the default split."""
    kb, time = ctx.ck.kb, ctx.switches.time
    age, ethnicity, base = draw_demographics(rng, ctx.lookups)
    chronic = draw_conditions(rng, kb, base, kb.chronic, [], rng.poisson(1.0 + 0.05 * (age - 18)))
    regimens = {c: draw_regimen(rng, kb, c) for c in chronic}
    profile = draw_profile(rng, kb, age, ethnicity, chronic)
    a, b, lo, hi = SINGLE_VISIT
    n_visits = min(int(rng.geometric(float(np.clip(a - b * len(chronic), lo, hi)))), MAX_VISITS)
    previous = np.zeros(len(kb.drugs), dtype=bool)
    escalated: set[int] = set()
    continuing: list[int] = []
    visits: list[dict] = []
    for t in range(n_visits):
        if t > 0 and rng.random() < NEW_CHRONIC:
            for c in draw_conditions(rng, kb, base, kb.chronic, chronic, 1):
                chronic, regimens[c] = chronic + [c], draw_regimen(rng, kb, c)
        visit, acute = _visit(rng, ctx, base, chronic, continuing, may_use_unseen)
        visit["profile"] = {**profile, "admission_type": visit.pop("admission")}
        coded = visit.pop("coded")
        uncoded = [c for c in chronic if c not in coded]
        state = VisitState(treated=tuple(acute + coded + uncoded),
                           coded=(True,) * (len(acute) + len(coded)) + (False,) * len(uncoded),
                           regimens=regimens, previous=previous, escalated=frozenset(escalated))
        p_drug, tags = visit_probabilities(ctx.ck, state, ctx.switches)
        taken, replaced = ctx.prescriber.draw(rng, p_drug, 1)
        if replaced[0]:
            tags.add("avoidance")
        visit.update(drugs=np.flatnonzero(taken[0]).tolist(), tags=tags, p_drug=p_drug.astype(np.float32))
        visits.append(visit)
        if time:
            for rule in ctx.ck.escalations.values():
                if rule.condition in chronic and rule.condition not in escalated and taken[0, rule.first] \
                        and rng.random() < rule.probability:
                    escalated.add(rule.condition)
            continuing = [c for c in acute if rng.random() < ACUTE_PERSISTS]
            previous = taken[0]
    return visits


def _visit(rng: np.random.Generator, ctx: Context, base: np.ndarray, chronic: list[int], continuing: list[int],
           may_use_unseen: bool) -> tuple[dict, list[int]]:
    """One admission's type, coded conditions and codes; returns the visit and its acute conditions."""
    co, kb = ctx.lookups, ctx.ck.kb
    reasons = [c for c in chronic if co.elective_reason[c]]
    u = rng.random()
    elective = u < 0.05 + 0.15 * bool(reasons)
    admission = "ELECTIVE" if elective else ("URGENT" if u > 0.955 else "EMERGENCY")
    coded = [c for c in chronic if rng.random() < CODED_CHRONIC[ctx.switches.time]]
    reason = reasons[int(rng.integers(len(reasons)))] if elective and reasons else -1
    if reason >= 0 and reason not in coded:
        coded.append(reason)
    n_acute = max(rng.poisson(0.7 if elective else 2.3), 0 if coded or continuing else 1)
    acute = continuing + draw_conditions(rng, kb, base, ~kb.chronic, chronic + continuing, n_acute)
    active = acute + coded

    dx: list[int] = []
    for c in active:
        dx.extend(_condition_codes(rng, ctx, c, may_use_unseen))
    dx.extend(co.all_common[rng.integers(len(co.all_common), size=rng.poisson(NOISE_DX))].tolist())
    procs = draw_procedures(rng, co, active, reason).tolist()
    if ctx.switches.incidental:
        dx.extend(_incidental(rng, ctx.ck.incidental_dx, ctx.ck.incidental_dx_p, INCIDENTAL_DX))
        procs.extend(_incidental(rng, ctx.ck.incidental_proc, ctx.ck.incidental_proc_p, INCIDENTAL_PROC))
    return {"dx": dx, "proc": procs, "admission": admission, "coded": coded}, acute


def _incidental(rng: np.random.Generator, pool: np.ndarray, p: np.ndarray, mean: float) -> list[int]:
    """A Poisson(`mean`) number of codes drawn from `pool` with probabilities `p`."""
    return pool[rng.choice(len(pool), size=rng.poisson(mean), p=p)].tolist() if len(pool) else []


def _condition_codes(rng: np.random.Generator, ctx: Context, cond: int, may_use_unseen: bool) -> list[int]:
    """The codes of one coded condition: usually its common codes; with the titles mechanism,
    sometimes one code of its tail (Zipf-weighted; codes kept for valid/test only where allowed)."""
    tail = ctx.ck.tail[cond]
    if ctx.switches.titles and len(tail) and rng.random() < TAIL_SHARE:
        weights = ctx.tail_p[cond] if may_use_unseen else ctx.tail_p[cond] * ctx.tail_seen[cond]
        return [int(tail[int(rng.choice(len(tail), p=weights / weights.sum()))])]
    return common_codes(rng, ctx.lookups, cond)

