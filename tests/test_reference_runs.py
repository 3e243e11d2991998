"""The committed reference runs (results/reference/): every registered model has one, on the current
cohort (`synthetic`, every model that needs no LLM over three training seeds) or, for the LLM models
not yet re-run, on `synthetic-v1`; they stay readable and apart from a user's runs
(bench.analysis.reference)."""

from __future__ import annotations

from collections import defaultdict

from bench.analysis.reference import default_reference_dir, reference_runs
from bench.registry import MODELS
from bench.results import latest_runs, read_predictions, read_runs
from tests.conftest import REPO_ROOT

REFERENCE = REPO_ROOT / "results" / "reference"
WITHOUT_LLM = ("oracle", "popular", "logreg", "logreg-current", "gamenet", "safedrug", "molerec",
               "leader-student-nokd", "retain", "micron")
# one seed so far: COGNet (about an hour of fitting per seed on 2 cores, beam-search validation every
# epoch) and the LEADER teacher (a 60-minute budget; its students of five seeds share it: results/leader-claim/)
ONE_SEED = ("cognet", "leader-teacher")


def test_every_registered_model_has_a_readable_reference_run():
    assert default_reference_dir() == REFERENCE
    runs = read_runs(REFERENCE)
    covered = {r["model"]["name"] for r in runs if r["dataset"]["name"] in ("synthetic", "synthetic-v1")}
    assert covered == set(MODELS)
    for record in latest_runs(runs):
        assert record["dataset"]["n_test"] == 600
        folder = REFERENCE / record["dataset"]["name"] / record["model"]["name"] / record["run_id"]
        predictions = read_predictions(folder)
        assert predictions.target.shape == (600, record["dataset"]["n_drugs"])
        assert predictions.ddi_adj is None or predictions.ddi_adj.shape[0] == record["dataset"]["n_drugs"]


def test_models_without_an_llm_have_three_training_seeds_on_the_current_cohort():
    seeds = defaultdict(set)
    for record in read_runs(REFERENCE):
        if record["dataset"]["name"] == "synthetic":
            assert record["split_seed"] == 0
            assert record["seed_group"] is not None or record["model"]["name"] in ONE_SEED
            seeds[record["model"]["name"]].add(record["seed"])
    assert {m: seeds[m] for m in WITHOUT_LLM} == {m: {0, 1, 2} for m in WITHOUT_LLM}
    assert all(0 in seeds[m] for m in ONE_SEED)


def test_reference_runs_are_not_a_users_runs():
    assert not [r for r in read_runs(REPO_ROOT / "results") if "reference" in r["_path"]]
    labelled = reference_runs(REFERENCE, "synthetic-v1") + reference_runs(REFERENCE, "synthetic")
    assert {r["model"]["name"] for r in labelled} == {f"{m} (ref)" for m in MODELS}
