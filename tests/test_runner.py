"""The runner end to end: protocols, determinism, atomic outputs, and the results store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.errors import UserError
from bench.progress import Progress
from bench.results import latest_runs, read_predictions, read_runs
from bench.runner import RunOptions, run
from bench.timing import TimingOptions

FAST = TimingOptions(latency_samples=5, batch_size=16, min_seconds=0.0)


def quick(tmp_path, **kwargs) -> RunOptions:
    return RunOptions(dataset="synthetic-small", results_dir=tmp_path, timing=FAST, **kwargs)


def test_same_seed_same_predictions_other_seed_differs(tmp_path):
    scores = []
    for seed in (3, 3, 4):
        record, folder = run(quick(tmp_path, model="logreg", seed=seed, overrides={"epochs": "2"}), Progress())
        scores.append(read_predictions(folder).scores)
    np.testing.assert_array_equal(scores[0], scores[1])
    assert scores[0].shape != scores[2].shape or not np.array_equal(scores[0], scores[2])


def test_every_protocol_predicts_every_test_visit(tmp_path):
    last, _ = run(quick(tmp_path, model="popular"), Progress())
    every, folder = run(quick(tmp_path, model="popular", protocol="every"), Progress())
    assert every["dataset"]["n_test"] > last["dataset"]["n_test"] == last["split"]["patients"]["test"]
    predictions = read_predictions(folder)
    assert len(predictions.patient_id) == every["dataset"]["n_test"]
    assert set(predictions.visit_index) > {0}
    entry = every["metrics"]
    assert entry["single_visit"]["n"] + entry["multi_visit"]["n"] == entry["all"]["n"]


def test_train_protocol_last_gives_one_training_sample_per_training_patient(tmp_path, small_bundle):
    from bench.data import make_samples
    from bench.splits import split_patients

    last, _ = run(quick(tmp_path, model="popular", train_protocol="last"), Progress())
    every, _ = run(quick(tmp_path, model="popular"), Progress())
    train = split_patients(small_bundle.patients, "random", 0, "8:1:1").train
    assert last["dataset"]["n_train"] == last["split"]["patients"]["train"] == len(train)
    assert every["dataset"]["n_train"] == len(make_samples(train, "every")) > len(train)
    assert (last["train_protocol"], every["train_protocol"]) == ("last", "every")
    assert last["dataset"]["n_test"] == every["dataset"]["n_test"]  # evaluation follows --protocol only
    with pytest.raises(UserError, match="--train-protocol must be one of last, every, got 'all'"):
        run(quick(tmp_path, model="popular", train_protocol="all"), Progress())


def test_latest_run_per_model_and_dataset(tmp_path):
    first, _ = run(quick(tmp_path, model="random"), Progress())
    second, _ = run(quick(tmp_path, model="random", seed=1), Progress())
    runs = read_runs(tmp_path)
    assert len(runs) == 2
    [latest] = latest_runs(runs)
    assert latest["run_id"] == max((first, second), key=lambda r: r["created_at"])["run_id"]
    assert json.loads((tmp_path / "synthetic-small" / "random" / first["run_id"] / "run.json").read_text())["seed"] == 0


def test_popular_picks_k_on_validation(tmp_path):
    record, _ = run(quick(tmp_path, model="popular"), Progress())
    assert record["model"]["config"]["k"] >= 1
    assert record["fit"]["notes"]["k"] == record["model"]["config"]["k"]
    assert record["metrics"]["all"]["avg_drugs"]["point"] == pytest.approx(record["model"]["config"]["k"])


def test_predictions_store_the_dataset_ddi_graph(tmp_path, small_bundle):
    """`bench compare` reads the DDI graph from the predictions: the one the run's DDI rates used."""
    from bench import metrics

    record, folder = run(quick(tmp_path, model="popular", save_model=False), Progress())
    predictions = read_predictions(folder)
    expected = small_bundle.ddi_matrix()
    assert predictions.ddi_adj is not None and predictions.ddi_adj.dtype == bool and expected.any()
    np.testing.assert_array_equal(predictions.ddi_adj, expected)
    assert predictions.drugs == small_bundle.drug_vocab.tokens
    pooled = metrics.aggregate(metrics.per_sample_metrics(predictions.target, predictions.predicted,
                                                          predictions.scores, predictions.ddi_adj))
    assert pooled["ddi_rate"] == pytest.approx(record["metrics"]["all"]["ddi_rate"]["point"])


def test_rescoring_a_stored_run_equals_running_at_that_threshold(tmp_path):
    from bench.analysis.rescore import rescore

    for threshold in (0.5, 0.3):
        run(RunOptions(model="logreg", dataset="synthetic-small", results_dir=tmp_path / str(threshold),
                       overrides={"epochs": "2"}, threshold=threshold, protocol="every", timing=FAST,
                       save_model=False), Progress())
    [at_half], [at_03] = (read_runs(tmp_path / t) for t in ("0.5", "0.3"))
    rescored = rescore(at_half, 0.3)
    assert rescored["threshold"] == 0.3 and rescored["rescored_from"] == 0.5
    assert rescored["metrics"] == at_03["metrics"]
    assert rescored["metrics"]["all"]["jaccard"] != at_half["metrics"]["all"]["jaccard"]
    assert rescore(at_03, 0.3) is at_03


def test_a_runs_peak_memory_is_its_own(tmp_path):
    """Runs sharing a process (bench ablate) must not inherit an earlier, bigger peak."""
    from bench.timing import peak_rss_mb, reset_peak_rss

    if not reset_peak_rss():
        pytest.skip("this platform cannot reset the peak resident size")
    ballast = np.ones(150 * 2**20 // 8)                  # 150 MB resident
    high = peak_rss_mb()
    del ballast
    record, _ = run(quick(tmp_path, model="popular"), Progress())
    assert record["timing"]["peak_rss_scope"] == "run"
    assert record["timing"]["peak_rss_mb"] < high - 100
