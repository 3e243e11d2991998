"""`bench synth-raw --dataset`: an existing cohort written as raw MIMIC-IV tables, so that peer toolkits run on
the same patients. Fast tests use hand-built bundles and NDC maps; the round trip through the project's own
MIMIC-IV preprocessing needs the drug-knowledge folder medkb."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data import DatasetBundle, Patient, Visit, build_vocabs
from bench.errors import UserError
from bench.prep.drug_knowledge import MedKB, load_medkb
from bench.prep.raw_tables.bundle_export import export_bundle, export_frames, export_dataset, split_token
from bench.prep.raw_tables.ndc_choice import NdcChoice, choose_ndcs, rxcui_classes
from bench.prep.raw_tables.schema import MIMIC4_COLUMNS, MIMIC4_ICU_COLUMNS
from tests.conftest import data_path, one_line_error

MEDKB = data_path("medkb")
runner = CliRunner()
DT = pl.Datetime("ms")
DTYPES = {  # MIMIC-IV v2.2 column types (ENVIRONMENT.md); text where MIMIC has text, NDCs included
    "patients": [pl.Int64, pl.String, pl.Int64, pl.Int64, pl.String, pl.Date],
    "admissions": [pl.Int64, pl.Int64, DT, DT, DT, pl.String, pl.String, pl.String, pl.String, pl.String, pl.String,
                   pl.String, pl.String, DT, DT, pl.Int64],
    "diagnoses_icd": [pl.Int64, pl.Int64, pl.Int64, pl.String, pl.Int64],
    "procedures_icd": [pl.Int64, pl.Int64, pl.Int64, pl.Date, pl.String, pl.Int64],
    "prescriptions": [pl.Int64, pl.Int64, pl.Int64, pl.String, pl.Int64, pl.String, DT, DT, pl.String, pl.String,
                      pl.String, pl.String, pl.String, pl.String, pl.String, pl.String, pl.String, pl.String,
                      pl.String, pl.Float64, pl.String],
    "d_icd_diagnoses": [pl.String, pl.Int64, pl.String],
    "d_icd_procedures": [pl.String, pl.Int64, pl.String],
    "icustays": [pl.Int64, pl.Int64, pl.Int64, pl.String, pl.String, DT, DT, pl.Float64],
}
COLUMNS = {**MIMIC4_COLUMNS, **MIMIC4_ICU_COLUMNS}
PROFILE = {"insurance": "Medicare", "language": "ENGL", "marital_status": "", "ethnicity": "ASIAN",
           "admission_type": "ELECTIVE"}


def tiny_bundle(drugs_of_first: tuple[str, ...] = ("N02B", "B01A")) -> DatasetBundle:
    """Two patients, three visits; patient 7's second visit carries an ICD-10 token and a profile of its own."""
    patients = (
        Patient(7, (Visit(501, ("4019", "25000"), ("3893",), drugs_of_first, PROFILE),
                    Visit(502, ("10:I10",), ("9:3893", "9904"), ("B01A",), {**PROFILE, "ethnicity": "WHITE",
                                                                          "admission_type": "EMERGENCY"}))),
        Patient(3, (Visit(301, ("4280",), ("9904",), ("C03C", "N02B", "A10A"), {"age": "47", "gender": "F"}),)),
    )
    titles = {"diagnosis": {"4019": "Hypertension", "25000": "Diabetes", "10:I10": "Essential hypertension",
                            "4280": "Heart failure"},
              "procedure": {"3893": "Venous catheterization", "9904": "Transfusion"},  # 9:3893 has none
              "drug": {"N02B": "other analgesics and antipyretics"}}
    return DatasetBundle("tiny", patients, build_vocabs(patients), titles, (), {}, tuple(PROFILE))


NDC = {"N02B": "00045050130", "B01A": "00002475977", "C03C": "00004026249", "A10A": "00002751001"}


