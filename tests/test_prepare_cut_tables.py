"""Issue 13 a and b on copies of the MIMIC-III demo: a table cut short (plain or gzip), a ragged row, two
copies of one table; and which file was read for every table (bundle meta["inputs"], run.json)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import UserError
from tests.test_prepare_bad_input import (MEDKB, _medkb_once, demo, prepare, read_rows, reference,  # noqa: F401
                                          user_error, write_rows)

def _cut_after_fields(path: Path, line_index: int, keep: int) -> int:
    """Cut `path` after `keep` fields of its line `line_index` (0 = header); returns that line's number."""
    lines = path.read_bytes().split(b"\n")
    assert b'"' not in lines[line_index]
    path.write_bytes(b"\n".join(lines[:line_index]) + b"\n" + b",".join(lines[line_index].split(b",")[:keep]))
    return line_index + 1

pytestmark = pytest.mark.needs_data("mimic3-demo", "medkb")


def test_plain_csv_cut_in_a_row(demo, tmp_path):
    path = demo / "PRESCRIPTIONS.csv"
    line = _cut_after_fields(path, 5000, 3)
    message = user_error(demo, tmp_path / "cache")
    assert message == f"{path}, line {line}: last row has 3 of 19 fields (file cut short?); download it again"
    out = CliRunner().invoke(app, ["prepare", "--dataset", "mimic3-demo", "--data-dir", str(demo),
                                   "--resources", str(MEDKB), "--cache-dir", str(tmp_path / "cache")])
    assert (out.exit_code, out.output) == (2, f"error: {message}\n")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_csv_cut_inside_its_last_field(demo, tmp_path):
    """Every field there, but the last one cut (no line break at the end)."""
    path = demo / "ADMISSIONS.csv"
    data = path.read_bytes()
    assert data.endswith(b",0,1\n")
    path.write_bytes(data[:-2])  # `...,0,`: 19 fields, the last one (was `1`) empty
    line = data.count(b"\n")
    assert user_error(demo, tmp_path / "cache") == (f"{path}, line {line}: last row does not end with a line break "
                                                    "(file cut short?); download it again")


def test_gzip_of_a_cut_csv(demo, tmp_path):
    """A whole gzip stream holding a cut table: found while the .gz is read to its end."""
    plain = demo / "DIAGNOSES_ICD.csv"
    line = _cut_after_fields(plain, 700, 2)
    packed = demo / "DIAGNOSES_ICD.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    assert user_error(demo, tmp_path / "cache") == (f"{packed}, line {line}: last row has 2 of 5 fields "
                                                    "(file cut short?); download it again")


def test_ragged_row_in_the_middle(demo):
    """Polars refuses a row with extra fields when it reads every column (not where, nor which file)."""
    from bench.prep.mimic_tables import collect, find_table

    path = demo / "PROCEDURES_ICD.csv"
    rows = read_rows(path)
    rows[40].append("extra")
    write_rows(path, rows)
    table = find_table(demo, "PROCEDURES_ICD", ["hadm_id"])
    with pytest.raises(UserError) as info:
        collect(table.scan(list(table.columns)), table.path)
    assert str(info.value) == f"{path}, line 41: row has 6 fields, the header 5"


def test_two_different_copies_of_a_table_are_refused(demo, tmp_path):
    plain = demo / "PRESCRIPTIONS.csv"
    rows = read_rows(plain)
    (demo / "PRESCRIPTIONS.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    write_rows(plain, rows[:-100])  # the plain copy lost its last 100 rows (still whole lines)
    expected = f"{demo}: both PRESCRIPTIONS.csv and PRESCRIPTIONS.csv.gz present and they differ; keep one"
    assert user_error(demo, tmp_path / "cache") == expected
    out = CliRunner().invoke(app, ["prepare", "--dataset", "mimic3-demo", "--data-dir", str(demo),
                                   "--resources", str(MEDKB), "--cache-dir", str(tmp_path / "cache")])
    assert (out.exit_code, out.output) == (2, f"error: {expected}\n")


def test_identical_copies_read_the_plain_one_and_say_so(demo, tmp_path, reference):
    from bench.io import file_sha256

    plain = demo / "PRESCRIPTIONS.csv"
    (demo / "PRESCRIPTIONS.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    bundle = prepare(demo, tmp_path / "cache")
    assert bundle.hash == reference.hash
    assert bundle.meta["inputs"]["prescriptions"] == {"file": "PRESCRIPTIONS.csv", "sha256": file_sha256(plain)}
    assert {k: v["file"] for k, v in reference.meta["inputs"].items()} == {
        "admissions": "ADMISSIONS.csv", "diagnoses": "DIAGNOSES_ICD.csv", "procedures": "PROCEDURES_ICD.csv",
        "prescriptions": "PRESCRIPTIONS.csv", "d_diagnosis": "D_ICD_DIAGNOSES.csv",
        "d_procedure": "D_ICD_PROCEDURES.csv"}
    assert reference.meta["warnings"] == []
