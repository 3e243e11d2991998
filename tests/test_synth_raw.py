"""`bench synth-raw`: raw MIMIC-III / MIMIC-IV tables in the real schemas, at a tiny scale."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.prep.drug_knowledge import read_ndc2rxcui
from bench.prep.raw_tables import generate
from tests.conftest import data_path

MEDKB = data_path("medkb")
MIMIC3_DEMO = data_path("mimic3-demo", files=("PATIENTS.csv",))
SCALE = 0.0005  # ~150 patients, ~215 admissions, ~8k prescription rows

MIMIC4 = {
    "patients": "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod",
    "admissions": "subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,admit_provider_id,"
                  "admission_location,discharge_location,insurance,language,marital_status,race,edregtime,"
                  "edouttime,hospital_expire_flag",
    "diagnoses_icd": "subject_id,hadm_id,seq_num,icd_code,icd_version",
    "procedures_icd": "subject_id,hadm_id,seq_num,chartdate,icd_code,icd_version",
    "prescriptions": "subject_id,hadm_id,pharmacy_id,poe_id,poe_seq,order_provider_id,starttime,stoptime,"
                     "drug_type,drug,formulary_drug_cd,gsn,ndc,prod_strength,form_rx,dose_val_rx,dose_unit_rx,"
                     "form_val_disp,form_unit_disp,doses_per_24_hrs,route",
    "d_icd_diagnoses": "icd_code,icd_version,long_title",
    "d_icd_procedures": "icd_code,icd_version,long_title",
}
MIMIC3_TABLES = ("PATIENTS", "ADMISSIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS",
                 "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES")

pytestmark = pytest.mark.needs_data("medkb")


def read(path: Path) -> pl.DataFrame:
    """Every column as text, as a careful loader reads MIMIC (NDCs and ICD codes keep their leading zeros)."""
    return pl.read_csv(path, infer_schema=False)


@pytest.fixture(scope="module")
def mimic4(tmp_path_factory):
    out = tmp_path_factory.mktemp("mimic4")
    return generate("mimic4", SCALE, out, resources=MEDKB, seed=7), out / "hosp"


@pytest.fixture(scope="module")
def mimic3(tmp_path_factory):
    out = tmp_path_factory.mktemp("mimic3")
    return generate("mimic3", SCALE, out, resources=MEDKB, seed=7), out


def test_mimic4_files_and_exact_columns(mimic4):
    result, hosp = mimic4
    assert sorted(p.name for p in hosp.iterdir()) == sorted(f"{name}.csv.gz" for name in MIMIC4)
    for name, header in MIMIC4.items():
        with gzip.open(hosp / f"{name}.csv.gz", "rt") as handle:
            assert handle.readline().rstrip("\n") == header, name
    rows = {t.name: t.rows for t in result.tables}
    for name in MIMIC4:  # every file is one valid gzip stream holding all the rows reported
        assert read(hosp / f"{name}.csv.gz").height == rows[name] > 0
    assert rows["patients"] == round(299_712 * SCALE)
    assert 0.8 < rows["admissions"] / (431_231 * SCALE) < 1.2


@pytest.mark.needs_data("mimic3-demo", files=("PATIENTS.csv",))  # the demo fetch leaves PATIENTS out
def test_mimic3_files_and_columns_match_the_demo_upper_cased(mimic3):
    result, out = mimic3
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.csv.gz" for name in MIMIC3_TABLES)
    for name in MIMIC3_TABLES:
        frame = read(out / f"{name}.csv.gz")
        demo_columns = pl.read_csv(MIMIC3_DEMO / f"{name}.csv", n_rows=0).columns
        assert frame.columns == [c.upper() for c in demo_columns], name
        assert frame.height > 0
    # full MIMIC-III quotes its text fields; ICD-9 only
    with gzip.open(out / "DIAGNOSES_ICD.csv.gz", "rt") as handle:
        assert handle.readline().startswith('"ROW_ID","SUBJECT_ID"')
    codes = set(read(out / "D_ICD_DIAGNOSES.csv.gz")["ICD9_CODE"].to_list())
    assert len(codes) == 14_567
    assert set(read(out / "DIAGNOSES_ICD.csv.gz")["ICD9_CODE"].to_list()) <= codes
    assert set(read(out / "PROCEDURES_ICD.csv.gz")["ICD9_CODE"].to_list()) <= set(
        read(out / "D_ICD_PROCEDURES.csv.gz")["ICD9_CODE"].to_list())


@pytest.mark.parametrize("fmt", ["mimic4", "mimic3"])
def test_ndc_is_an_11_digit_string_with_zero_and_empty_and_unmappable_rows(fmt, mimic4, mimic3):
    path = mimic4[1] / "prescriptions.csv.gz" if fmt == "mimic4" else mimic3[1] / "PRESCRIPTIONS.csv.gz"
    column = "ndc" if fmt == "mimic4" else "NDC"
    ndc = pl.read_csv(path, schema_overrides={column: pl.String})[column]
    known = set(read_ndc2rxcui(MEDKB / "ndc2rxnorm_mapping.txt"))
    real = ndc.drop_nulls().filter(ndc.drop_nulls() != "0")
    assert real.str.contains(r"^\d{11}$").all()
    assert real.str.starts_with("0").mean() > 0.2
    n = ndc.len()
    unknown_share = (ndc.is_null().sum() + (ndc == "0").sum()) / n
    mappable_share = ndc.is_in(list(known)).fill_null(False).sum() / n
    assert ndc.is_null().sum() > 0 and (ndc == "0").sum() > 0
    assert 0.08 < unknown_share < 0.22
    assert 0.55 < mappable_share < 0.77
    assert (~real.is_in(list(known))).mean() > 0.1  # unmappable 11-digit NDCs too
    # the NDC column survives a plain read only as text: a number would lose the leading zeros
    assert pl.read_csv(path, infer_schema=False)[column].drop_nulls().str.starts_with("0").any()


def test_mimic4_icd_versions_mixed_by_admission_with_titles(mimic4):
    _, hosp = mimic4
    dx = read(hosp / "diagnoses_icd.csv.gz")
    assert set(dx["icd_version"].unique().to_list()) == {"9", "10"}
    per_admission = dx.group_by("hadm_id").agg(pl.col("icd_version").n_unique().alias("n"),
                                               pl.col("icd_version").first().alias("v"))
    assert (per_admission["n"] == 1).all()  # one coding system per admission
    assert 0.25 < (per_admission["v"] == "10").mean() < 0.65
    assert dx.filter(pl.col("icd_version") == "10")["icd_code"].str.contains(r"^[A-Z]").all()
    for table, titles in (("diagnoses_icd", "d_icd_diagnoses"), ("procedures_icd", "d_icd_procedures")):
        used = read(hosp / f"{table}.csv.gz").select("icd_code", "icd_version").unique()
        known = read(hosp / f"{titles}.csv.gz")
        assert used.join(known, on=["icd_code", "icd_version"], how="anti").height == 0
        assert known["long_title"].null_count() == 0
    # seq_num runs 1..k within each admission
    seq = dx.with_columns(pl.col("seq_num").cast(pl.Int64)).group_by("hadm_id").agg(
        pl.col("seq_num").min().alias("lo"), pl.col("seq_num").max().alias("hi"), pl.len().alias("n"))
    assert (seq["lo"] == 1).all() and (seq["hi"] == seq["n"]).all()


def test_mimic4_child_rows_reference_admissions_and_patients(mimic4):
    _, hosp = mimic4
    patients, admissions = read(hosp / "patients.csv.gz"), read(hosp / "admissions.csv.gz")
    assert patients["subject_id"].is_unique().all() and admissions["hadm_id"].is_unique().all()
    assert admissions.join(patients, on="subject_id", how="anti").height == 0
    pairs = admissions.select("subject_id", "hadm_id")
    for table in ("diagnoses_icd", "procedures_icd", "prescriptions"):
        child = read(hosp / f"{table}.csv.gz").select("subject_id", "hadm_id")
        assert child.join(pairs, on=["subject_id", "hadm_id"], how="anti").height == 0, table
    assert admissions.group_by("subject_id").len()["len"].max() > 1  # some patients come back
    times = admissions.select(pl.col("admittime", "dischtime").str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S"))
    assert (times["dischtime"] > times["admittime"]).all()
    rx = read(hosp / "prescriptions.csv.gz")
    start = rx["starttime"].str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S")
    assert start.null_count() == 0
    assert 20 < rx.height / admissions.height < 55
    # several rows per drug in an admission
    assert rx.group_by("hadm_id", "ndc", "drug").len()["len"].max() > 1


def test_mimic3_child_rows_reference_admissions(mimic3):
    _, out = mimic3
    admissions = read(out / "ADMISSIONS.csv.gz")
    assert admissions.join(read(out / "PATIENTS.csv.gz"), on="SUBJECT_ID", how="anti").height == 0
    for table in ("DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS"):
        child = read(out / f"{table}.csv.gz")
        assert child.join(admissions, on=["SUBJECT_ID", "HADM_ID"], how="anti").height == 0, table
        assert child["ROW_ID"].cast(pl.Int64).to_list() == list(range(1, child.height + 1))
    datetime.strptime(admissions["ADMITTIME"][0], "%Y-%m-%d %H:%M:%S")


def test_same_seed_same_bytes_other_seed_other_data(mimic4, tmp_path):
    _, hosp = mimic4
    generate("mimic4", SCALE, tmp_path / "a", resources=MEDKB, seed=7)
    generate("mimic4", SCALE, tmp_path / "b", resources=MEDKB, seed=8)
    for name in MIMIC4:
        assert (tmp_path / "a" / "hosp" / f"{name}.csv.gz").read_bytes() == (hosp / f"{name}.csv.gz").read_bytes()
    assert (tmp_path / "b" / "hosp" / "prescriptions.csv.gz").read_bytes() != (
        hosp / "prescriptions.csv.gz").read_bytes()
    assert not list((tmp_path / "a").rglob(".*.tmp"))  # atomic writes leave no temp file behind


runner = CliRunner()


def test_cli_writes_and_prints_rows_per_table(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDREC_RESOURCES", str(MEDKB))
    out = runner.invoke(app, ["synth-raw", "--format", "mimic3", "--scale", "0.0003", "--out", str(tmp_path),
                              "--seed", "1"])
    assert out.exit_code == 0, out.output
    assert "PRESCRIPTIONS" in out.output and "rows" in out.output
    assert (tmp_path / "PRESCRIPTIONS.csv.gz").is_file()


@pytest.mark.parametrize("args,message", [
    (["--format", "mimic5", "--scale", "0.001"], "unknown format 'mimic5'"),
    (["--format", "mimic4", "--scale", "0"], "--scale"),
    (["--format", "mimic4", "--scale", "-1"], "--scale"),
])
def test_cli_bad_options_are_one_line_errors(tmp_path, args, message):
    out = runner.invoke(app, ["synth-raw", *args, "--out", str(tmp_path / "x"), "--resources", str(MEDKB)])
    assert out.exit_code == 2, out.output
    assert message in out.output and "Traceback" not in out.output
    assert not (tmp_path / "x").exists()


def test_cli_unwritable_out_and_missing_resources(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out_dir in (blocker, blocker / "below"):
        out = runner.invoke(app, ["synth-raw", "--format", "mimic4", "--scale", "0.001", "--out", str(out_dir),
                                  "--resources", str(MEDKB)])
        assert out.exit_code == 2 and "--out" in out.output, out.output
    monkeypatch.delenv("MEDREC_RESOURCES", raising=False)
    monkeypatch.setenv("MEDREC_DATA", str(tmp_path / "no-data-home"))  # no <data home>/medkb either
    out = runner.invoke(app, ["synth-raw", "--format", "mimic4", "--scale", "0.001", "--out", str(tmp_path / "o")])
    assert out.exit_code == 2 and "MEDREC_RESOURCES" in out.output, out.output
    out = runner.invoke(app, ["synth-raw", "--format", "mimic4", "--scale", "0.001", "--out", str(tmp_path / "o"),
                              "--resources", str(tmp_path)])
    assert out.exit_code == 2 and "ndc2rxnorm_mapping.txt" in out.output, out.output
    assert not (tmp_path / "o").exists()  # nothing created when the inputs are wrong
