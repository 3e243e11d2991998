"""Issue 13 on the hand-written MIMIC-IV folder of test_prepare_mimic4: an ICD version other than 9 or 10,
an hadm_id under two patients, a plain table cut short or beside a different .gz, and the files run.json
says were read."""

from __future__ import annotations

import csv
import gzip

import pytest
from typer.testing import CliRunner

from bench.cli import app
from tests.test_prepare_mimic4 import (ADMISSIONS, ADMISSIONS_COLUMNS, DIAGNOSES, MEDKB, SUBJECT,  # noqa: F401
                                       _medkb_once, _write_gz, bundle, mimic4_dir, prepare, write_mimic4)

pytestmark = pytest.mark.needs_data("medkb")


def test_icd_version_11_and_a_reused_hadm_id_are_counted_dropped_and_warned(tmp_path, bundle):
    """Issue 13 h: a version that is neither 9 nor 10, and an hadm_id under two patients."""
    root = write_mimic4(tmp_path / "mimic4")
    hosp = root / "hosp"
    diagnoses = DIAGNOSES + [(20021, 2, "XA0", 11), (20041, 3, "XB1", 11)]
    _write_gz(hosp / "diagnoses_icd.csv.gz", ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
              [(SUBJECT[h], h, seq, code, v) for h, seq, code, v in diagnoses])
    admissions = ADMISSIONS + [(10002, 20011, "2181-01-01 00:00:00", "URGENT", "Medicaid", "?", "", "WHITE")]
    _write_gz(hosp / "admissions.csv.gz", ADMISSIONS_COLUMNS, [
        (s, h, t, "", "", kind, "P1234", "EMERGENCY ROOM", "HOME", ins, lang, marital, race, "", "", 0)
        for s, h, t, kind, ins, lang, marital, race in admissions])
    damaged = prepare(root, tmp_path / "cache")
    counts = damaged.meta["counts"]
    assert counts["diagnosis_rows_icd_version_unknown"] == 2 and counts["procedure_rows_icd_version_unknown"] == 0
    assert counts["diagnosis_rows"] == 23 and counts["diagnosis_duplicate_rows"] == 1
    assert bundle.meta["counts"]["diagnosis_rows_icd_version_unknown"] == 0
    assert counts["admissions_hadm_id_reused"] == 1 and bundle.meta["counts"]["admissions_hadm_id_reused"] == 0
    assert (counts["admissions_read"], counts["admissions_valid"]) == (17, 15)  # both rows of 20011 dropped
    assert counts["visits_after_join"] == 13 and 20011 not in {v.admission_id for p in damaged.patients
                                                               for v in p.visits}
    # 10:E119 was only on 20011 (and 20061, which has no drug); no `11:` token
    assert damaged.vocabs["diagnosis"].tokens == ("10:E785", "10:I10", "9:0414", "9:25000", "9:4019")
    warnings = [f"{hosp / 'admissions.csv.gz'}: 1 hadm_id(s) under more than one subject_id (e.g. 20011); "
                "their admissions are dropped (admissions_hadm_id_reused)",
                f"{hosp / 'diagnoses_icd.csv.gz'}: 2 row(s) with icd_version other than 9 or 10 (11) dropped "
                "(diagnosis_rows_icd_version_unknown)"]
    assert damaged.meta["warnings"] == warnings and bundle.meta["warnings"] == []
    out = CliRunner().invoke(app, ["prepare", "--dataset", "mimic4-demo", "--data-dir", str(root),
                                                   "--resources", str(MEDKB), "--cache-dir", str(tmp_path / "cache")])
    assert out.exit_code == 0, out.output
    assert out.stderr == "".join(f"warning: {line}\n" for line in warnings)
    assert "admissions hadm id reused" in out.stdout and "diagnosis rows icd version unknown" in out.stdout


def test_run_json_records_which_files_were_read(mimic4_dir, tmp_path):
    from bench.io import file_sha256

    out = CliRunner().invoke(app, ["run", "--model", "popular", "--dataset", "mimic4-demo", "--data-dir",
                                   str(mimic4_dir), "--resources", str(MEDKB), "--results-dir", str(tmp_path / "r")],
                             env={"MEDREC_CACHE": str(tmp_path / "cache")})
    assert out.exit_code == 0, out.output
    import json

    record = json.loads(next((tmp_path / "r").glob("*/*/*/run.json")).read_text())
    inputs = record["dataset"]["meta"]["inputs"]
    assert inputs["prescriptions"] == {"file": "hosp/prescriptions.csv.gz",
                                       "sha256": file_sha256(mimic4_dir / "hosp" / "prescriptions.csv.gz")}
    assert sorted(inputs) == ["admissions", "d_diagnosis", "d_procedure", "diagnoses", "prescriptions", "procedures"]


def test_plain_prescriptions_cut_short_or_beside_a_different_gz(tmp_path):
    """Issue 13 a and b on a MIMIC-IV folder: hosp/prescriptions.csv cut in a row; then beside the .gz."""
    from bench.errors import UserError

    root = write_mimic4(tmp_path / "mimic4")
    packed, plain = root / "hosp" / "prescriptions.csv.gz", root / "hosp" / "prescriptions.csv"
    text = gzip.decompress(packed.read_bytes())
    lines = text.split(b"\n")
    cut = lines[20][:25]  # line 21 cut after 25 bytes
    packed.unlink()
    plain.write_bytes(b"\n".join(lines[:20]) + b"\n" + cut)
    with pytest.raises(UserError) as info:
        prepare(root, tmp_path / "cache")
    fields = len(next(csv.reader([cut.decode()])))
    assert str(info.value) == f"{plain}, line 21: last row has {fields} of 21 fields (file cut short?); download it again"

    plain.write_bytes(b"\n".join(lines[:20]) + b"\n")  # whole rows now, but fewer than the .gz holds
    packed.write_bytes(gzip.compress(text))
    with pytest.raises(UserError) as info:
        prepare(root, tmp_path / "cache")
    assert str(info.value) == (f"{root / 'hosp'}: both prescriptions.csv and prescriptions.csv.gz present and "
                               "they differ; keep one")

    plain.write_bytes(text)  # the same rows in both: read, and recorded as the plain file
    assert prepare(root, tmp_path / "cache").meta["inputs"]["prescriptions"]["file"] == "hosp/prescriptions.csv"
