"""Build a dataset bundle from raw MIMIC-III / MIMIC-IV tables (docs/datasets.md#preprocessing).

Steps, each counted in the summary: read admissions, diagnoses, procedures and prescriptions
(polars, streaming, every column as text); NDC -> RXCUI -> ATC4 -> ATC3 (unmapped and `0`/empty NDCs
dropped and counted); the papers' vocabulary filters (top diagnoses / procedures / ATC3, optionally
ATC3 without SMILES); the visit inner join (a visit needs a diagnosis, a procedure and a drug);
`min_visits`; an optional seeded patient subsample. MIMIC-IV codes keep their ICD version
(`9:4019`, `10:I10`). The result is cached, keyed by the input files' checksums and every parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from bench.prep.bundle_store import cache_key, cached_bundle, store_bundle
from bench.prep.titles import REPLACEMENT_CHAR, read_d_icd, titles_for
from bench.config import apply_overrides
from bench.data import DatasetBundle, Patient, Visit, build_vocabs, group_visits
from bench.prep.data_fetch import default_data_dir
from bench.errors import UserError
from bench.prep.ddi_nodes import edge_classes
from bench.prep.drug_knowledge import MedKB, load_medkb, resources_dir
from bench.io import file_sha256
from bench.prep.mimic_tables import (RawTable, collect, detect_release, find_table, ndc_needs_padding,
                                normalise_ndc)
from bench.registry import DatasetCard, dataset_cards
from bench.prep.drug_knowledge_files import check_for_use
from bench.prep.summary import bundle_summary

PREPARE_VERSION = 4  # part of the cache key: bump when the output (bundle or counts) changes


@dataclass(frozen=True)
class MimicParams:
    """Preprocessing parameters; defaults are the papers' (docs/datasets.md#options-and-defaults). 0 = no limit."""

    top_diagnoses: int = 2000
    top_procedures: int = 0          # MIMIC-III papers: unfiltered; MIMIC-IV (LEADER): 1000
    top_drugs: int = 300
    require_smiles: bool = True      # SafeDrug/MoleRec/LEADER drop ATC3 classes without SMILES
    min_visits: int = 1              # the papers used 2; LEADER's point is keeping single-visit patients
    subsample: float = 1.0           # fraction of patients kept (LEADER: 0.15 of MIMIC-IV, seed 42)
    subsample_seed: int = 42
    titles: Literal["short", "long"] = "long"  # MIMIC-IV has long titles only

    def __post_init__(self) -> None:
        if min(self.top_diagnoses, self.top_procedures, self.top_drugs) < 0:
            raise ValueError("top_* must be >= 0 (0 keeps every code)")
        if self.min_visits < 1:
            raise ValueError("min_visits must be >= 1")
        if not 0.0 < self.subsample <= 1.0:
            raise ValueError("subsample must be in (0, 1]")
        if self.subsample_seed < 0:
            raise ValueError("subsample_seed must be >= 0")


@dataclass(frozen=True)
class FormatSpec:
    """Table and column names of one MIMIC release (lower case; files may use either case)."""

    subdir: str | None
    admissions: str
    diagnoses: str
    procedures: str
    prescriptions: str
    d_diagnoses: str
    d_procedures: str
    code_column: str
    version_column: str | None
    profile_fields: tuple[str, ...]


FORMATS = {
    "mimic3": FormatSpec(None, "ADMISSIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS",
                         "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES", "icd9_code", None,
                         ("insurance", "language", "religion", "marital_status", "ethnicity")),
    "mimic4": FormatSpec("hosp", "admissions", "diagnoses_icd", "procedures_icd", "prescriptions",
                         "d_icd_diagnoses", "d_icd_procedures", "icd_code", "icd_version",
                         ("insurance", "language", "admission_type", "marital_status", "race")),
}


def _int_id(name: str) -> pl.Expr:
    """An id column as Int64; `123.0` (an integer column with a gap, written by pandas) reads as 123;
    anything else that is not an integer becomes null (the row is dropped and counted)."""
    return pl.col(name).str.strip_chars().str.replace(r"\.0+$", "").cast(pl.Int64, strict=False)


ID = _int_id("hadm_id")