def test_tables_columns_dtypes_and_rows_match_the_bundle():
    frames = export_frames(tiny_bundle(), NDC)
    assert list(frames) == list(COLUMNS)
    for name, frame in frames.items():
        assert frame.columns == list(COLUMNS[name]), name
        assert frame.dtypes == DTYPES[name], name
    heights = {name: frame.height for name, frame in frames.items()}
    assert heights == {"patients": 2, "admissions": 3, "diagnoses_icd": 2 + 1 + 1, "procedures_icd": 1 + 2 + 1,
                       "prescriptions": 2 + 1 + 3, "d_icd_diagnoses": 4, "d_icd_procedures": 2, "icustays": 0}


def test_visits_become_admissions_in_order_with_their_codes():
    frames = export_frames(tiny_bundle(), NDC)
    adm = frames["admissions"]
    assert adm["subject_id"].to_list() == [7, 7, 3] and adm["hadm_id"].to_list() == [501, 502, 301]
    assert adm["admittime"][0] < adm["dischtime"][0] < adm["admittime"][1] < adm["dischtime"][1]
    assert adm["race"].to_list()[:2] == ["ASIAN", "WHITE"]  # the profile's ethnicity, per visit
    assert adm["admission_type"].to_list()[:2] == ["ELECTIVE", "EMERGENCY"]
    assert adm["marital_status"][0] is None  # an empty profile value is an empty field, as MIMIC has them
    assert adm["edregtime"][0] is None and adm["edregtime"][1] is not None  # ED times only for emergencies
    dx = frames["diagnoses_icd"]
    assert dx.rows() == [(7, 501, 1, "4019", 9), (7, 501, 2, "25000", 9), (7, 502, 1, "I10", 10), (3, 301, 1, "4280", 9)]
    px = frames["procedures_icd"]
    assert px.select("hadm_id", "seq_num", "icd_code", "icd_version").rows() == [
        (501, 1, "3893", 9), (502, 1, "3893", 9), (502, 2, "9904", 9), (301, 1, "9904", 9)]
    assert px["chartdate"].to_list() == adm["admittime"].dt.date().gather([0, 1, 1, 2]).to_list()
    rx = frames["prescriptions"]
    assert rx.select("hadm_id", "ndc").rows() == [(501, NDC["N02B"]), (501, NDC["B01A"]), (502, NDC["B01A"]),
                                                  (301, NDC["C03C"]), (301, NDC["N02B"]), (301, NDC["A10A"])]
    assert rx["poe_id"].to_list() == ["7-1", "7-2", "7-3", "3-1", "3-2", "3-3"]
    assert rx["drug"][0] == "Other analgesics and antipyretics" and rx["drug"][1] == "B01A"  # no title: the class
    assert (rx["starttime"] >= adm.join(rx.select("hadm_id"), on="hadm_id")["admittime"]).all()
    patients = frames["patients"]
    assert patients.select("subject_id", "gender", "anchor_age").row(1) == (3, "F", 47)  # from the profile
    # patient 7 has an ICD-10 code: coded after 2015-10; patient 3 only ICD-9: before
    assert patients["anchor_year_group"][0] == "2017 - 2019"
    assert patients["anchor_year_group"][1] in ("2008 - 2010", "2011 - 2013")
    titles = frames["d_icd_diagnoses"]
    assert titles.rows() == [("25000", 9, "Diabetes"), ("4019", 9, "Hypertension"), ("4280", 9, "Heart failure"),
                             ("I10", 10, "Essential hypertension")]
    assert export_frames(tiny_bundle(), NDC)["admissions"].equals(adm)  # fixed seed: the same files every time


def test_split_token():
    assert split_token("9:4019") == ("4019", 9)
    assert split_token("10:I10") == ("I10", 10)
    assert split_token("4019") == ("4019", 9)
    assert split_token("V1582") == ("V1582", 9)


