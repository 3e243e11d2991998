"""The prescribing step of cohort version 2, shared by the generator and the oracle.

`visit_probabilities` turns a visit's latent state (treated conditions, regimens, the previous
visit's drugs, escalations) into independent per-class probabilities, applying the interaction and
time mechanisms; `prescribe` draws drug sets from them: Bernoulli draws, random extra classes
(noise), then interaction avoidance, which replaces one class of an interacting pair by a safe
alternative. Avoidance makes the final probabilities non-closed-form, hence the oracle re-draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.prep.synthetic_v2.knowledge import CohortKnowledge

DRUG_DROP = 0.03          # random omission of a drawn class
NOISE_DRUGS = 1.4         # Poisson mean of random extra classes per visit (as version 1)
UNCODED_DRUG_SCALE = 0.4  # a chronic condition neither coded nor treated before is treated less often
CONTINUE = 0.92           # a maintenance class given in the previous visit continues (time mechanism)
ESCALATED = 0.90          # probability of the second-line class once a condition has escalated
RESIDUAL = 0.05           # share of a contraindicated class's probability that remains
AVOID = 0.80              # chance that an interacting pair with a listed alternative is avoided


@dataclass(frozen=True)
class Switches:
    """Which mechanisms are on (datasets/synthetic/README.md); all on in the `synthetic` cards."""

    interactions: bool = True
    time: bool = True
    avoidance: bool = True
    titles: bool = True
    incidental: bool = True


@dataclass(frozen=True)
class VisitState:
    """What the prescriber knows at one visit (indices into the knowledge table).

    treated: conditions treated in this visit: the coded ones (acute and chronic) and the patient's
    uncoded chronic conditions. coded: bool per treated condition. regimens: per chronic condition,
    float [n_drugs] maintenance probabilities chosen at onset. previous: bool [n_drugs], the drugs of
    the previous visit (all False at the first). escalated: conditions on their second line."""

    treated: tuple[int, ...]
    coded: tuple[bool, ...]
    regimens: dict[int, np.ndarray]
    previous: np.ndarray
    escalated: frozenset[int]


def visit_probabilities(ck: CohortKnowledge, state: VisitState, switches: Switches) -> tuple[np.ndarray, set[str]]:
    """float [n_drugs] independent prescribing probabilities, and the mechanism tags that shaped them
    ("interaction", "carry_over", "escalation")."""
    kb, tags = ck.kb, set()
    present = set(state.treated)
    rows = []
    for cond, coded in zip(state.treated, state.coded):
        row = state.regimens.get(cond, kb.drug_p[cond]) * (1.0 if coded else UNCODED_DRUG_SCALE)
        if switches.time:
            if cond in state.escalated:
                second = ck.escalations[cond].second
                row[second] = max(row[second], ESCALATED)
                tags.add("escalation")
            continued = kb.persistent[cond] & state.previous & (row > 0)
            if continued.any():
                row[continued] = np.maximum(row[continued], CONTINUE)
                if not coded:
                    tags.add("carry_over")
        rows.append(row)
    rows.append(kb.drug_p[len(kb.conditions)].copy())  # background
    table = np.stack(rows)
    if switches.interactions:
        table = _apply_interactions(ck, state.treated, present, table, tags)
    return 1.0 - np.prod(1.0 - table, axis=0), tags


def _apply_interactions(ck: CohortKnowledge, treated: tuple[int, ...], present: set[int], table: np.ndarray,
                        tags: set[str]) -> np.ndarray:
    """Contraindications move a class's probability to its alternative (or withhold it) in the rows of
    the condition it is given for; combinations add a class given only for two conditions together."""
    for rule in ck.contraindications:
        if rule.blocker not in present:
            continue
        rows = range(len(table)) if rule.condition is None else \
            [i for i, c in enumerate(treated) if c == rule.condition]
        for i in rows:
            p = table[i, rule.drug]
            if p <= 0:
                continue
            if rule.alternative is not None:
                table[i, rule.alternative] = max(table[i, rule.alternative], p)
            table[i, rule.drug] = p * RESIDUAL
            tags.add("interaction")
    given = [c for c in ck.combinations if c.a in present and c.b in present]
    if given:
        tags.add("interaction")
        extra = np.zeros((len(given), table.shape[1]))
        extra[np.arange(len(given)), [c.drug for c in given]] = [c.probability for c in given]
        table = np.vstack([table, extra])
    return table


@dataclass(frozen=True)
class Prescriber:
    """Draws drug sets from per-class probabilities (the generator with n=1, the oracle with many)."""

    noise_p: np.ndarray                           # float [n_drugs], sums to 1
    avoid: tuple[tuple[int, int, int | None], ...]  # (kept class, replaced class, alternative or None)

    @classmethod
    def of(cls, ck: CohortKnowledge, switches: Switches) -> Prescriber:
        weights = ck.kb.drug_p.sum(axis=0) + 0.05
        return cls(noise_p=weights / weights.sum(), avoid=_avoidance_plan(ck) if switches.avoidance else ())

    def draw(self, rng: np.random.Generator, p_drug: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """bool [n, n_drugs] drug sets and bool [n] "an interacting class was replaced", from
        float [n_drugs] probabilities (before the random omission, which is applied here)."""
        p = p_drug * (1.0 - DRUG_DROP)
        taken = rng.random((n, len(p))) < p
        k = rng.poisson(NOISE_DRUGS, size=n)
        taken[np.repeat(np.arange(n), k), rng.choice(len(p), size=int(k.sum()), p=self.noise_p)] = True
        empty = ~taken.any(axis=1)
        taken[empty, int(np.argmax(p))] = True
        replaced = np.zeros(n, dtype=bool)
        for kept, dropped, alternative in self.avoid:
            both = taken[:, kept] & taken[:, dropped]
            if not both.any():
                continue
            hit = both & (rng.random(n) < AVOID)
            taken[hit, dropped] = False
            if alternative is not None:
                taken[hit, alternative] = True
            replaced |= hit
        return taken, replaced


def _avoidance_plan(ck: CohortKnowledge) -> tuple[tuple[int, int, int | None], ...]:
    """For each DDI pair with a substitutable class: which class is replaced (the one listed first in
    ddi_substitutions.csv when both are) and by what. Pairs without one are co-prescribed as drawn."""
    index = {d: i for i, d in enumerate(ck.kb.drugs)}
    priority = {drug: rank for rank, drug in enumerate(ck.substitutions)}
    plan = []
    for a, b in ck.ddi_pairs:
        ia, ib = index[a], index[b]
        candidates = [d for d in (ia, ib) if d in priority]
        if not candidates:
            continue
        dropped = min(candidates, key=priority.__getitem__)
        plan.append((ib if dropped == ia else ia, dropped, ck.substitutions[dropped]))
    return tuple(plan)
