"""The real MIMIC-III demo (100 patients) through `bench prepare` and `bench run`: its counts step by step."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.loading import load_bundle
from tests.conftest import data_path

DEMO, MEDKB = data_path("mimic3-demo"), data_path("medkb")  # located once; the mark skips where missing
pytestmark = pytest.mark.needs_data("mimic3-demo", "medkb")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return load_bundle("mimic3-demo", data_dir=DEMO, resources=MEDKB, cache_dir=tmp_path_factory.mktemp("cache"))


def test_counts_step_by_step(demo):
    counts = demo.meta["counts"]
    assert (counts["patients_read"], counts["admissions_read"]) == (100, 129)
    assert (counts["diagnosis_rows"], counts["procedure_rows"], counts["prescription_rows"]) == (1761, 506, 10398)
    assert counts["ndc_zero_or_empty_rows"] == 1478  # about 14% of rows
    assert counts["admissions_with_a_diagnosis"] == 129
    assert counts["admissions_with_a_procedure"] == 113
    assert counts["admissions_with_a_mapped_drug"] == 122
    assert counts["visits_after_join"] == 107
    assert counts["patients_after_min_visits"] == 82
    assert len(demo.patients) == 82 and sum(len(p.visits) for p in demo.patients) == 107


def test_ndc_mapping_coverage_is_about_72_percent(demo):
    counts, summary = demo.meta["counts"], demo.meta["summary"]
    assert (counts["ndc_distinct"], counts["ndc_distinct_mapped"]) == (995, 715)
    assert summary["ndc_coverage_distinct"] == pytest.approx(0.72, abs=0.01)
    assert summary["ndc_coverage_rows"] == pytest.approx(0.76, abs=0.01)


def test_bundle_contents(demo):
    assert all(len(t) == 4 for t in demo.drug_vocab.tokens)  # ATC3
    assert set(demo.drug_vocab.tokens) <= set(demo.smiles)  # require_smiles defaults to true
    assert demo.meta["summary"]["single_visit_share"] > 0.8  # most demo patients have one admission
    assert all(p.visits for p in demo.patients)
    visit = demo.patients[0].visits[0]
    assert visit.diagnoses[0] == "99591"  # seq_num order: the principal diagnosis first
    assert set(visit.profile) == {"insurance", "language", "religion", "marital_status", "ethnicity"}
    assert demo.titles["diagnosis"]["4280"] == "CHF NOS"  # MIMIC-III short titles by default
    assert demo.titles["drug"]["N02B"] == "other analgesics and antipyretics"
    assert 0 < demo.meta["summary"]["ddi_rate_ground_truth"] < 0.2


def test_min_visits_two_keeps_the_papers_cohort(tmp_path):
    bundle = load_bundle("mimic3-demo", data_dir=DEMO, resources=MEDKB, overrides={"min_visits": "2"},
                         cache_dir=tmp_path)
    assert all(len(p.visits) >= 2 for p in bundle.patients)
    assert len(bundle.patients) == bundle.meta["counts"]["patients_after_min_visits"] < 82


def test_cli_prepare_and_run_end_to_end(tmp_path):
    runner = CliRunner()
    common = ["--dataset", "mimic3-demo", "--data-dir", str(DEMO), "--resources", str(MEDKB)]
    out = runner.invoke(app, ["prepare", *common, "--cache-dir", str(tmp_path / "cache")])
    assert out.exit_code == 0, out.output
    assert "71.9% (715/995)" in out.output
    out = runner.invoke(app, ["run", "--model", "logreg", *common, "--set", "epochs=2",
                              "--results-dir", str(tmp_path / "results")],
                        env={"MEDREC_CACHE": str(tmp_path / "cache")})
    assert out.exit_code == 0, out.output
    assert list((tmp_path / "results" / "mimic3-demo" / "logreg").glob("*/run.json"))
