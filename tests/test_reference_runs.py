"""The committed reference runs (results/synthetic/) cover every registered model and stay readable."""

from __future__ import annotations

from bench.registry import MODELS
from bench.results import latest_runs, read_predictions, read_runs
from tests.conftest import REPO_ROOT


def test_every_registered_model_has_a_readable_reference_run_on_synthetic():
    runs = latest_runs(read_runs(REPO_ROOT / "results"), "synthetic")
    assert sorted(r["model"]["name"] for r in runs) == sorted(MODELS)
    for record in runs:
        assert record["seed"] == 0 and record["dataset"]["n_test"] == 600
        folder = REPO_ROOT / "results" / "synthetic" / record["model"]["name"] / record["run_id"]
        predictions = read_predictions(folder)
        assert predictions.target.shape == (600, record["dataset"]["n_drugs"])
        assert predictions.ddi_adj is None or predictions.ddi_adj.shape[0] == record["dataset"]["n_drugs"]
