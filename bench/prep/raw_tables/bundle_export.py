"""An existing cohort (a DatasetBundle, e.g. the built-in synthetic one) written as raw MIMIC-IV v2.2 tables,
so that a peer toolkit can be run on exactly the patients this harness evaluates (docs/datasets.md).

One visit is one admission (hadm_id = the visit's admission_id, subject_id = the patient id), admit times
increase within a patient; diagnosis and procedure codes are written in visit order (seq_num 1, 2, ...) with
their ICD version (`9:4019` -> 4019 / 9; a bare code is ICD-9); each drug class is one prescription row whose
NDC maps back to that class (bench.prep.raw_tables.ndc_choice). Profile fields that MIMIC-IV has are written
verbatim (`ethnicity` as `race`); everything the bundle does not know (ages, dates, providers, ...) is drawn
from a fixed seed, plausibly. Visit tags cannot be written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from bench.data import DatasetBundle, Visit
from bench.errors import UserError
from bench.prep.raw_tables.categories import (M4_INSURANCE, M4_LANGUAGE, M4_MARITAL, M4_RACE, M4_ADMISSION_TYPE,
                                              M4_YEAR_GROUPS)
from bench.prep.raw_tables.cohort import _provider_ids, stay_times
from bench.prep.raw_tables.generator import TableOutput, _check_out
from bench.prep.raw_tables.gzip_csv import write_tables
from bench.prep.raw_tables.helpers import _choice, _date, _datetime, _minute, _rank_in_group, _year_start
from bench.prep.raw_tables.ndc_choice import NdcChoice, choose_ndcs, rxcui_classes
from bench.prep.raw_tables.schema import MIMIC4_COLUMNS, MIMIC4_ICU_COLUMNS

SEED = 0  # the drawn columns are fixed: the same bundle gives the same files
# profile field -> admissions column, and the category values drawn where the bundle has no such field
PROFILE_COLUMNS = {"insurance": "insurance", "language": "language", "marital_status": "marital_status",
                   "race": "race", "ethnicity": "race", "admission_type": "admission_type"}
DRAWN = {"insurance": M4_INSURANCE, "language": M4_LANGUAGE, "marital_status": M4_MARITAL, "race": M4_RACE,
         "admission_type": M4_ADMISSION_TYPE}
ICUSTAYS_SCHEMA = {"subject_id": pl.Int64, "hadm_id": pl.Int64, "stay_id": pl.Int64, "first_careunit": pl.String,
                   "last_careunit": pl.String, "intime": pl.Datetime("ms"), "outtime": pl.Datetime("ms"),
                   "los": pl.Float64}
NO_TEXT = ("formulary_drug_cd", "gsn", "prod_strength", "form_rx", "dose_val_rx", "dose_unit_rx", "form_val_disp",
           "form_unit_disp", "route")


@dataclass(frozen=True)
class ExportResult:
    dataset: str
    out: Path
    resources: Path                   # the drug-knowledge folder the NDCs were chosen from
    tables: tuple[TableOutput, ...]
    ndc: NdcChoice
    dropped_classes: tuple[str, ...]  # drug classes left out (no NDC maps back to them)
    dropped_rows: int                 # drug rows (visit, class) left out
    visits_without_drugs: int         # visits whose every drug was left out
    seconds: float


def split_token(token: str) -> tuple[str, int]:
    """(code, ICD version) of a bundle token: `9:4019` -> ("4019", 9), `10:I10` -> ("I10", 10), `4019` -> ("4019", 9)."""
    version, sep, code = token.partition(":")
    if sep and version in ("9", "10"):
        return code, int(version)
    return token, 9


def _check_ids(bundle: DatasetBundle) -> None:
    """subject_id and hadm_id must be positive and unique, or the MIMIC tables cannot tell patients apart."""
    seen_patients: set[int] = set()
    seen_visits: set[int] = set()
    for patient in bundle.patients:
        if not isinstance(patient.id, int) or patient.id < 1 or patient.id in seen_patients:
            raise UserError(f"dataset {bundle.name}: patient id {patient.id!r} is not a unique integer >= 1 "
                            "(needed as subject_id)")
        seen_patients.add(patient.id)
        for visit in patient.visits:
            aid = visit.admission_id
            if not isinstance(aid, int) or aid < 1 or aid in seen_visits:
                raise UserError(f"dataset {bundle.name}: admission_id {aid!r} (patient {patient.id}) is not a unique "
                                "integer >= 1 (needed as hadm_id)")
            seen_visits.add(aid)


def _profile_number(visits: tuple[Visit, ...], key: str) -> float | None:
    """The first visit's profile value `key` as a finite number, else None."""
    text = visits[0].profile.get(key, "") if visits else ""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _patients(bundle: DatasetBundle, rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray]:
    """The patients table (gender and age from the profile where it has them) and each patient's anchor-year start."""
    n = len(bundle.patients)
    gender = np.where(rng.random(n) < 0.48, "M", "F").astype(object)
    age = np.clip(np.round(rng.normal(64, 16, n)), 18, 91)
    years = rng.integers(2110, 2209, n)
    icd9_group = rng.integers(0, 2, n)  # ICD-9 codes were coded before 2015-10: 2008 - 2010 or 2011 - 2013
    group = np.empty(n, dtype=np.int64)
    for i, patient in enumerate(bundle.patients):
        if patient.visits and patient.visits[0].profile.get("gender") in ("F", "M"):
            gender[i] = patient.visits[0].profile["gender"]
        stated = _profile_number(patient.visits, "age")
        if stated is not None:
            age[i] = np.clip(round(stated), 0, 91)
        icd10 = any(split_token(t)[1] == 10 for v in patient.visits for t in (*v.diagnoses, *v.procedures))
        group[i] = len(M4_YEAR_GROUPS) - 1 if icd10 else icd9_group[i]
    frame = pl.DataFrame({
        "subject_id": np.array([p.id for p in bundle.patients], dtype=np.int64),
        "gender": pl.Series(gender.tolist(), dtype=pl.String),
        "anchor_age": age.astype(np.int64),
        "anchor_year": years.astype(np.int64),
        "anchor_year_group": pl.Series([M4_YEAR_GROUPS[g][0] for g in group], dtype=pl.String),
        "dod": _date(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)),
    })
    return frame, _year_start(years)


