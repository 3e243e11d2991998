"""The built-in synthetic cohort: MIMIC-III-like patients drawn from a curated knowledge table.

The table (`datasets/synthetic/knowledge/*.csv`, see its README) lists conditions with their ICD-9
diagnosis codes (common and rare), typical procedures and ATC3 drug classes, comorbidity weights and
drug-drug interactions. `generate` draws patients with latent chronic conditions (with comorbidity
structure), acute conditions per visit, the conditions' codes and drugs, carry-over of maintenance
drugs, profile fields and noise. Everything is drawn from one `np.random.default_rng(seed)`.
`load_synthetic` is the loader the synthetic dataset cards name (`datasets/synthetic*.toml`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import apply_overrides
from bench.data import DatasetBundle, Patient, Visit, build_vocabs
from bench.errors import UserError
from bench.prep.summary import bundle_summary
from bench.registry import REPO_ROOT, DatasetCard

GENERATOR_VERSION = 1
PROFILE_FIELDS = ("insurance", "language", "marital_status", "ethnicity", "admission_type")
DEFAULT_FOLDER = REPO_ROOT / "datasets" / "synthetic" / "knowledge"
BACKGROUND = "_background"

MAX_VISITS = 10
CODED_CHRONIC = 0.90      # a chronic condition is coded in a visit with this probability
UNCODED_DRUG_SCALE = 0.4  # uncoded chronic conditions are still treated, less often
PRIMARY_CODE, OTHER_CODE = 0.95, 0.55  # first common code of a condition / each further one
CARRY_OVER = 0.85         # persistent drugs continue into the next visit
REGIMEN_P = 0.93          # a chronic condition's chosen maintenance drug is given in a visit
DRUG_DROP = 0.03          # random omission of a drawn drug
NOISE_DX, NOISE_DRUGS = 1.0, 1.4  # Poisson means of random extra diagnoses / drugs
RARE_COUNTS, RARE_COUNT_P = np.array([1, 2, 3, 4]), np.array([0.05, 0.35, 0.35, 0.25])
RARE_REPLACES = 0.6       # a rare code replaces the condition's common codes in that visit

OLD_AGE = ("dementia", "osteoporosis", "atrial_fibrillation", "heart_failure", "hip_fracture",
           "benign_prostatic_hyperplasia", "osteoarthritis", "coronary_artery_disease")
YOUNG_AGE = ("asthma", "schizophrenia", "alcohol_dependence", "hepatitis_c", "epilepsy", "anxiety",
             "alcohol_withdrawal", "diabetic_ketoacidosis", "depression", "cellulitis")
ELECTIVE_REASONS = ("coronary_artery_disease", "lung_cancer", "osteoarthritis",
                    "benign_prostatic_hyperplasia", "peripheral_vascular_disease", "cholecystitis")
MEDICAID_LINKED = ("alcohol_dependence", "schizophrenia", "hepatitis_c")
ETHNICITIES = ("WHITE", "BLACK/AFRICAN AMERICAN", "HISPANIC OR LATINO", "ASIAN", "OTHER",
               "UNKNOWN/NOT SPECIFIED")
ETHNICITY_P = np.array([0.70, 0.10, 0.05, 0.04, 0.03, 0.08])
ETHNICITY_RISK = {"BLACK/AFRICAN AMERICAN": {"hypertension": 1.5, "chronic_kidney_disease": 1.4,
                                             "end_stage_renal_disease": 1.6},
                  "HISPANIC OR LATINO": {"type2_diabetes": 1.5, "liver_cirrhosis": 1.3},
                  "ASIAN": {"hepatitis_c": 1.5, "type2_diabetes": 1.2}}
LANGUAGES = ("ENGL", "SPAN", "PTUN", "RUSS", "CANT", "MAND", "HAIT")
LANGUAGE_P = {"WHITE": [0.93, 0.0, 0.03, 0.03, 0.0, 0.0, 0.01],
              "BLACK/AFRICAN AMERICAN": [0.92, 0.0, 0.0, 0.0, 0.0, 0.0, 0.08],
              "HISPANIC OR LATINO": [0.45, 0.55, 0.0, 0.0, 0.0, 0.0, 0.0],
              "ASIAN": [0.55, 0.0, 0.0, 0.0, 0.25, 0.20, 0.0]}
MARITAL = ("MARRIED", "SINGLE", "WIDOWED", "DIVORCED", "SEPARATED", "UNKNOWN (DEFAULT)")
INSURANCES = ("Medicare", "Medicaid", "Private", "Government", "Self Pay")


@dataclass(frozen=True)
class Knowledge:
    """The knowledge table as arrays; row `n_conditions` of the matrices is `_background`."""

    conditions: tuple[str, ...]
    prevalence: np.ndarray        # float [n_conditions]
    chronic: np.ndarray           # bool [n_conditions]
    dx_codes: tuple[str, ...]
    dx_titles: dict[str, str]
    common: tuple[np.ndarray, ...]  # per condition: indices of its common dx codes (table order)
    rare: tuple[tuple[int, int], ...]  # (dx code index, condition index) for every rare code
    proc_codes: tuple[str, ...]
    proc_titles: dict[str, str]
    proc_p: np.ndarray            # float [n_conditions + 1, n_procedures]
    drugs: tuple[str, ...]
    drug_names: dict[str, str]
    smiles: dict[str, str]
    drug_p: np.ndarray            # float [n_conditions + 1, n_drugs]
    persistent: np.ndarray        # bool [n_conditions + 1, n_drugs]
    comorbidity: np.ndarray       # float [n_conditions, n_conditions], 1 where unrelated
    ddi_pairs: tuple[tuple[str, str], ...]


def _rows_one(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_rows(folders: Sequence[Path], name: str) -> list[dict[str, str]]:
    """The rows of `name` in every folder that has it, in folder order (later folders append rows)."""
    return [row for folder in folders if (folder / name).exists() for row in _rows_one(folder, name)]


def load_knowledge(folder: Path | Sequence[Path] | None = None) -> Knowledge:
    """Read the knowledge CSVs (default: datasets/synthetic/knowledge in the repository); several
    folders are read as one table, the rows of later folders appended (cohort version 2)."""
    folders = [DEFAULT_FOLDER] if folder is None else [Path(folder)] if isinstance(folder, (str, Path)) \
        else [Path(f) for f in folder]
    cond_rows = read_rows(folders, "conditions.csv")
    conditions = tuple(r["condition"] for r in cond_rows)
    cidx = {c: i for i, c in enumerate(conditions)}
    cidx[BACKGROUND] = len(conditions)
    atc_rows = read_rows(folders, "atc3.csv")
    drugs = tuple(r["atc3"] for r in atc_rows)
    didx = {d: i for i, d in enumerate(drugs)}

    dx_rows = read_rows(folders, "condition_diagnoses.csv")
    dx_codes = tuple(r["icd9"] for r in dx_rows)
    common: list[list[int]] = [[] for _ in conditions]
    rare: list[tuple[int, int]] = []
    for i, r in enumerate(dx_rows):
        if r["kind"] == "rare":
            rare.append((i, cidx[r["condition"]]))
        else:
            common[cidx[r["condition"]]].append(i)

    proc_rows = read_rows(folders, "condition_procedures.csv")
    proc_codes = tuple(dict.fromkeys(r["icd9"] for r in proc_rows))
    pidx = {p: i for i, p in enumerate(proc_codes)}
    proc_p = np.zeros((len(conditions) + 1, len(proc_codes)))
    for r in proc_rows:
        proc_p[cidx[r["condition"]], pidx[r["icd9"]]] = float(r["probability"])

    drug_p = np.zeros((len(conditions) + 1, len(drugs)))
    persistent = np.zeros(drug_p.shape, dtype=bool)
    for r in read_rows(folders, "condition_drugs.csv"):
        drug_p[cidx[r["condition"]], didx[r["atc3"]]] = float(r["probability"])
        persistent[cidx[r["condition"]], didx[r["atc3"]]] = r["persistent"].lower() == "true"

    comorbidity = np.ones((len(conditions), len(conditions)))
    for r in read_rows(folders, "comorbidities.csv"):
        a, b = cidx[r["condition_a"]], cidx[r["condition_b"]]
        comorbidity[a, b] = comorbidity[b, a] = float(r["weight"])

    return Knowledge(
        conditions=conditions,
        prevalence=np.array([float(r["prevalence"]) for r in cond_rows]),
        chronic=np.array([r["chronic"].lower() == "true" for r in cond_rows]),
        dx_codes=dx_codes, dx_titles={r["icd9"]: r["title"] for r in dx_rows},
        common=tuple(np.array(c, dtype=int) for c in common), rare=tuple(rare),
        proc_codes=proc_codes, proc_titles={r["icd9"]: r["title"] for r in proc_rows},
        proc_p=proc_p, drugs=drugs, drug_names={r["atc3"]: r["name"].lower() for r in atc_rows},
        smiles={r["atc3"]: r["smiles"] for r in atc_rows}, drug_p=drug_p, persistent=persistent,
        comorbidity=comorbidity,
        ddi_pairs=tuple((r["atc3_a"], r["atc3_b"]) for r in read_rows(folders, "ddi_pairs.csv")),
    )


def pick(rng: np.random.Generator, weights: np.ndarray) -> int:
    """One index drawn with probability proportional to `weights` (which must not all be 0)."""
    cum = np.cumsum(weights)
    return int(min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), len(cum) - 1))


def draw_regimen(rng: np.random.Generator, kb: Knowledge, cond: int) -> np.ndarray:
    """A patient's drug probabilities for a chronic condition: its maintenance (persistent) drugs
    are chosen once, at onset, and then given at most visits; other drugs keep the table's odds."""
    chosen = kb.persistent[cond] & (rng.random(len(kb.drugs)) < kb.drug_p[cond])
    return np.where(kb.persistent[cond], chosen * REGIMEN_P, kb.drug_p[cond])