def test_small_bundle_row_counts(small_bundle):
    ndc = {d: f"{i:011d}" for i, d in enumerate(small_bundle.drug_vocab.tokens, start=1)}
    frames = export_frames(small_bundle, ndc)
    visits = [v for p in small_bundle.patients for v in p.visits]
    assert frames["patients"].height == len(small_bundle.patients)
    assert frames["admissions"].height == len(visits)
    assert frames["diagnoses_icd"].height == sum(len(v.diagnoses) for v in visits)
    assert frames["procedures_icd"].height == sum(len(v.procedures) for v in visits)
    assert frames["prescriptions"].height == sum(len(v.drugs) for v in visits)
    assert frames["prescriptions"]["ndc"].str.len_chars().unique().to_list() == [11]
    assert frames["d_icd_procedures"].height == len(small_bundle.vocabs["procedure"])


def test_files_headers_and_leading_zeros(tmp_path):
    result = export_bundle(tiny_bundle(), tmp_path, NdcChoice(NDC, (), ()), drop_unmapped=False, resources=tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        [f"hosp/{n}.csv.gz" for n in MIMIC4_COLUMNS] + ["icu/icustays.csv.gz"])
    for name, columns in COLUMNS.items():
        path = tmp_path / ("icu" if name == "icustays" else "hosp") / f"{name}.csv.gz"
        with gzip.open(path, "rt") as handle:
            assert handle.readline().rstrip("\n") == ",".join(columns), name
        rows = pl.read_csv(path, infer_schema=False)
        assert rows.height == {t.name: t.rows for t in result.tables}[name]
    rx = pl.read_csv(tmp_path / "hosp/prescriptions.csv.gz", infer_schema=False)
    assert rx["ndc"][0] == "00045050130" and rx["starttime"][0].count(":") == 2  # text NDC; MIMIC's datetime format
    assert result.dropped_classes == () and result.dropped_rows == 0


def test_classes_without_ndc_are_an_error_or_dropped(tmp_path):
    choice = NdcChoice({"N02B": NDC["N02B"], "C03C": NDC["C03C"]}, (), ("A10A", "B01A"))
    with pytest.raises(UserError, match="drug classes A10A, B01A; pass --drop-unmapped-drugs") as error:
        export_bundle(tiny_bundle(), tmp_path / "out", choice, drop_unmapped=False, resources=tmp_path)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()
    result = export_bundle(tiny_bundle(("B01A",)), tmp_path / "out", choice, drop_unmapped=True, resources=tmp_path)
    # B01A in 501 (its only drug) and 502 (its only drug), A10A in 301: three rows, two visits left without a drug
    assert (result.dropped_classes, result.dropped_rows, result.visits_without_drugs) == (("A10A", "B01A"), 3, 2)
    rx = pl.read_csv(tmp_path / "out/hosp/prescriptions.csv.gz", infer_schema=False)
    assert rx.select("hadm_id", "ndc").rows() == [("301", NDC["C03C"]), ("301", NDC["N02B"])]


def test_ids_must_be_unique(tmp_path):
    bundle = tiny_bundle()
    first = bundle.patients[0]
    clash = Patient(9, (Visit(501, ("4019",), ("9904",), ("N02B",)),))
    bad = DatasetBundle("tiny", (first, clash), bundle.vocabs, bundle.titles, (), {}, ())
    with pytest.raises(UserError, match="admission_id 501 .patient 9. is not a unique integer"):
        export_frames(bad, NDC)


def test_ndc_choice_prefers_ndcs_of_one_class():
    """NDC -> RXCUI -> first ATC4 is the project's rule; all_classes holds every class of an RXCUI's rows."""
    kb = MedKB(Path("."), ndc2rxcui={"00000000009": "1", "00000000005": "2", "00000000001": "3", "00000000002": "4",
                                     "idx": "5"},
               rxcui2atc4={"1": "C01CA", "2": "C01CA", "3": "C01CA", "4": "A01AC", "5": "N02BE"},
               atc_names={}, ddi_pairs=(), smiles={})
    all_classes = {"1": frozenset({"C01C"}), "2": frozenset({"C01C"}), "3": frozenset({"C01C", "S01F"}),
                   "4": frozenset({"A01A", "R03B"}), "5": frozenset({"N02B"})}
    choice = choose_ndcs(["C01C", "A01A", "N02B", "B05B"], kb, all_classes)
    # C01C: ...01 is the smallest but its RXCUI also has S01F rows, so ...05; A01A: only a shared one;
    # N02B: only the stray non-NDC key 'idx'; B05B: nothing
    assert dict(choice.ndc) == {"A01A": "00000000002", "C01C": "00000000005"}
    assert choice.shared == ("A01A",)
    assert choice.missing == ("B05B", "N02B")


