"""The cohort: patients and admissions (small enough to build in one go), and their MIMIC-IV / MIMIC-III tables."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from bench.prep.raw_tables.categories import (
    ICD10_FROM,
    M3_ADMISSION_LOCATION,
    M3_ADMISSION_TYPE,
    M3_DIAGNOSIS,
    M3_DISCHARGE_LOCATION,
    M3_ETHNICITY,
    M3_INSURANCE,
    M3_LANGUAGE,
    M3_MARITAL,
    M3_RELIGION,
    M4_ADMISSION_LOCATION,
    M4_ADMISSION_TYPE,
    M4_DISCHARGE_LOCATION,
    M4_INSURANCE,
    M4_LANGUAGE,
    M4_MARITAL,
    M4_RACE,
    M4_YEAR_GROUP_WEIGHTS,
    M4_YEAR_GROUPS,
)
from bench.prep.raw_tables.helpers import _choice, _date, _datetime, _minute, _nb, _unique_ids, _year_start
from bench.prep.raw_tables.rates import (DAY, FULL_ADMISSIONS, FULL_PATIENTS, HOSPITAL_DEATH_RATE, SHARE_WITH_ADMISSION,
                                        YEAR)

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


def stay_times(rng: np.random.Generator, year_start: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(admit, disch) epoch seconds of every admission, patients' admissions consecutive: the first in the
    patient's anchor year (`year_start`, per patient), then a stay of ~3 days and a gap of ~8 months
    before the next; `k` admissions per patient. Admit times strictly increase within a patient."""
    n_adm = int(k.sum())
    adm_pat = np.repeat(np.arange(len(k)), k)
    los = np.clip(rng.lognormal(math.log(3.2 * DAY), 0.85, n_adm), 2 * 3600, 150 * DAY)
    gap = rng.exponential(240 * DAY, n_adm) + DAY
    step = los + gap
    before = np.cumsum(step) - step
    first = np.cumsum(k) - k
    admit = year_start[adm_pat] + rng.uniform(0, 365 * DAY, len(k))[adm_pat] + before - before[first[adm_pat]]
    admit = _minute(admit)
    return admit, admit + np.maximum(_minute(los), 3600)


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
    admit, disch = stay_times(rng, year_start, k)
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
