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
    assert user_error(demo, tmp_path / "cache") == (
        f"{path}, line {line}: last row does not end with a line break: the file was cut short (download it "
        "again) or saved without a final line break (add one)")


def test_short_last_row_before_blank_lines(demo, tmp_path):
    """Blank lines after a cut row do not hide it; the line named is the cut row's."""
    path = demo / "PRESCRIPTIONS.csv"
    line = _cut_after_fields(path, 5000, 3)
    path.write_bytes(path.read_bytes() + b"\n\r\n\n")
    assert user_error(demo, tmp_path / "cache") == (f"{path}, line {line}: last row has 3 of 19 fields "
                                                    "(file cut short?); download it again")


def test_header_only_without_a_final_line_break(demo, tmp_path):
    """A header alone is an empty table (issue 13 e), not a cut one."""
    path = demo / "PRESCRIPTIONS.csv"
    path.write_bytes(path.read_bytes().split(b"\n", 1)[0])
    assert user_error(demo, tmp_path / "cache") == f"{path}: no rows (header only); expected prescription rows"


@pytest.mark.parametrize("where", ["header", "last row"])
def test_bare_carriage_return_is_one_line(demo, tmp_path, where):
    """Old Mac line endings (a lone \\r) in the header or the last row: one line, no traceback."""
    path = demo / "ADMISSIONS.csv"
    data = path.read_bytes()
    if where == "header":
        path.write_bytes(data.replace(b"\n", b"\r", 1))
        expected = f"{path}, line 1: unreadable header row ("
    else:
        head, last = data[:-1].rsplit(b"\n", 1)
        path.write_bytes(head + b"\n" + last.replace(b",", b",\r", 1) + b"\n")
        lines = data.count(b"\n")
        expected = f"{path}, line {lines}: unreadable last row ("
    assert user_error(demo, tmp_path / "cache").startswith(expected)


def test_gzip_of_a_cut_csv(demo, tmp_path):
    """A whole gzip stream holding a cut table: found while the .gz is read to its end."""
    plain = demo / "DIAGNOSES_ICD.csv"
    line = _cut_after_fields(plain, 700, 2)
    packed = demo / "DIAGNOSES_ICD.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    assert user_error(demo, tmp_path / "cache") == (f"{packed}, line {line}: last row has 2 of 5 fields "
                                                    "(file cut short?); download it again")


def test_ragged_row_in_the_middle_where_polars_refuses_it(demo):
    """Rows in the middle are not checked by preparation (it reads a few columns, and then polars
    accepts a row with extra fields). Where polars does refuse one (every column read), the error
    names the file and the line."""
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
