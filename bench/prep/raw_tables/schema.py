"""The output formats: table names, exact column lists and file paths of MIMIC-IV (`hosp/`) and MIMIC-III."""

from __future__ import annotations

from bench.errors import unknown_name

FORMATS = ("mimic3", "mimic4")

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
# icu/ holds more tables; `icustays` is the one some toolkits insist on finding (even empty)
MIMIC4_ICU_COLUMNS: dict[str, tuple[str, ...]] = {
    "icustays": ("subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime", "outtime", "los"),
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