def draw_conditions(rng: np.random.Generator, kb: Knowledge, base: np.ndarray, allowed: np.ndarray,
                     present: list[int], k: int) -> list[int]:
    """Draw `k` new conditions among `allowed`, weighted by `base` times the comorbidity boost."""
    new: list[int] = []
    for _ in range(k):
        weights = base * allowed
        if present or new:
            weights = weights * kb.comorbidity[present + new].prod(axis=0)
        weights[present + new] = 0.0
        if weights.sum() <= 0:
            break
        new.append(pick(rng, weights))
    return new


def choice(rng: np.random.Generator, options: tuple[str, ...], p) -> str:
    return options[pick(rng, np.asarray(p, dtype=float))]


def draw_profile(rng: np.random.Generator, kb: Knowledge, age: float, ethnicity: str,
             chronic: list[int]) -> dict[str, str]:
    """Patient-level profile fields, mildly linked to age, ethnicity and chronic conditions."""
    names = {kb.conditions[c] for c in chronic}
    if age >= 65 or "end_stage_renal_disease" in names:
        insurance_p = [0.86, 0.04, 0.07, 0.02, 0.01]
    else:
        medicaid = 0.50 if names & set(MEDICAID_LINKED) else 0.22
        insurance_p = [0.08 + 0.02 * len(chronic), medicaid, 0.55, 0.06, 0.06]
    if age < 40:
        marital_p = [0.25, 0.62, 0.01, 0.06, 0.02, 0.04]
    elif age < 72:
        marital_p = [0.52, 0.20, 0.08, 0.13, 0.03, 0.04]
    else:
        marital_p = [0.40, 0.10, 0.38, 0.07, 0.01, 0.04]
    if "alcohol_dependence" in names:
        marital_p = [0.7 * p for p in marital_p[:3]] + [0.3 + marital_p[3]] + marital_p[4:]
    return {"insurance": choice(rng, INSURANCES, insurance_p),
            "language": choice(rng, LANGUAGES, LANGUAGE_P.get(ethnicity, LANGUAGE_P["WHITE"])),
            "marital_status": choice(rng, MARITAL, marital_p), "ethnicity": ethnicity}