def test_rxcui_classes_reads_every_row(tmp_path):
    path = tmp_path / "ndc2atc_level4.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ndc2atc_level4.csv", "YEAR,MONTH,NDC,RXCUI,ATC5\n2014,1,0002-1,11,C01CA\n"
                         "2014,1,0002-2,11,S01FB\n2014,1,0002-3, 12 ,N02BE\n2014,1,0002-4,13,\n")
    assert rxcui_classes(path) == {"11": frozenset({"C01C", "S01F"}), "12": frozenset({"N02B"})}
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="bad.zip: expected a zip"):
        rxcui_classes(tmp_path / "bad.zip")


@pytest.mark.parametrize("args,fragments", [
    (["--dataset", "synthetic-small", "--format", "mimic4"], ("--dataset", "--format is for the load generator")),
    (["--dataset", "synthetic-small", "--scale", "0.1", "--seed", "1"], ("--scale, --seed are",)),
    (["--format", "mimic4", "--scale", "0.1", "--drop-unmapped-drugs"], ("--drop-unmapped-drugs: only with --dataset",)),
    (["--format", "mimic4", "--scale", "0.1", "--prep-set", "n_patients=20"], ("--prep-set: only with --dataset",)),
    ([], ("missing --format and --scale", "--dataset")),
    (["--format", "mimic4"], ("missing --scale",)),
])
def test_cli_modes_are_exclusive(tmp_path, args, fragments):
    one_line_error(runner.invoke(app, ["synth-raw", *args, "--out", str(tmp_path / "o")]), *fragments)
    assert not (tmp_path / "o").exists()


# --- with the drug-knowledge folder -------------------------------------------------------------------------------

@pytest.mark.needs_data("medkb")
def test_real_ndc_choice():
    """Checked by hand in medkb: C01C's smallest NDC 00024134803 (RXCUI 1234578, phenylephrine) also has S01F,
    R01A, ... rows, 00074144304 (RXCUI 209217) only C01CA; every A01A NDC's RXCUI also has rows of other classes
    (00003029305 is the smallest); no NDC reaches B05B."""
    kb = load_medkb(MEDKB)
    choice = choose_ndcs(["C01C", "A01A", "B05B"], kb, rxcui_classes(MEDKB / "ndc2atc_level4.zip"))
    assert dict(choice.ndc) == {"A01A": "00003029305", "C01C": "00074144304"}
    assert (choice.shared, choice.missing) == (("A01A",), ("B05B",))