def _table_folder(data_dir: Path, spec: FormatSpec) -> Path:
    if spec.subdir and (data_dir / spec.subdir).is_dir():
        return data_dir / spec.subdir
    return data_dir


def _read_admissions(table: RawTable, spec: FormatSpec, counts: dict[str, Any], warnings: list[str]) -> pl.DataFrame:
    columns = ["subject_id", "hadm_id", "admittime", *spec.profile_fields]
    frame = collect(table.scan(columns).with_columns(_int_id("subject_id"), ID), table.path)
    counts["admissions_read"] = frame.height
    counts["patients_read"] = frame["subject_id"].drop_nulls().n_unique()
    _require_rows(table, frame.height, "admission")
    frame = frame.drop_nulls(["subject_id", "hadm_id"])
    # an hadm_id under two patients: the code tables cannot tell whose codes are whose, so both go
    shared = frame.group_by("hadm_id").agg(pl.col("subject_id").n_unique().alias("n")).filter(pl.col("n") > 1)
    counts["admissions_hadm_id_reused"] = shared.height
    if shared.height:
        frame = frame.filter(~pl.col("hadm_id").is_in(shared["hadm_id"].implode()))
        warnings.append(f"{table.path}: {shared.height:,} hadm_id(s) under more than one subject_id (e.g. "
                        f"{shared['hadm_id'].min()}); their admissions are dropped (admissions_hadm_id_reused)")
    frame = frame.unique("hadm_id", keep="first", maintain_order=True)
    counts["admissions_valid"] = frame.height
    return frame.with_columns([pl.col(f).fill_null("").str.strip_chars() for f in spec.profile_fields])


def _require_rows(table: RawTable, rows: int, what: str) -> None:
    if rows == 0:
        raise UserError(f"{table.path}: no rows (header only); expected {what} rows")


def _read_codes(table: RawTable, spec: FormatSpec, kind: str, counts: dict[str, Any],
                warnings: list[str]) -> pl.DataFrame:
    """[hadm_id, code] unique per admission, in seq_num order; tokens `version:code` for MIMIC-IV, where
    rows of an ICD version other than 9 or 10 are dropped and counted."""
    columns = ["hadm_id", spec.code_column] + ([spec.version_column] if spec.version_column else [])
    has_seq = "seq_num" in table.columns
    code = pl.col(spec.code_column).fill_null("").str.strip_chars()
    if spec.version_column:  # `9`, `10` (also `10.0`, a float export); a missing version makes the row unusable
        code = pl.col(spec.version_column).fill_null("").str.strip_chars().str.replace(r"\.0+$", "") + ":" + code
    frame = collect(table.scan(columns + (["seq_num"] if has_seq else [])).select(
        ID, code.alias("code"),
        (pl.col("seq_num").cast(pl.Int64, strict=False) if has_seq else pl.lit(0)).alias("seq")), table.path)
    counts[f"{kind}_rows"] = frame.height
    _require_rows(table, frame.height, kind)
    empty = pl.col("code").str.ends_with(":") | pl.col("code").str.starts_with(":") | (pl.col("code") == "")
    frame = frame.filter(pl.col("hadm_id").is_not_null() & ~empty)
    counts[f"{kind}_rows_unusable"] = counts[f"{kind}_rows"] - frame.height
    if spec.version_column:
        known = pl.col("code").str.starts_with("9:") | pl.col("code").str.starts_with("10:")
        unknown = frame.filter(~known)
        counts[f"{kind}_rows_icd_version_unknown"] = unknown.height
        if unknown.height:
            frame = frame.filter(known)
            versions = ", ".join(unknown["code"].str.split(":").list.first().unique().sort().head(5).to_list())
            warnings.append(f"{table.path}: {unknown.height:,} row(s) with {spec.version_column} other than 9 or 10 "
                            f"({versions}) dropped ({kind}_rows_icd_version_unknown)")
    frame = frame.sort(["hadm_id", "seq"], nulls_last=True, maintain_order=True).unique(["hadm_id", "code"], keep="first",
                                                                    maintain_order=True)
    counts[f"{kind}_duplicate_rows"] = (counts[f"{kind}_rows"] - counts[f"{kind}_rows_unusable"]
                                        - counts.get(f"{kind}_rows_icd_version_unknown", 0) - frame.height)
    return frame.select("hadm_id", "code")