@dataclass
class Lookups:
    """Per-cohort lookups shared by every patient, plus the coded-condition log for rare codes."""

    kb: Knowledge
    old: np.ndarray
    young: np.ndarray
    elective_reason: np.ndarray
    all_common: np.ndarray
    noise_drug_p: np.ndarray
    code_p: list[np.ndarray]
    occurrences: list[list[tuple[int, int]]]  # per condition: (patient index, visit index) coded

    @classmethod
    def of(cls, kb: Knowledge) -> Lookups:
        weights = kb.drug_p.sum(axis=0) + 0.05
        return cls(kb=kb, old=np.isin(kb.conditions, OLD_AGE),
                   young=np.isin(kb.conditions, YOUNG_AGE),
                   elective_reason=np.isin(kb.conditions, ELECTIVE_REASONS),
                   all_common=np.concatenate(kb.common), noise_drug_p=weights / weights.sum(),
                   code_p=[np.where(np.arange(len(c)) == 0, PRIMARY_CODE, OTHER_CODE)
                           for c in kb.common],
                   occurrences=[[] for _ in kb.conditions])


def generate(n_patients: int, seed: int, name: str = "synthetic") -> DatasetBundle:
    """A deterministic synthetic cohort of `n_patients` patients (ids 1..n) for `seed`."""
    kb = load_knowledge()
    rng = np.random.default_rng(seed)
    cohort = Lookups.of(kb)
    records = [(pid, _patient(rng, cohort, pid - 1)) for pid in range(1, n_patients + 1)]
    _place_rare_codes(rng, kb, records, cohort.occurrences)
    return _bundle(kb, records, seed, n_patients, name)