def mimic_tokens(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """MIMIC-IV tokens carry the ICD version (`9:4019`); the synthetic ones are bare ICD-9 codes."""
    assert all(t.startswith("9:") for t in tokens), tokens
    return tuple(t[2:] for t in tokens)


@pytest.fixture(scope="module")
def exported(small_bundle, tmp_path_factory):
    """synthetic-small written through the CLI, then prepared by the project's MIMIC-IV preprocessing twice:
    with nothing filtered out, and with the mimic4 card's defaults."""
    medkb = MEDKB  # the tests using this fixture carry needs_data("medkb"): skipped before it runs
    out = tmp_path_factory.mktemp("export")
    result = runner.invoke(app, ["synth-raw", "--dataset", "synthetic-small", "--out", str(out), "--resources",
                                 str(medkb), "--drop-unmapped-drugs"])
    assert result.exit_code == 0, result.output
    from bench.loading import load_bundle

    cache = tmp_path_factory.mktemp("cache")
    exact = load_bundle("mimic4", data_dir=out, resources=medkb, cache_dir=cache, overrides={
        "top_diagnoses": "0", "top_procedures": "0", "top_drugs": "0", "require_smiles": "false"})
    default = load_bundle("mimic4", data_dir=out, resources=medkb, cache_dir=cache)
    kb = load_medkb(medkb)
    writable = set(kb.ndc_to_atc3().values())
    return exact, default, kb, writable, result.output


def expected_visits(bundle: DatasetBundle, keep_drug) -> dict[int, list[tuple]]:
    """Patient id -> [(admission_id, diagnoses, procedures, sorted drugs)] after the documented rule: drug classes
    that `keep_drug` refuses are gone; the visit join drops a visit left without a diagnosis, a procedure or a drug,
    and then a patient left without a visit."""
    out: dict[int, list[tuple]] = {}
    for patient in bundle.patients:
        visits = [(v.admission_id, v.diagnoses, v.procedures, tuple(sorted(d for d in v.drugs if keep_drug(d))))
                  for v in patient.visits]
        visits = [v for v in visits if v[1] and v[2] and v[3]]
        if visits:
            out[patient.id] = visits
    return out


def prepared_visits(bundle: DatasetBundle) -> dict[int, list[tuple]]:
    return {p.id: [(v.admission_id, mimic_tokens(v.diagnoses), mimic_tokens(v.procedures), v.drugs) for v in p.visits]
            for p in bundle.patients}


@pytest.mark.needs_data("medkb")
def test_round_trip_gives_back_the_cohort(small_bundle, exported):
    exact, _, _, writable, output = exported
    dropped = sorted(set(small_bundle.drug_vocab.tokens) - writable)
    if dropped:
        assert f"classes without an NDC ({', '.join(dropped)})" in output
    assert [p.id for p in exact.patients] == sorted(p.id for p in small_bundle.patients)
    assert prepared_visits(exact) == expected_visits(small_bundle, lambda d: d in writable)
    assert exact.meta["counts"]["visits_after_join"] == exact.meta["counts"]["admissions_read"] - sum(
        all(d not in writable for d in v.drugs) for p in small_bundle.patients for v in p.visits)
    # titles and profile fields come back too (MIMIC-IV calls ethnicity `race`)
    for kind in ("diagnosis", "procedure"):
        assert {mimic_tokens((t,))[0]: title for t, title in exact.titles[kind].items()} == {
            t: small_bundle.titles[kind][t] for t in small_bundle.vocabs[kind].tokens}
    ours = {v.admission_id: v.profile for p in small_bundle.patients for v in p.visits}
    for patient in exact.patients:
        for visit in patient.visits:
            source = ours[visit.admission_id]
            for field, value in visit.profile.items():
                key = "ethnicity" if field == "race" and "race" not in source else field
                if key in source:
                    assert value == source[key], (visit.admission_id, field)


@pytest.mark.needs_data("medkb")
def test_card_defaults_drop_exactly_the_documented_classes(small_bundle, exported):
    """With the mimic4 card's defaults the top-N cut-offs (2000 diagnoses, 1000 procedures, 300 drugs) keep
    everything of a vocabulary that small, and require_smiles drops the classes without SMILES in medkb."""
    _, default, kb, writable, _ = exported
    assert len(small_bundle.vocabs["diagnosis"]) <= 2000 and len(small_bundle.vocabs["procedure"]) <= 1000
    assert len(small_bundle.drug_vocab) <= 300
    assert prepared_visits(default) == expected_visits(small_bundle, lambda d: d in writable and d in kb.smiles)


@pytest.mark.needs_data("medkb")
def test_export_dataset_lists_classes_no_ndc_reaches(tmp_path, monkeypatch):
    """B05B and R03B: no NDC of medkb's NDC -> RXCUI map reaches them (pinned files)."""
    import bench.loading

    monkeypatch.setattr(bench.loading, "load_bundle", lambda *a, **k: tiny_bundle(("B05B", "R03B", "N02B")))
    with pytest.raises(UserError, match="maps back to drug classes B05B, R03B; pass --drop-unmapped-drugs"):
        export_dataset("tiny", tmp_path / "o", resources=MEDKB, overrides={}, drop_unmapped=False)
    assert not (tmp_path / "o").exists()
