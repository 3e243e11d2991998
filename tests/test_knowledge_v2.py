"""Version 2 of the synthetic cohort's knowledge table (datasets/synthetic/v2): rows appended to version 1's
files plus the long tail of diagnosis codes and the incidental codes. Checked against the same references as
version 1 (tests/test_knowledge.py): CMS v32 ICD-9 titles, WHO ATC names, RDKit SMILES, and the pinned
NDC -> ATC mapping of medkb."""

from __future__ import annotations

import csv
import gzip
import re
from collections import Counter
from pathlib import Path

from tests.conftest import requires_data
from tests.test_knowledge import COLUMNS, cms_titles, words

REPO_ROOT = Path(__file__).resolve().parents[1]
V1 = REPO_ROOT / "datasets" / "synthetic" / "knowledge"
V2 = REPO_ROOT / "datasets" / "synthetic" / "v2"

# Molecular formula of each representative drug (salt included where the drug is a salt); gentamicin is its
# C1a component.
FORMULAS = {
    "A03A": "C19H28BrNO3", "A07A": "C43H51N3O11", "A07E": "C7H7NO3", "A11C": "C27H44O", "A11G": "C6H8O6",
    "A16A": "C7H15NO3", "B05C": "ClNa", "C01E": "C10H13N5O4", "C03B": "C16H16ClN3O3S", "C04A": "C13H18N4O3",
    "D01A": "C22H17ClN2", "D06B": "C10H9AgN4O2S", "D07A": "C21H27FO6", "G03C": "C18H24O2", "H05B": "C22H22F3N",
    "J01A": "C22H24N2O8", "J01G": "C19H39N5O7", "J04A": "C6H7N3O", "L01X": "Cl2H6N2Pt", "L04A": "C17H20O6",
    "M02A": "C14H11Cl2NO2", "M03A": "C14H30Cl2N2O4", "N02C": "C14H21N3O2S", "N04B": "C9H11NO4",
    "N07A": "C12H19BrN2O2", "R01A": "C16H24N2O", "R05D": "C18H25NO", "S01A": "C8H10N2O3S",
    "S01E": "C13H24N4O3S",
}