def _admissions(bundle: DatasetBundle, year_start: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    visits = [(p.id, v) for p in bundle.patients for v in p.visits]
    n = len(visits)
    admit, disch = stay_times(rng, year_start, np.array([len(p.visits) for p in bundle.patients], dtype=np.int64))
    columns: dict[str, list[str | None]] = {}
    for column, values in DRAWN.items():
        drawn = _choice(rng, values, n).to_list()
        keys = [k for k, c in PROFILE_COLUMNS.items() if c == column]
        columns[column] = [next((v.profile[k] or None for k in keys if k in v.profile), drawn[i])
                           for i, (_, v) in enumerate(visits)]
    via_ed = np.array(["EMER" in (t or "") for t in columns["admission_type"]], dtype=bool)
    providers = _provider_ids(rng, max(50, n // 20))
    edreg = admit - _minute(rng.uniform(1800, 12 * 3600, n))
    edout = admit + _minute(rng.uniform(0, 3600, n))
    never = np.ones(n, dtype=bool)
    return pl.DataFrame({
        "subject_id": np.array([pid for pid, _ in visits], dtype=np.int64),
        "hadm_id": np.array([v.admission_id for _, v in visits], dtype=np.int64),
        "admittime": _datetime(admit),
        "dischtime": _datetime(disch),
        "deathtime": _datetime(disch, never),
        "admission_type": pl.Series(columns["admission_type"], dtype=pl.String),
        "admit_provider_id": providers.gather(rng.integers(0, len(providers), n)),
        "admission_location": pl.Series(np.where(via_ed, "EMERGENCY ROOM", "PHYSICIAN REFERRAL").tolist(),
                                        dtype=pl.String),
        "discharge_location": pl.Series(["HOME"] * n, dtype=pl.String),
        **{c: pl.Series(columns[c], dtype=pl.String) for c in ("insurance", "language", "marital_status", "race")},
        "edregtime": _datetime(edreg, ~via_ed),
        "edouttime": _datetime(edout, ~via_ed),
        "hospital_expire_flag": np.zeros(n, dtype=np.int64),
    })


def _codes(bundle: DatasetBundle, kind: str, admissions: pl.DataFrame) -> pl.DataFrame:
    """diagnoses_icd / procedures_icd: one row per code in visit order; procedures are charted on the admit day."""
    rows = [(p.id, v.admission_id, seq, *split_token(token)) for p in bundle.patients for v in p.visits
            for seq, token in enumerate(v.codes(kind), start=1)]
    frame = pl.DataFrame(rows, schema={"subject_id": pl.Int64, "hadm_id": pl.Int64, "seq_num": pl.Int64,
                                       "icd_code": pl.String, "icd_version": pl.Int64}, orient="row")
    if kind == "procedure":
        admit_day = admissions.select("hadm_id", pl.col("admittime").dt.date().alias("chartdate"))
        frame = frame.join(admit_day, on="hadm_id", how="left", maintain_order="left")
    return frame


def _drug_name(bundle: DatasetBundle, atc3: str) -> str:
    title = bundle.titles.get("drug", {}).get(atc3) or atc3
    return title[:1].upper() + title[1:]


def _prescriptions(bundle: DatasetBundle, ndc_of: Mapping[str, str], admissions: pl.DataFrame,
                   rng: np.random.Generator) -> pl.DataFrame:
    """One row per (visit, drug class with an NDC), given from an hour after admission until discharge."""
    rows = [(p.id, v.admission_id, ndc_of[d], _drug_name(bundle, d)) for p in bundle.patients for v in p.visits
            for d in v.drugs if d in ndc_of]
    frame = pl.DataFrame(rows, schema={"subject_id": pl.Int64, "hadm_id": pl.Int64, "ndc": pl.String,
                                       "drug": pl.String}, orient="row")
    stays = admissions.select("hadm_id", "admittime", "dischtime", pl.col("admit_provider_id").alias("order_provider_id"))
    frame = frame.join(stays, on="hadm_id", how="left", maintain_order="left")
    frame = frame.with_columns(
        pl.Series("pharmacy_id", int(rng.integers(1_000_000, 2_000_000)) + np.arange(frame.height, dtype=np.int64)),
        pl.Series("poe_seq", _rank_in_group(frame["subject_id"].to_numpy()) + 1, dtype=pl.Int64))
    hour = pl.duration(hours=1)
    return frame.with_columns(
        pl.format("{}-{}", pl.col("subject_id"), pl.col("poe_seq")).alias("poe_id"),
        pl.min_horizontal(pl.col("admittime") + hour, pl.col("dischtime")).alias("starttime"),
        pl.col("dischtime").alias("stoptime"),
        pl.lit("MAIN").alias("drug_type"),
        *[pl.lit(None, dtype=pl.String).alias(c) for c in NO_TEXT],
        pl.lit(None, dtype=pl.Float64).alias("doses_per_24_hrs"),
    ).select(MIMIC4_COLUMNS["prescriptions"])


def _titles(bundle: DatasetBundle, kind: str) -> pl.DataFrame:
    """d_icd_diagnoses / d_icd_procedures: the bundle's titles of the codes it uses."""
    titles = bundle.titles.get(kind, {})
    tokens = sorted({t for p in bundle.patients for v in p.visits for t in v.codes(kind)})
    rows = sorted((split_token(t)[1], split_token(t)[0], titles[t]) for t in tokens if titles.get(t))
    return pl.DataFrame([(code, version, title) for version, code, title in rows],
                        schema={"icd_code": pl.String, "icd_version": pl.Int64, "long_title": pl.String},
                        orient="row")


def export_frames(bundle: DatasetBundle, ndc_of: Mapping[str, str]) -> dict[str, pl.DataFrame]:
    """Every table, by name (MIMIC4_COLUMNS, then `icustays`, header only), in the MIMIC-IV column order.
    Drug classes missing from `ndc_of` are left out."""
    _check_ids(bundle)
    rng = np.random.default_rng(SEED)
    patients, year_start = _patients(bundle, rng)
    admissions = _admissions(bundle, year_start, rng)
    frames = {"patients": patients, "admissions": admissions,
              "diagnoses_icd": _codes(bundle, "diagnosis", admissions),
              "procedures_icd": _codes(bundle, "procedure", admissions),
              "prescriptions": _prescriptions(bundle, ndc_of, admissions, rng),
              "d_icd_diagnoses": _titles(bundle, "diagnosis"), "d_icd_procedures": _titles(bundle, "procedure"),
              "icustays": pl.DataFrame(schema=ICUSTAYS_SCHEMA)}
    columns = {**MIMIC4_COLUMNS, **MIMIC4_ICU_COLUMNS}
    return {name: frame.select(columns[name]) for name, frame in frames.items()}


def export_bundle(bundle: DatasetBundle, out: Path, choice: NdcChoice, *, drop_unmapped: bool,
                  resources: Path) -> ExportResult:
    """Write `bundle` as MIMIC-IV tables into `out` (hosp/*.csv.gz, icu/icustays.csv.gz). Drug classes without an
    NDC (choice.missing) are a UserError naming them, unless `drop_unmapped`: then their rows are left out."""
    began = time.perf_counter()
    out = Path(out)
    used = {d for p in bundle.patients for v in p.visits for d in v.drugs}
    missing = sorted(used - set(choice.ndc))
    if missing and not drop_unmapped:
        raise UserError(f"dataset {bundle.name}: no NDC in {resources} maps back to drug class"
                        f"{'es' if len(missing) > 1 else ''} {', '.join(missing)}; pass --drop-unmapped-drugs to "
                        "leave them out")
    _check_out("mimic4", out)
    frames = export_frames(bundle, choice.ndc)
    paths = {name: f"hosp/{name}.csv.gz" for name in MIMIC4_COLUMNS} | {"icustays": "icu/icustays.csv.gz"}
    tables = write_tables(out, {name: (paths[name], frame) for name, frame in frames.items()})
    dropped_rows = sum(d in missing for p in bundle.patients for v in p.visits for d in v.drugs)
    emptied = sum(bool(v.drugs) and all(d in missing for d in v.drugs) for p in bundle.patients for v in p.visits)
    return ExportResult(bundle.name, out, resources, tuple(TableOutput(name, path, rows, path.stat().st_size)
                                                for name, path, rows in tables),
                        choice, tuple(missing), dropped_rows, emptied, time.perf_counter() - began)


def export_dataset(dataset: str, out: Path, *, resources: Path | None, overrides: Mapping[str, str],
                   drop_unmapped: bool, allow_modified_resources: bool = False) -> ExportResult:
    """`bench synth-raw --dataset`: load the dataset card's bundle and write it (export_bundle). The drug-knowledge
    folder is checked against its pinned checksums first, as the MIMIC preprocessing does."""
    from bench.loading import load_bundle  # deferred: the registry reads the dataset cards
    from bench.prep.drug_knowledge import NDC2ATC4_ZIP, load_medkb, resources_dir
    from bench.prep.drug_knowledge_files import check_for_use

    folder = resources_dir(resources)
    check_for_use(folder, allow_modified_resources)
    bundle = load_bundle(dataset, resources=folder, overrides=dict(overrides),
                         allow_modified_resources=allow_modified_resources)
    kb = load_medkb(folder)
    used = {d for p in bundle.patients for v in p.visits for d in v.drugs}
    choice = choose_ndcs(used, kb, rxcui_classes(folder / NDC2ATC4_ZIP))
    return export_bundle(bundle, out, choice, drop_unmapped=drop_unmapped, resources=folder)