def draw_demographics(rng: np.random.Generator, co: Lookups) -> tuple[float, str, np.ndarray]:
    """A patient's age, ethnicity and condition sampling weights (prevalence by age and ethnicity)."""
    kb = co.kb
    age = float(np.clip(rng.normal(64.0, 16.0), 18.0, 95.0))
    ethnicity = choice(rng, ETHNICITIES, ETHNICITY_P)
    base = kb.prevalence * np.where(co.old, np.clip((age - 35.0) / 30.0, 0.15, 2.0), 1.0)
    base = base * np.where(co.young, 1.6 if age < 50 else 0.7, 1.0)
    for cond, factor in ETHNICITY_RISK.get(ethnicity, {}).items():
        base[kb.conditions.index(cond)] *= factor
    return age, ethnicity, base


def common_codes(rng: np.random.Generator, co: Lookups, cond: int) -> list[int]:
    """The common diagnosis codes coding `cond` in one visit (its first one at least)."""
    codes = co.kb.common[cond][rng.random(len(co.kb.common[cond])) < co.code_p[cond]]
    return codes.tolist() if len(codes) else [int(co.kb.common[cond][0])]


def draw_procedures(rng: np.random.Generator, co: Lookups, active: list[int], reason: int) -> np.ndarray:
    """Procedure code indices of a visit with `active` conditions (`reason`: the condition of an
    elective admission, whose planned procedure is more likely; -1 for none)."""
    proc_rows = co.kb.proc_p[active + [len(co.kb.conditions)]].copy()
    if reason >= 0:  # the planned procedure of an elective admission
        proc_rows[active.index(reason)] = np.minimum(2.0 * proc_rows[active.index(reason)], 0.9)
    p_proc = 1.0 - np.prod(1.0 - proc_rows, axis=0)
    procs = np.flatnonzero(rng.random(len(p_proc)) < p_proc)
    return procs if len(procs) else np.array([int(np.argmax(p_proc))])