def _read_drugs(table: RawTable, kb: MedKB, counts: dict[str, Any]) -> pl.DataFrame:
    """[hadm_id, atc3] unique per admission, plus NDC mapping coverage in `counts`."""
    per_ndc = collect(table.scan(["hadm_id", "ndc"]).select(
        ID, normalise_ndc(pl.col("ndc")).alias("ndc"), ndc_needs_padding(pl.col("ndc")).alias("padded"),
    ).group_by("hadm_id", "ndc").agg(pl.len().alias("rows"), pl.col("padded").sum()), table.path)
    counts["prescription_rows"] = int(per_ndc["rows"].sum())
    _require_rows(table, counts["prescription_rows"], "prescription")
    # every row is counted once: without an admission id, with NDC 0/empty, or in ndc_rows below
    counts["prescription_rows_unusable"] = int(per_ndc.filter(pl.col("hadm_id").is_null())["rows"].sum())
    per_ndc = per_ndc.filter(pl.col("hadm_id").is_not_null())
    counts["ndc_zero_or_empty_rows"] = int(per_ndc.filter(pl.col("ndc").is_in(["", "0"]))["rows"].sum())
    counts["ndc_padded_rows"] = int(per_ndc["padded"].sum())
    per_ndc = per_ndc.filter(~pl.col("ndc").is_in(["", "0"]))
    mapping = pl.DataFrame(list(kb.ndc_to_atc3().items()), schema={"ndc": pl.String, "atc3": pl.String},
                           orient="row")
    mapped = per_ndc.join(mapping, on="ndc", how="left")
    ndcs = mapped.group_by("ndc").agg(pl.col("rows").sum(), pl.col("atc3").first())
    counts["ndc_distinct"] = ndcs.height
    counts["ndc_distinct_mapped"] = int(ndcs["atc3"].is_not_null().sum())
    counts["ndc_rows"] = int(ndcs["rows"].sum())
    counts["ndc_rows_mapped"] = int(ndcs.filter(pl.col("atc3").is_not_null())["rows"].sum())
    return mapped.drop_nulls("atc3").select("hadm_id", pl.col("atc3").alias("code")).unique(maintain_order=True) \
        .sort("hadm_id", maintain_order=True)


def _top(frame: pl.DataFrame, n: int) -> pl.Series:
    """The n codes in the most admissions (ties by code, so the choice is deterministic); 0 = all."""
    ranked = frame.group_by("code").len().sort(["len", "code"], descending=[True, False])
    return (ranked.head(n) if n else ranked)["code"]


def _assemble(admissions: pl.DataFrame, dx: pl.DataFrame, px: pl.DataFrame, rx: pl.DataFrame,
              params: MimicParams, spec: FormatSpec, counts: dict[str, Any]) -> list[Patient]:
    """Inner-join the three code tables on admission, apply min_visits and the subsample."""
    lists = [frame.group_by("hadm_id", maintain_order=True).agg(pl.col("code").alias(name))
             for frame, name in ((dx, "diagnoses"), (px, "procedures"), (rx.sort(["hadm_id", "code"]), "drugs"))]
    for frame, name in zip(lists, ("diagnosis", "procedure", "mapped drug")):
        counts[f"admissions with a {name}".replace(" ", "_")] = frame.height
    visits = admissions.join(lists[0], on="hadm_id").join(lists[1], on="hadm_id").join(lists[2], on="hadm_id")
    counts["visits_after_join"] = visits.height
    per_patient = visits.group_by("subject_id").len()
    keep = per_patient.filter(pl.col("len") >= params.min_visits)["subject_id"].sort()
    counts["patients_after_min_visits"] = keep.len()
    if params.subsample < 1.0:
        rng = np.random.default_rng(params.subsample_seed)
        chosen = rng.choice(keep.len(), size=max(1, int(round(params.subsample * keep.len()))), replace=False)
        keep = keep.gather(np.sort(chosen))
        counts["patients_after_subsample"] = keep.len()
    visits = visits.filter(pl.col("subject_id").is_in(keep.implode())).sort(["subject_id", "admittime", "hadm_id"])
    return group_visits((row["subject_id"], Visit(row["hadm_id"], tuple(row["diagnoses"]), tuple(row["procedures"]),
                                                  tuple(row["drugs"]), {f: row[f] for f in spec.profile_fields}))
                        for row in visits.iter_rows(named=True))