def rows(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def both(name: str) -> list[dict[str, str]]:
    """Version 1's rows followed by version 2's, as the cohort generator reads them."""
    return rows(V1, name) + (rows(V2, name) if (V2 / name).exists() else [])


def element_counts(formula: str) -> Counter[str]:
    """'C2H6O' -> {'C': 2, 'H': 6, 'O': 1} (any element order)."""
    counts: Counter[str] = Counter()
    for element, number in re.findall(r"([A-Z][a-z]?)(\d*)", formula):
        counts[element] += int(number or 1)
    return counts


def test_element_counts_reads_any_order():
    assert element_counts("Cl2H6N2Pt") == element_counts("H6Cl2N2Pt") == Counter(Cl=2, H=6, N=2, Pt=1)
    assert element_counts("C6H8O6") != element_counts("C6H8O7")


def test_v2_atc3_classes_are_new_and_well_formed():
    new = rows(V2, "atc3.csv")
    with open(V2 / "atc3.csv", newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == ["atc3", "name", "drug", "smiles"]
    codes = [r["atc3"] for r in new]
    assert len(codes) == len(set(codes)) == 29 and all(re.fullmatch(r"[A-Z]\d\d[A-Z]", c) for c in codes)
    assert not set(codes) & {r["atc3"] for r in rows(V1, "atc3.csv")}
    assert set(codes) == set(FORMULAS)
    assert all(r["drug"] and r["smiles"] for r in new)


def test_v2_smiles_parse_and_have_the_drugs_formula():
    from rdkit import Chem, RDLogger
    from rdkit.Chem.rdMolDescriptors import CalcMolFormula

    RDLogger.DisableLog("rdApp.*")
    for r in rows(V2, "atc3.csv"):
        mol = Chem.MolFromSmiles(r["smiles"])
        assert mol is not None, r["atc3"]
        assert element_counts(CalcMolFormula(mol)) == element_counts(FORMULAS[r["atc3"]]), (r["atc3"], r["drug"])


# CIP labels of the stereocentres, in SMILES atom order, of drugs with a known configuration.
CIP = {"A16A": ["R"], "N04B": ["S"], "S01E": ["S"], "A11G": ["S", "R"],
       "J01A": ["R", "S", "S", "R", "S", "R"],  # doxycycline 6R,12aS,4S,4aR,5S,5aR
       "D07A": ["S", "S", "R", "S", "S", "S", "R", "S"]}  # triamcinolone 13S,11S,9R,8S,10S,14S,16R,17S


def test_v2_stereocentres_have_the_drugs_configuration():
    from rdkit import Chem
    from rdkit.Chem import rdCIPLabeler

    smiles = {r["atc3"]: r["smiles"] for r in rows(V2, "atc3.csv")}
    for atc3, labels in CIP.items():
        mol = Chem.MolFromSmiles(smiles[atc3])
        rdCIPLabeler.AssignCIPLabels(mol)
        assert [a.GetProp("_CIPCode") for a in mol.GetAtoms() if a.HasProp("_CIPCode")] == labels, atc3


def who_atc_index(folder: Path) -> dict[str, set[str]]:
    """ATC code -> its lower-case names (a few codes have two) in medkb's atc_coding.csv.gz."""
    names: dict[str, set[str]] = {}
    with gzip.open(folder / "atc_coding.csv.gz", "rt", encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            names.setdefault(r["atc_code"], set()).add(r["atc_name"].lower())
    return names


def test_v2_atc3_names_and_drugs_match_the_who_atc_index():
    index = who_atc_index(requires_data("medkb"))
    for r in rows(V2, "atc3.csv"):
        assert r["name"] in index.get(r["atc3"], set()), (r["atc3"], r["name"])
        # the drug (salt name allowed) is a level-5 substance of the class: "ascorbic acid (vit c)" counts
        # as "ascorbic acid", "suxamethonium" covers "suxamethonium chloride"
        members = {re.sub(r"\s*\(.*\)$", "", name) for code, found in index.items()
                   if len(code) == 7 and code.startswith(r["atc3"]) for name in found}
        assert any(r["drug"] == m or r["drug"].startswith(m + " ") for m in members), (r["atc3"], r["drug"])


def test_every_v2_atc3_class_has_an_ndc_in_the_pinned_mapping():
    from bench.prep.drug_knowledge import load_medkb

    mapped = set(load_medkb(requires_data("medkb")).ndc_to_atc3().values())
    missing = [r["atc3"] for r in rows(V2, "atc3.csv") if r["atc3"] not in mapped]
    assert not missing


# version 2 files with version 1's layout: their rows follow version 1's
APPENDED = {name: columns for name, columns in COLUMNS.items() if name != "ddi_pairs.csv"}


def test_appended_files_have_version_1_columns_and_load_with_it(tmp_path):
    from bench.prep.synthetic_cohort import load_knowledge

    for name, columns in APPENDED.items():
        with open(V2 / name, newline="", encoding="utf-8") as handle:
            assert next(csv.reader(handle)) == columns, name
        with open(tmp_path / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(both(name))
    (tmp_path / "ddi_pairs.csv").write_bytes((V1 / "ddi_pairs.csv").read_bytes())
    kb = load_knowledge(tmp_path)
    assert len(kb.conditions) == 55 + 18 and len(kb.drugs) == 69 + 29
    he = kb.conditions.index("hepatic_encephalopathy")
    assert kb.drug_p[he, kb.drugs.index("A07A")] == 0.9 and kb.persistent[he, kb.drugs.index("A07A")]
    assert kb.comorbidity[he, kb.conditions.index("liver_cirrhosis")] == 8


def test_v2_conditions_and_their_references_exist():
    names = [r["condition"] for r in both("conditions.csv")]
    assert len(names) == len(set(names)) and len(rows(V2, "conditions.csv")) == 18
    for r in rows(V2, "conditions.csv"):
        assert float(r["prevalence"]) > 0 and r["chronic"] in ("true", "false") and r["group"] and r["name"]
    known = set(names) | {"_background"}
    atc = {r["atc3"] for r in both("atc3.csv")}
    for name, column in [("condition_diagnoses.csv", "condition"), ("condition_procedures.csv", "condition"),
                         ("condition_drugs.csv", "condition"), ("comorbidities.csv", "condition_a"),
                         ("comorbidities.csv", "condition_b")]:
        assert {r[column] for r in rows(V2, name)} <= known, name
    assert {r["atc3"] for r in rows(V2, "condition_drugs.csv")} <= atc
    for folder in (V1, V2):  # a pair once per folder; v2 may override only v1's background odds
        drugs = rows(folder, "condition_drugs.csv")
        assert len({(r["condition"], r["atc3"]) for r in drugs}) == len(drugs)
    pairs = {(r["condition"], r["atc3"]) for r in rows(V1, "condition_drugs.csv")}
    assert {c for c, a in pairs & {(r["condition"], r["atc3"]) for r in rows(V2, "condition_drugs.csv")}} <= {"_background"}
    for r in rows(V2, "condition_drugs.csv"):
        assert 0 < float(r["probability"]) <= 1 and r["persistent"] in ("true", "false")
    # every new class is prescribed for some condition, except metolazone, the generator's second-line diuretic
    assert {r["atc3"] for r in rows(V2, "atc3.csv")} - {r["atc3"] for r in drugs} == {"C03B"}
    pairs = [frozenset((r["condition_a"], r["condition_b"])) for r in both("comorbidities.csv")]
    assert len(pairs) == len(set(pairs)) and all(len(p) == 2 for p in pairs)
    assert all(float(r["weight"]) > 0 for r in rows(V2, "comorbidities.csv"))
    procs = both("condition_procedures.csv")
    assert len({(r["condition"], r["icd9"]) for r in procs}) == len(procs)
    assert all(0 < float(r["probability"]) <= 1 for r in rows(V2, "condition_procedures.csv"))


def test_v2_condition_codes_have_cms_titles_and_a_rare_code_sharing_a_word():
    dx, sg = cms_titles("DX"), cms_titles("SG")
    for r in rows(V2, "condition_diagnoses.csv"):
        assert dx.get(r["icd9"]) == r["title"], r
    for r in rows(V2, "condition_procedures.csv"):
        assert sg.get(r["icd9"]) == r["title"], r
    mine = rows(V2, "condition_diagnoses.csv")
    assert {r["kind"] for r in mine} == {"common", "rare"}
    for condition in (r["condition"] for r in rows(V2, "conditions.csv")):
        common = [r["title"] for r in mine if r["condition"] == condition and r["kind"] == "common"]
        rare = [r["title"] for r in mine if r["condition"] == condition and r["kind"] == "rare"]
        assert 2 <= len(common) <= 4 and rare, condition
        shared = set().union(*(words(t) for t in common))
        assert any(words(t) & shared for t in rare), (condition, rare)


def diagnosis_code_owners() -> list[tuple[str, str]]:
    """(code, where) for every diagnosis code of versions 1 and 2: condition codes, tail, incidental."""
    owners = [(r["icd9"], f"condition {r['condition']}") for r in both("condition_diagnoses.csv")]
    if (V2 / "title_tail.csv").exists():
        owners += [(r["icd9"], f"tail {r['condition']}") for r in rows(V2, "title_tail.csv")]
    if (V2 / "incidental_diagnoses.csv").exists():
        owners += [(r["icd9"], "incidental") for r in rows(V2, "incidental_diagnoses.csv")]
    return owners


def test_a_diagnosis_code_is_used_once_across_all_files():
    seen = Counter(code for code, _ in diagnosis_code_owners())
    assert not [code for code, n in seen.items() if n > 1]


def test_incidental_procedures_are_cms_titled_new_and_weighted():
    with open(V2 / "incidental_procedures.csv", newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == ["icd9", "title", "weight"]
    incidental = rows(V2, "incidental_procedures.csv")
    sg = cms_titles("SG")
    codes = [r["icd9"] for r in incidental]
    assert 250 <= len(codes) <= 350 and len(codes) == len(set(codes))
    assert not set(codes) & {r["icd9"] for r in both("condition_procedures.csv")}
    for r in incidental:
        assert sg.get(r["icd9"]) == r["title"], r
        assert float(r["weight"]) > 0, r


# Words of titles that name a drug treatment: an incidental diagnosis must imply none.
DRUG_WORDS = ("long-term (current) use", "adverse effect", "poisoning", "transplant", "drug monitoring",
              "encounter for antineoplastic")


def test_incidental_diagnoses_are_cms_titled_weighted_and_imply_no_drug():
    with open(V2 / "incidental_diagnoses.csv", newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == ["icd9", "title", "weight"]
    incidental = rows(V2, "incidental_diagnoses.csv")
    dx = cms_titles("DX")
    assert 450 <= len(incidental) <= 550
    for r in incidental:
        assert dx.get(r["icd9"]) == r["title"], r
        assert float(r["weight"]) > 0, r
        assert not any(w in r["title"].lower() for w in DRUG_WORDS), r
        # adverse effects of drugs (E930-E949) and drug poisonings (960-979, E850-E858) imply a drug
        assert not re.fullmatch(r"E9[34]\d+|9[67]\d+|E85[0-8]\d*", r["icd9"]), r


# Titles that name something other than the condition itself: never a tail code.
NOT_THE_CONDITION = ("history of", "screening", "complicating pregnancy", "newborn", "family history")


def test_title_tail_codes_imply_a_known_condition_and_share_a_word_with_its_titles():
    with open(V2 / "title_tail.csv", newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == ["condition", "icd9", "title"]
    tail = rows(V2, "title_tail.csv")
    dx = cms_titles("DX")
    conditions = {r["condition"] for r in both("conditions.csv")}
    common: dict[str, set[str]] = {}
    for r in both("condition_diagnoses.csv"):
        if r["kind"] == "common":
            common.setdefault(r["condition"], set()).update(words(r["title"]))
    assert 700 <= len(tail) <= 1100
    assert max(Counter(r["condition"] for r in tail).values()) <= 40
    for r in tail:
        assert r["condition"] in conditions, r
        assert dx.get(r["icd9"]) == r["title"], r
        assert words(r["title"]) & common[r["condition"]], r
        assert not any(w in r["title"].lower() for w in NOT_THE_CONDITION), r