def _patient(rng: np.random.Generator, co: Lookups, index: int) -> list[dict]:
    """One patient's visits (mutable dicts of code indices and the profile)."""
    kb = co.kb
    age, ethnicity, base = draw_demographics(rng, co)
    chronic = draw_conditions(rng, kb, base, kb.chronic, [], rng.poisson(1.0 + 0.05 * (age - 18)))
    regimen = {c: draw_regimen(rng, kb, c) for c in chronic}
    profile = draw_profile(rng, kb, age, ethnicity, chronic)
    p_single = float(np.clip(0.58 - 0.035 * len(chronic), 0.38, 0.62))
    carried = np.zeros(len(kb.drugs), dtype=bool)
    visits: list[dict] = []
    for t in range(min(int(rng.geometric(p_single)), MAX_VISITS)):
        if t > 0 and rng.random() < 0.15:  # a new chronic condition since the last admission
            for c in draw_conditions(rng, kb, base, kb.chronic, chronic, 1):
                chronic, regimen[c] = chronic + [c], draw_regimen(rng, kb, c)
        visit, carried = _visit(rng, co, base, chronic, regimen, carried)
        visit["profile"] = {**profile, "admission_type": visit.pop("admission")}
        for c in visit.pop("active"):
            co.occurrences[c].append((index, t))
        visits.append(visit)
    return visits


def _visit(rng: np.random.Generator, co: Lookups, base: np.ndarray, chronic: list[int],
           regimen: dict[int, np.ndarray], carried: np.ndarray) -> tuple[dict, np.ndarray]:
    """One admission: admission type, coded conditions, their codes, procedures and drugs.
    Returns the visit and the drugs that carry over to the next one."""
    kb, bg = co.kb, len(co.kb.conditions)
    reasons = [c for c in chronic if co.elective_reason[c]]
    u = rng.random()
    elective = u < 0.05 + 0.15 * bool(reasons)
    admission = "ELECTIVE" if elective else ("URGENT" if u > 0.955 else "EMERGENCY")
    coded = [c for c in chronic if rng.random() < CODED_CHRONIC]
    reason = reasons[int(rng.integers(len(reasons)))] if elective and reasons else -1
    if reason >= 0 and reason not in coded:
        coded.append(reason)
    uncoded = [c for c in chronic if c not in coded]
    n_acute = rng.poisson(0.7 if elective else 2.3)
    n_acute = max(n_acute, 0 if coded else 1)
    active = draw_conditions(rng, kb, base, ~kb.chronic, chronic, n_acute) + coded

    dx: list[int] = []
    for c in active:
        dx.extend(common_codes(rng, co, c))
    dx.extend(co.all_common[rng.integers(len(co.all_common), size=rng.poisson(NOISE_DX))].tolist())

    procs = draw_procedures(rng, co, active, reason)

    rows = active + uncoded + [bg]
    scale = np.array([1.0] * len(active) + [UNCODED_DRUG_SCALE] * len(uncoded) + [1.0])
    table = np.stack([regimen[c] if c in regimen else kb.drug_p[c] for c in rows])
    p_drug = 1.0 - np.prod(1.0 - scale[:, None] * table, axis=0)
    p_drug = np.where(carried, np.maximum(p_drug, CARRY_OVER), p_drug) * (1.0 - DRUG_DROP)
    taken = rng.random(len(p_drug)) < p_drug
    taken[rng.choice(len(p_drug), size=rng.poisson(NOISE_DRUGS), p=co.noise_drug_p)] = True
    if not taken.any():
        taken[int(np.argmax(p_drug))] = True
    carried = taken & (carried | kb.persistent[rows].any(axis=0))
    return {"dx": dx, "proc": procs.tolist(), "drugs": np.flatnonzero(taken).tolist(),
            "admission": admission, "active": active}, carried