def _check_release(data_dir: Path, fmt: str) -> None:
    """A UserError naming the datasets to use when `data_dir` holds the other MIMIC release."""
    found = detect_release(data_dir)
    if found is None or found[0] == fmt:
        return
    release, path, column = found
    names = [card.name for card in dataset_cards().values() if card.format == release]
    label = {"mimic3": "MIMIC-III", "mimic4": "MIMIC-IV"}[release]
    raise UserError(f"{data_dir} looks like {label} ({path.relative_to(data_dir)} with {column}); "
                    f"use --dataset {' or '.join(names)}")


def prepare_mimic(name: str, fmt: str, data_dir: Path, kb: MedKB, params: MimicParams,
                  step: Callable[[str], None] = lambda _: None, *,
                  digests: dict[Path, str]) -> DatasetBundle:
    """Read the raw tables of `data_dir` and build the bundle (no caching here). `digests` are the
    sha256 of every input file, hashed once for the cache key; meta["inputs"] records, per table, the
    file that was read and its sha256; meta["warnings"] what was dropped for being implausible."""
    spec = FORMATS[fmt]
    _check_release(data_dir, fmt)
    folder = _table_folder(data_dir, spec)
    code_cols = ["hadm_id", spec.code_column] + ([spec.version_column] if spec.version_column else [])
    tables = {
        "admissions": find_table(folder, spec.admissions, ["subject_id", "hadm_id", "admittime", *spec.profile_fields]),
        "diagnoses": find_table(folder, spec.diagnoses, code_cols),
        "procedures": find_table(folder, spec.procedures, code_cols),
        "prescriptions": find_table(folder, spec.prescriptions, ["hadm_id", "ndc"]),
    }
    title_column = "short_title" if params.titles == "short" and fmt == "mimic3" else "long_title"
    d_tables = {kind: find_table(folder, stem, [spec.code_column, title_column] + ([spec.version_column] if spec.version_column else []))
                for kind, stem in (("diagnosis", spec.d_diagnoses), ("procedure", spec.d_procedures))}
    counts: dict[str, Any] = {}
    warnings: list[str] = []
    step("admissions")
    admissions = _read_admissions(tables["admissions"], spec, counts, warnings)
    step("diagnoses")
    dx = _read_codes(tables["diagnoses"], spec, "diagnosis", counts, warnings)
    step("procedures")
    px = _read_codes(tables["procedures"], spec, "procedure", counts, warnings)
    step("prescriptions")
    rx = _read_drugs(tables["prescriptions"], kb, counts)
    step("vocabulary filters and visit join")
    dx = dx.filter(pl.col("code").is_in(_top(dx, params.top_diagnoses).implode()))
    px = px.filter(pl.col("code").is_in(_top(px, params.top_procedures).implode()))
    rx = rx.filter(pl.col("code").is_in(_top(rx, params.top_drugs).implode()))
    if params.require_smiles:
        counts["atc3_dropped_without_smiles"] = rx.filter(~pl.col("code").is_in(list(kb.smiles)))["code"].n_unique()
        rx = rx.filter(pl.col("code").is_in(list(kb.smiles)))
    patients = _assemble(admissions, dx, px, rx, params, spec, counts)
    if not patients:
        raise UserError(f"{data_dir}: no visit has a diagnosis, a procedure and a mapped drug after filtering")
    step("titles")
    vocabs = build_vocabs(patients)
    titles: dict[str, dict[str, str]] = {}
    for kind, sg in (("diagnosis", "DX"), ("procedure", "SG")):
        table_titles = read_d_icd(d_tables[kind], spec.code_column, title_column, spec.version_column)
        titles[kind], counts[f"{kind}_codes_without_title"] = titles_for(list(vocabs[kind].tokens), table_titles, sg, params.titles)
        counts[f"{kind}_titles_with_undecodable_bytes"] = sum(REPLACEMENT_CHAR in t for t in titles[kind].values())
    titles["drug"] = {c: kb.atc_names.get(c, c).lower() for c in vocabs["drug"].tokens}
    drugs = set(vocabs["drug"].tokens)
    bundle = DatasetBundle(
        name=name, patients=tuple(patients), vocabs=vocabs, titles=titles,
        ddi_pairs=tuple(p for p in kb.ddi_pairs if p[0] in drugs and p[1] in drugs),
        ddi_nodes=frozenset(drugs & (kb.ddi_nodes | edge_classes(kb.ddi_pairs))),
        smiles={c: kb.smiles[c] for c in sorted(drugs) if c in kb.smiles},
        profile_fields=spec.profile_fields,
        meta={"source": fmt, "data_dir": str(data_dir), "resources": str(kb.folder), "params": asdict(params),
              "ddi_nodes_source": kb.ddi_nodes_source,
              "prepare_version": PREPARE_VERSION, "counts": counts, "warnings": warnings,
              "inputs": _inputs({**tables, **{f"d_{k}": t for k, t in d_tables.items()}}, data_dir, digests)})
    return replace(bundle, meta={**bundle.meta, "summary": bundle_summary(bundle)})


