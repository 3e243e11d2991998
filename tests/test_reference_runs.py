"""The committed reference runs (results/reference/synthetic/) cover every registered model, stay
readable, and stay apart from a user's runs (bench.analysis.reference)."""

from __future__ import annotations

from bench.analysis.reference import default_reference_dir, reference_runs
from bench.registry import MODELS
from bench.results import latest_runs, read_predictions, read_runs
from tests.conftest import REPO_ROOT

REFERENCE = REPO_ROOT / "results" / "reference"


def test_every_registered_model_has_a_readable_reference_run_on_synthetic():
    assert default_reference_dir() == REFERENCE
    runs = latest_runs(read_runs(REFERENCE), "synthetic-v1")
    assert sorted(r["model"]["name"] for r in runs) == sorted(MODELS)
    for record in runs:
        assert record["seed"] == 0 and record["dataset"]["n_test"] == 600
        folder = REFERENCE / "synthetic-v1" / record["model"]["name"] / record["run_id"]
        predictions = read_predictions(folder)
        assert predictions.target.shape == (600, record["dataset"]["n_drugs"])
        assert predictions.ddi_adj is None or predictions.ddi_adj.shape[0] == record["dataset"]["n_drugs"]


def test_reference_runs_are_not_a_users_runs():
    assert not [r for r in read_runs(REPO_ROOT / "results") if "reference" in r["_path"]]
    labelled = reference_runs(REFERENCE, "synthetic-v1")
    assert sorted(r["model"]["name"] for r in labelled) == sorted(f"{m} (ref)" for m in MODELS)