def _place_rare_codes(rng: np.random.Generator, kb: Knowledge, records: list[tuple[int, list]],
                      occurrences: list[list[tuple[int, int]]]) -> None:
    """Put every rare code into 1-4 random visits where its condition is coded (cohort-wide), often
    in place of the condition's common codes, so rare codes stay rare whatever the cohort size."""
    for code, cond in kb.rare:
        places = occurrences[cond]
        if not places:
            continue
        k = min(int(RARE_COUNTS[pick(rng, RARE_COUNT_P)]), len(places))
        for j in rng.choice(len(places), size=k, replace=False):
            patient, t = places[int(j)]
            visit = records[patient][1][t]
            if rng.random() < RARE_REPLACES:
                commons = set(kb.common[cond].tolist())
                visit["dx"] = [d for d in visit["dx"] if d not in commons]
            visit["dx"].append(code)


def _bundle(kb: Knowledge, records: list[tuple[int, list[dict]]], seed: int, n_patients: int,
            name: str) -> DatasetBundle:
    """Freeze the drawn visits into a DatasetBundle."""
    patients: list[Patient] = []
    admission_id = 100000
    for pid, visits in records:
        frozen = []
        for v in visits:
            admission_id += 1
            frozen.append(Visit(
                admission_id=admission_id,
                diagnoses=tuple(dict.fromkeys(kb.dx_codes[i] for i in v["dx"])),
                procedures=tuple(kb.proc_codes[i] for i in v["proc"]),
                drugs=tuple(kb.drugs[i] for i in v["drugs"]),
                profile=v["profile"]))
        patients.append(Patient(id=pid, visits=tuple(frozen)))
    vocabs = build_vocabs(patients)
    titles = {"diagnosis": {c: kb.dx_titles[c] for c in vocabs["diagnosis"].tokens},
              "procedure": {c: kb.proc_titles[c] for c in vocabs["procedure"].tokens},
              "drug": {c: kb.drug_names[c] for c in vocabs["drug"].tokens}}
    return DatasetBundle(
        name=name, patients=tuple(patients), vocabs=vocabs, titles=titles,
        ddi_pairs=kb.ddi_pairs, smiles={d: (s,) for d, s in sorted(kb.smiles.items())},
        profile_fields=PROFILE_FIELDS,
        meta={"source": "synthetic", "generator_version": GENERATOR_VERSION, "seed": seed,
              "n_patients": n_patients})


@dataclass(frozen=True)
class SyntheticParams:
    n_patients: int = 6000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_patients < 10:
            raise ValueError("n_patients must be >= 10")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")


def load_built_in(card: DatasetCard, data_dir: Path | None, overrides: dict[str, str], step: Callable[[str], None],
                  params_class: type, make: Callable[[Any], DatasetBundle]) -> DatasetBundle:
    """A generated cohort for its card: `data_dir` refused, the card's parameters with the `--prep-set`
    overrides parsed into `params_class`, the bundle `make(params)` with its summary in `meta`."""
    if data_dir is not None:
        raise UserError(f"dataset {card.name} is built in; --data-dir is not used (drop it)")
    params = apply_overrides(params_class, overrides, owner=f"dataset {card.name}", base=card.params)
    step("generate")
    bundle = make(params)
    return replace(bundle, meta={**bundle.meta, "summary": bundle_summary(bundle)})


def load_synthetic(card: DatasetCard, *, data_dir: Path | None, resources: Path | None,
                   overrides: dict[str, str], cache_dir: Path | None = None,
                   step: Callable[[str], None] = lambda _: None,
                   allow_modified_resources: bool = False) -> DatasetBundle:
    """The built-in cohort, version 1: generated in seconds, so it is not cached (and needs no resources)."""
    return load_built_in(card, data_dir, overrides, step, SyntheticParams,
                         lambda p: generate(n_patients=p.n_patients, seed=p.seed, name=card.name))
