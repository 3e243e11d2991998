"""Every table of one format, assembled from the cohort, the vocabularies and the catalogue and written
chunk by chunk: patients and admissions first, then the d_icd dictionaries, then the child tables."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from bench.prep.raw_tables.catalogue import _Catalogue
from bench.prep.raw_tables.codes import _Vocab, icd_code_lists
from bench.prep.raw_tables.cohort import (
    _Cohort,
    _mimic3_admissions,
    _mimic3_patients,
    _mimic4_admissions,
    _mimic4_patients,
    _provider_ids,
)
from bench.prep.raw_tables.events import _diagnoses, _prescriptions, _procedures
from bench.prep.raw_tables.gzip_csv import _GzipCsv, _Pipe
from bench.prep.raw_tables.helpers import _date, _datetime, _rank_in_group, _with_nulls
from bench.prep.raw_tables.rates import DAY

Progress = Callable[[int, int], None]


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
