"""Cohort version 2's knowledge: version 1's table plus datasets/synthetic/v2 (more conditions, drug
classes, the title-only tail of diagnosis codes, incidental codes) and the mechanism rules of
datasets/synthetic/mechanisms (contraindications, combinations, escalations, DDI substitutions).
Every table is described, with its clinical reasons, in datasets/synthetic/README.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from bench.prep.synthetic_cohort import BACKGROUND, DEFAULT_FOLDER, Knowledge, load_knowledge, read_rows
from bench.registry import REPO_ROOT

V2_FOLDER = REPO_ROOT / "datasets" / "synthetic" / "v2"
RULES_FOLDER = REPO_ROOT / "datasets" / "synthetic" / "mechanisms"
ANY = "_any"  # a contraindication that holds a drug whatever condition it is given for


@dataclass(frozen=True)
class Contraindication:
    """`drug`, given for `condition` (None: for any reason), is replaced by `alternative` (None:
    withheld) while the patient has `blocker`."""

    condition: int | None
    drug: int
    blocker: int
    alternative: int | None


@dataclass(frozen=True)
class Combination:
    """`drug` is given with `probability` only when conditions `a` and `b` are both present."""

    a: int
    b: int
    drug: int
    probability: float


@dataclass(frozen=True)
class Escalation:
    """After a visit in which `condition` was treated with `first`, `second` is added from the next
    visit on with `probability`."""

    condition: int
    first: int
    second: int
    probability: float


@dataclass(frozen=True)
class CohortKnowledge:
    """Version 1's `Knowledge` over the v1 + v2 rows, extended with the code pools and the rules.

    Diagnosis codes are indexed over `dx_codes` = the table's codes, then the tail, then the
    incidental codes; procedures likewise over `proc_codes` (table codes, then incidental ones)."""

    kb: Knowledge
    dx_codes: tuple[str, ...]
    dx_titles: dict[str, str]
    tail: tuple[np.ndarray, ...]        # per condition: its tail codes (v1 "rare" codes first)
    incidental_dx: np.ndarray           # code indices
    incidental_dx_p: np.ndarray         # sampling probabilities (sum 1)
    proc_codes: tuple[str, ...]
    proc_titles: dict[str, str]
    incidental_proc: np.ndarray
    incidental_proc_p: np.ndarray
    ddi_pairs: tuple[tuple[str, str], ...]
    contraindications: tuple[Contraindication, ...]
    combinations: tuple[Combination, ...]
    escalations: dict[int, Escalation]   # by condition (one ladder per condition)
    substitutions: dict[int, int | None]  # drug -> safe alternative (None: withheld), in priority order


def _weights(rows: list[dict[str, str]]) -> np.ndarray:
    w = np.array([float(r["weight"]) for r in rows])
    return w / w.sum() if len(w) else w


@cache
def load_cohort_knowledge(v2_folder: Path = V2_FOLDER, rules_folder: Path = RULES_FOLDER) -> CohortKnowledge:
    """Read and index every table (cached: the files are part of the code)."""
    kb = load_knowledge([DEFAULT_FOLDER, v2_folder])
    cidx = {c: i for i, c in enumerate(kb.conditions)}
    cidx[BACKGROUND] = len(kb.conditions)
    didx = {d: i for i, d in enumerate(kb.drugs)}

    dx_codes, dx_titles = list(kb.dx_codes), dict(kb.dx_titles)
    tail: list[list[int]] = [[] for _ in kb.conditions]
    for code, cond in kb.rare:
        tail[cond].append(code)
    for r in read_rows([v2_folder], "title_tail.csv"):
        tail[cidx[r["condition"]]].append(len(dx_codes))
        dx_codes.append(r["icd9"])
        dx_titles[r["icd9"]] = r["title"]
    incidental = read_rows([v2_folder], "incidental_diagnoses.csv")
    incidental_dx = np.arange(len(dx_codes), len(dx_codes) + len(incidental))
    dx_codes += [r["icd9"] for r in incidental]
    dx_titles.update({r["icd9"]: r["title"] for r in incidental})

    procedures = read_rows([v2_folder], "incidental_procedures.csv")
    proc_codes = kb.proc_codes + tuple(r["icd9"] for r in procedures)
    proc_titles = {**kb.proc_titles, **{r["icd9"]: r["title"] for r in procedures}}

    def lookup(index: dict[str, int], key: str, table: str) -> int:
        if key not in index:
            raise ValueError(f"{table}: unknown condition or ATC3 class {key!r} (not in the knowledge table)")
        return index[key]

    def rule_rows(table: str) -> tuple[list[dict[str, str]], Callable[..., int], Callable[..., int | None]]:
        """A rules table's rows and two column readers (condition index; class index, None when empty)
        whose errors name the table."""
        def cond(r: dict[str, str], column: str) -> int:
            return lookup(cidx, r[column], table)

        def drug(r: dict[str, str], column: str) -> int | None:
            return lookup(didx, r[column], table) if r[column] else None

        return read_rows([rules_folder], table), cond, drug

    rows, cond, drug = rule_rows("contraindications.csv")
    contraindications = tuple(Contraindication(None if r["condition"] == ANY else cond(r, "condition"),
                                               drug(r, "atc3"), cond(r, "contraindicated_by"), drug(r, "alternative"))
                              for r in rows)
    rows, cond, drug = rule_rows("combinations.csv")
    combinations = tuple(Combination(cond(r, "condition_a"), cond(r, "condition_b"), drug(r, "atc3"),
                                     float(r["probability"])) for r in rows)
    rows, cond, drug = rule_rows("escalations.csv")
    escalations = {cond(r, "condition"): Escalation(cond(r, "condition"), drug(r, "first_line"),
                                                    drug(r, "second_line"), float(r["probability"])) for r in rows}
    rows, _, drug = rule_rows("ddi_substitutions.csv")
    substitutions = {drug(r, "atc3"): drug(r, "alternative") for r in rows}

    return CohortKnowledge(
        kb=kb, dx_codes=tuple(dx_codes), dx_titles=dx_titles,
        tail=tuple(np.array(t, dtype=int) for t in tail),
        incidental_dx=incidental_dx, incidental_dx_p=_weights(incidental),
        proc_codes=proc_codes, proc_titles=proc_titles,
        incidental_proc=np.arange(len(kb.proc_codes), len(proc_codes)), incidental_proc_p=_weights(procedures),
        ddi_pairs=kb.ddi_pairs + tuple((r["atc3_a"], r["atc3_b"]) for r in read_rows([rules_folder], "ddi_pairs.csv")),
        contraindications=contraindications, combinations=combinations, escalations=escalations,
        substitutions=substitutions,
    )