def _inputs(tables: dict[str, RawTable], data_dir: Path, digests: dict[Path, str]) -> dict[str, dict[str, str]]:
    """{table: {"file": path under data_dir, "sha256": ...}}: which file was read for every table."""
    return {kind: {"file": str(table.path.relative_to(data_dir)),
                   "sha256": digests[table.path]} for kind, table in tables.items()}


def load_mimic(card: DatasetCard, *, data_dir: Path | None, resources: Path | None, overrides: dict[str, str],
               cache_dir: Path | None = None, step: Callable[[str], None] = lambda _: None,
               allow_modified_resources: bool = False) -> DatasetBundle:
    """The card's dataset from `data_dir`, from the cache when inputs and parameters are unchanged. The
    drug-knowledge files are checked against their pinned checksums first (a modified file is refused
    unless `allow_modified_resources`); meta["resources_check"] says what was found."""
    if data_dir is None:
        data_dir = default_data_dir(card)  # the demos: `bench data fetch`'s folder; otherwise a one-line error
    if not data_dir.is_dir():
        what = "is a file, not a folder" if data_dir.exists() else "no such folder"
        raise UserError(f"--data-dir {data_dir}: {what} (expected the folder of the raw tables)")
    params = apply_overrides(MimicParams, overrides, owner=f"dataset {card.name}", base=card.params)
    kb_dir = resources_dir(resources)
    kb_files = sorted(p for p in kb_dir.iterdir() if p.is_file())
    kb_digests = {path: file_sha256(path) for path in kb_files}
    # refused before any table is read; run.json gets the folder and every file's sha256 (to repeat the run)
    checked = check_for_use(kb_dir, allow_modified_resources, {p.name: d for p, d in kb_digests.items()})
    spec = FORMATS[card.format]
    inputs = sorted(p for p in _table_folder(data_dir, spec).iterdir() if p.is_file() and p.name.lower().split(".")[0]
                    in {s.lower() for s in (spec.admissions, spec.diagnoses, spec.procedures, spec.prescriptions,
                                            spec.d_diagnoses, spec.d_procedures)})
    digests = {**{path: file_sha256(path) for path in inputs}, **kb_digests}
    inputs += kb_files
    key = cache_key(card.name, {"format": card.format, "version": PREPARE_VERSION, **asdict(params)}, inputs, digests)
    bundle = cached_bundle(key, cache_dir)
    if bundle is None:
        bundle = prepare_mimic(card.name, card.format, data_dir, load_medkb(kb_dir), params, step, digests=digests)
        store_bundle(bundle, key, cache_dir)
    # the cache is keyed by file names and checksums, not paths: the folders are this load's
    return replace(bundle, meta={**bundle.meta, "data_dir": str(data_dir), "resources": str(kb_dir),
                                 "resources_check": checked})
