"""Damaged or unusual raw tables, on copies of the real MIMIC-III demo, and the prepared-bundle cache.

Every case either stops with a one-line UserError that names the file (and the column where one is at
fault), or is handled and counted in `bundle.meta["counts"]`. The undamaged demo is the reference.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bench.prep.mimic
from bench.cli import app
from bench.errors import UserError
from bench.loading import load_bundle
from bench.prep.drug_knowledge import load_medkb
from tests.conftest import data_path

DEMO, MEDKB = data_path("mimic3-demo"), data_path("medkb")  # located once; the mark skips where missing
pytestmark = pytest.mark.needs_data("mimic3-demo", "medkb")
TABLES = ("ADMISSIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES")


@functools.cache
def _cached_medkb(folder: Path):
    return load_medkb(folder)


@pytest.fixture(autouse=True)
def _medkb_once(monkeypatch):
    """Parse medkb once per session (about 1 s) instead of once per prepared bundle."""
    monkeypatch.setattr(bench.prep.mimic, "load_medkb", _cached_medkb)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The undamaged demo."""
    return load_bundle("mimic3-demo", data_dir=DEMO, resources=MEDKB, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture
def demo(tmp_path) -> Path:
    """A private copy of the demo to damage."""
    return Path(shutil.copytree(DEMO, tmp_path / "demo"))


def prepare(data_dir: Path, cache: Path, **overrides):
    return load_bundle("mimic3-demo", data_dir=data_dir, resources=MEDKB, cache_dir=cache,
                       overrides={k: str(v) for k, v in overrides.items()})


def user_error(data_dir: Path, cache: Path) -> str:
    with pytest.raises(UserError) as info:
        prepare(data_dir, cache)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


def read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def rewrite_column(path: Path, column: str, change) -> int:
    """Apply `change` to every value of `column`; returns how many values changed."""
    rows = read_rows(path)
    index, changed = rows[0].index(column), 0
    for row in rows[1:]:
        new = change(row[index])
        changed += new != row[index]
        row[index] = new
    write_rows(path, rows)
    return changed


# --- one-line errors -------------------------------------------------------------------------------

def test_missing_table(demo, tmp_path):
    (demo / "PROCEDURES_ICD.csv").unlink()
    message = user_error(demo, tmp_path / "cache")
    assert "missing table PROCEDURES_ICD" in message and str(demo) in message


def test_renamed_column(demo, tmp_path):
    path = demo / "PRESCRIPTIONS.csv"
    text = path.read_text(encoding="utf-8")
    header, rest = text.split("\n", 1)
    path.write_text(header.replace(",ndc,", ",ndc_code,") + "\n" + rest, encoding="utf-8")
    message = user_error(demo, tmp_path / "cache")
    assert message.startswith(f"{path}: missing column ndc ")


def test_empty_file(demo, tmp_path):
    (demo / "ADMISSIONS.csv").write_bytes(b"")
    message = user_error(demo, tmp_path / "cache")
    assert message.startswith(f"{demo / 'ADMISSIONS.csv'}: empty file")


def test_truncated_gzip(demo, tmp_path):
    plain = demo / "PRESCRIPTIONS.csv"
    packed = gzip.compress(plain.read_bytes())
    plain.unlink()
    (demo / "PRESCRIPTIONS.csv.gz").write_bytes(packed[: len(packed) // 2])
    message = user_error(demo, tmp_path / "cache")
    assert message.startswith(f"{demo / 'PRESCRIPTIONS.csv.gz'}: ") and "gzip" in message


def test_gzip_that_is_not_gzip(demo, tmp_path):
    (demo / "ADMISSIONS.csv").rename(demo / "ADMISSIONS.csv.gz")  # plain text under a .gz name
    message = user_error(demo, tmp_path / "cache")
    assert message.startswith(f"{demo / 'ADMISSIONS.csv.gz'}: cannot read")


def test_wrong_delimiter(demo, tmp_path):
    path = demo / "ADMISSIONS.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(",", ";"), encoding="utf-8")
    assert user_error(demo, tmp_path / "cache").startswith(f"{path}: missing column subject_id")


@pytest.mark.parametrize("stem,what", [("ADMISSIONS", "admission"), ("DIAGNOSES_ICD", "diagnosis"),
                                       ("PROCEDURES_ICD", "procedure"), ("PRESCRIPTIONS", "prescription")])
def test_table_without_rows(stem, what, demo, tmp_path):
    """A header-only table is named (issue 13 e), not reported as "no visit has a diagnosis, ..."."""
    path = demo / f"{stem}.csv"
    path.write_text(path.read_text(encoding="utf-8").split("\n", 1)[0] + "\n", encoding="utf-8")
    assert user_error(demo, tmp_path / "cache") == f"{path}: no rows (header only); expected {what} rows"
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_data_dir_is_a_file(tmp_path):
    path = tmp_path / "ADMISSIONS.csv"
    shutil.copy(DEMO / "ADMISSIONS.csv", path)
    message = user_error(path, tmp_path / "cache")
    assert message.startswith(f"--data-dir {path}: ") and "not a folder" in message
    out = CliRunner().invoke(app, ["prepare", "--dataset", "mimic3-demo", "--data-dir", str(path),
                                   "--resources", str(MEDKB), "--cache-dir", str(tmp_path / "cache")])
    assert out.exit_code == 2 and out.output.startswith("error: --data-dir")
    assert len(out.output.strip().splitlines()) == 1 and "Traceback" not in out.output


def test_cli_prints_one_line_for_a_bad_table(demo, tmp_path):
    (demo / "PROCEDURES_ICD.csv").unlink()
    out = CliRunner().invoke(app, ["prepare", "--dataset", "mimic3-demo", "--data-dir", str(demo),
                                   "--resources", str(MEDKB), "--cache-dir", str(tmp_path / "cache")])
    assert out.exit_code == 2, out.output
    assert out.output.startswith("error: ") and "missing table PROCEDURES_ICD" in out.output
    assert len(out.output.strip().splitlines()) == 1 and "Traceback" not in out.output
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("setting", ["subsample=2", "top_drug=50", "min_visits=two"])
def test_cli_bad_preprocessing_option(setting, tmp_path):
    out = CliRunner().invoke(app, ["prepare", "--dataset", "mimic3-demo", "--data-dir", str(DEMO),
                                   "--resources", str(MEDKB), "--cache-dir", str(tmp_path / "cache"),
                                   "--set", setting])
    assert out.exit_code == 2 and out.output.startswith("error: ") and setting.split("=")[0] in out.output
    assert len(out.output.strip().splitlines()) == 1


# --- handled, with the same bundle ------------------------------------------------------------------

def test_upper_case_headers_give_the_same_bundle(demo, tmp_path, reference):
    for stem in TABLES:
        path = demo / f"{stem}.csv"
        header, rest = path.read_text(encoding="utf-8").split("\n", 1)
        path.write_text(header.upper() + "\n" + rest, encoding="utf-8")
    assert prepare(demo, tmp_path / "cache").hash == reference.hash


def test_csv_gz_gives_the_same_bundle(demo, tmp_path, reference):
    for stem in TABLES:
        path = demo / f"{stem}.csv"
        (demo / f"{stem}.csv.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    bundle = prepare(demo, tmp_path / "cache")
    assert bundle.hash == reference.hash and bundle.meta["counts"] == reference.meta["counts"]


def test_bom_and_crlf_give_the_same_bundle(demo, tmp_path, reference):
    for stem in ("ADMISSIONS", "DIAGNOSES_ICD", "PRESCRIPTIONS", "D_ICD_DIAGNOSES"):
        path = demo / f"{stem}.csv"
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))  # a spreadsheet's export
    assert prepare(demo, tmp_path / "cache").hash == reference.hash


def test_irrelevant_tables_are_ignored(demo, tmp_path, reference):
    cache = tmp_path / "cache"
    first = prepare(demo, cache)
    (demo / "ICUSTAYS.csv").write_bytes(b"")  # damaged, but not a table the pipeline reads
    (demo / "CHARTEVENTS.csv.gz").write_bytes(b"not even gzip")
    (demo / "notes.txt").write_text("hello", encoding="utf-8")
    (demo / "hosp").mkdir()  # a MIMIC-IV-style sub-folder means nothing to MIMIC-III
    second = prepare(demo, cache)
    assert first.hash == second.hash == reference.hash
    assert len(list(cache.iterdir())) == 1  # not even a new cache key


@pytest.mark.parametrize("as_number", [int, float], ids=["int", "float"])
def test_ndcs_read_as_numbers_are_padded_back(as_number, demo, tmp_path, reference):
    """`00006494300` written as `6494300` (or `6494300.0` by a spreadsheet): padded to 11 digits again."""
    lost = rewrite_column(demo / "PRESCRIPTIONS.csv", "ndc",
                          lambda ndc: str(as_number(ndc)) if ndc.isdigit() else ndc)
    original = read_rows(DEMO / "PRESCRIPTIONS.csv")
    ndcs = [row[original[0].index("ndc")] for row in original[1:]]
    leading_zero = sum(1 for ndc in ndcs if ndc.isdigit() and ndc.startswith("0") and int(ndc))
    assert lost >= leading_zero > 6000
    bundle = prepare(demo, tmp_path / "cache")
    assert bundle.hash == reference.hash
    counts = bundle.meta["counts"]
    assert counts["ndc_padded_rows"] == leading_zero
    assert reference.meta["counts"]["ndc_padded_rows"] == 0
    for key in ("ndc_zero_or_empty_rows", "ndc_distinct", "ndc_distinct_mapped", "ndc_rows", "ndc_rows_mapped"):
        assert counts[key] == reference.meta["counts"][key], key


def test_ids_written_as_floats_are_read(demo, tmp_path, reference):
    """hadm_id `142345.0` (pandas writes integer columns with a missing value as floats)."""
    rewrite_column(demo / "DIAGNOSES_ICD.csv", "hadm_id", lambda v: f"{v}.0")
    rewrite_column(demo / "ADMISSIONS.csv", "subject_id", lambda v: f"{v}.0")
    assert prepare(demo, tmp_path / "cache").hash == reference.hash


# --- handled and counted -----------------------------------------------------------------------------

def test_unknown_diagnosis_code_keeps_its_code_as_title(demo, tmp_path, reference):
    path = demo / "DIAGNOSES_ICD.csv"
    rows = read_rows(path)
    first = rows[1]  # an admission of the bundle (subject 10006, hadm 142345)
    rows.append(["999999", first[1], first[2], "99", "ZZ999"])
    write_rows(path, rows)
    bundle = prepare(demo, tmp_path / "cache")
    assert bundle.titles["diagnosis"]["ZZ999"] == "ZZ999"
    assert bundle.meta["counts"]["diagnosis_codes_without_title"] \
        == reference.meta["counts"]["diagnosis_codes_without_title"] + 1
    visit = next(v for p in bundle.patients for v in p.visits if v.admission_id == int(first[2]))
    assert visit.diagnoses[-1] == "ZZ999"


def test_duplicate_rows_are_counted_and_change_nothing(demo, tmp_path, reference):
    path = demo / "DIAGNOSES_ICD.csv"
    rows = read_rows(path)
    write_rows(path, rows + rows[10:17])  # seven rows twice
    bundle = prepare(demo, tmp_path / "cache")
    assert bundle.hash == reference.hash
    assert bundle.meta["counts"]["diagnosis_duplicate_rows"] == reference.meta["counts"]["diagnosis_duplicate_rows"] + 7
    assert bundle.meta["counts"]["diagnosis_rows"] == reference.meta["counts"]["diagnosis_rows"] + 7


def test_undecodable_title_bytes_are_replaced_and_counted(demo, tmp_path, reference):
    path = demo / "D_ICD_DIAGNOSES.csv"
    data = path.read_bytes()
    line = next(x for x in data.split(b"\n") if b'"4280"' in x or b",4280," in x)  # CHF NOS, used by the demo
    damaged = line.replace(b"CHF NOS", b"CHF NOS caf\xe9").replace(b"Congestive heart failure",
                                                                    b"Congestive heart failure caf\xe9")
    path.write_bytes(data.replace(line, damaged))
    bundle = prepare(demo, tmp_path / "cache")
    assert bundle.titles["diagnosis"]["4280"] == "CHF NOS caf\ufffd"
    assert bundle.meta["counts"]["diagnosis_titles_with_undecodable_bytes"] == 1
    assert reference.meta["counts"]["diagnosis_titles_with_undecodable_bytes"] == 0


def test_non_integer_subject_id_is_not_a_patient(demo, tmp_path, reference):
    path = demo / "ADMISSIONS.csv"
    rows = read_rows(path)
    index = rows[0].index("subject_id")
    subjects = [row[index] for row in rows[1:]]
    assert subjects.count(rows[1][index]) == 1
    rows[1][index] = "n/a"  # the only admission of its patient
    write_rows(path, rows)
    counts = prepare(demo, tmp_path / "cache").meta["counts"]
    assert (counts["patients_read"], counts["admissions_read"], counts["admissions_valid"]) == (99, 129, 128)


@pytest.mark.parametrize("table,column,count", [
    ("ADMISSIONS", "hadm_id", None),
    ("DIAGNOSES_ICD", "hadm_id", "diagnosis_rows_unusable"),
    ("PROCEDURES_ICD", "hadm_id", "procedure_rows_unusable"),
    ("PRESCRIPTIONS", "hadm_id", "prescription_rows_unusable"),
])
def test_non_integer_hadm_id_rows_are_dropped_and_counted(table, column, count, demo, tmp_path, reference):
    path = demo / f"{table}.csv"
    rows = read_rows(path)
    index = rows[0].index(column)
    rows[1][index], rows[2][index] = "abc", ""
    write_rows(path, rows)
    bundle = prepare(demo, tmp_path / "cache")
    counts, before = bundle.meta["counts"], reference.meta["counts"]
    if count is None:
        assert (counts["admissions_read"], counts["admissions_valid"]) == (129, 127)
    else:
        assert counts[count] == before.get(count, 0) + 2
        assert counts[count.replace("_unusable", "")] == before[count.replace("_unusable", "")]
    if table == "PRESCRIPTIONS":  # every row is accounted for exactly once
        assert counts["prescription_rows"] == (counts["prescription_rows_unusable"]
                                               + counts["ndc_zero_or_empty_rows"] + counts["ndc_rows"])
    assert len(bundle.patients) <= len(reference.patients)


# --- the cache ------------------------------------------------------------------------------------

@pytest.fixture
def calls(monkeypatch):
    """How many times the pipeline really ran (not served from the cache)."""
    seen = []
    real = bench.prep.mimic.prepare_mimic

    def counting(*args, **kwargs):
        seen.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(bench.prep.mimic, "prepare_mimic", counting)
    return seen


def test_second_load_comes_from_the_cache(calls, tmp_path, reference):
    cache = tmp_path / "cache"
    first = prepare(DEMO, cache)
    second = prepare(DEMO, cache)
    assert len(calls) == 1
    entries = list(cache.iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("mimic3-demo-")
    assert first.hash == second.hash == reference.hash
    assert second.patients == reference.patients and second.titles == reference.titles
    assert second.meta["counts"] == reference.meta["counts"]


def test_changed_parameter_gives_a_new_entry(calls, tmp_path):
    cache = tmp_path / "cache"
    prepare(DEMO, cache)
    other = prepare(DEMO, cache, top_drugs=50)
    assert len(calls) == 2 and len(list(cache.iterdir())) == 2
    assert other.meta["params"]["top_drugs"] == 50 and len(other.drug_vocab) <= 50
    few = prepare(DEMO, cache, top_drugs=5)
    assert len(few.drug_vocab) == 5 and len(calls) == 3
    assert prepare(DEMO, cache, top_drugs=50).hash == other.hash and len(calls) == 3


def test_changed_input_gives_a_new_entry(calls, demo, tmp_path, reference):
    cache = tmp_path / "cache"
    assert prepare(demo, cache).hash == reference.hash
    path = demo / "D_ICD_DIAGNOSES.csv"
    path.write_bytes(path.read_bytes().replace(b"CHF NOS", b"CHF NOZ", 1))  # one byte
    bundle = prepare(demo, cache)
    assert len(calls) == 2 and len(list(cache.iterdir())) == 2
    assert bundle.titles["diagnosis"]["4280"] == "CHF NOZ" and bundle.hash != reference.hash


def test_half_written_temporary_folder_is_ignored(calls, tmp_path, reference):
    cache = tmp_path / "cache"
    prepare(DEMO, cache)
    entry = next(cache.iterdir())
    partial = cache / f".{entry.name}.abc123"  # what store_bundle leaves if killed mid-write
    partial.mkdir()
    (partial / "bundle.json").write_text('{"name": "mimic3-demo", "hash": "', encoding="utf-8")
    assert prepare(DEMO, cache).hash == reference.hash and len(calls) == 1


@pytest.mark.parametrize("damage", ["truncated-json", "empty-object", "wrong-hash", "no-visits", "wrong-type"])
def test_corrupted_entry_is_not_used_and_is_replaced(damage, calls, tmp_path, reference):
    cache = tmp_path / "cache"
    prepare(DEMO, cache)
    entry = next(cache.iterdir())
    bundle_json = entry / "bundle.json"
    if damage == "truncated-json":
        text = bundle_json.read_text(encoding="utf-8")
        bundle_json.write_text(text[: len(text) // 2], encoding="utf-8")
    elif damage == "empty-object":
        bundle_json.write_text("{}", encoding="utf-8")
    elif damage == "wrong-hash":  # content changed behind the cache's back: the stored hash no longer matches
        rest = json.loads(bundle_json.read_text(encoding="utf-8"))
        rest["titles"]["diagnosis"]["4280"] = "stale title"
        bundle_json.write_text(json.dumps(rest), encoding="utf-8")
    elif damage == "no-visits":
        (entry / "visits.parquet").unlink()
    else:
        bundle_json.write_text("[1, 2, 3]", encoding="utf-8")
    again = prepare(DEMO, cache)
    assert len(calls) == 2 and again.hash == reference.hash
    assert again.titles["diagnosis"]["4280"] == "CHF NOS"
    assert prepare(DEMO, cache).hash == reference.hash
    assert len(calls) == 2, "the broken entry should have been replaced by the fresh bundle"
    assert [p.name for p in cache.iterdir()] == [entry.name]
