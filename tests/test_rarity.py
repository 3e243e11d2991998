"""`bench rarity`: training code counts, bins, and per-bin scores of stored runs against a hand computation."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data import Patient, Visit
from bench.errors import UserError
from bench.loading import load_bundle
from bench.progress import Progress
from bench.analysis.rarity import bin_labels, parse_edges
from bench.groups import NO_CODES, rarest_code_count, training_code_counts
from bench.results import Predictions, read_predictions, write_predictions, write_run
from bench.runner import RunOptions, run
from bench.splits import split_patients
from bench.timing import TimingOptions

runner = CliRunner()
FAST = TimingOptions(latency_samples=3, batch_size=16, min_seconds=0.0)


def _visit(*dx: str) -> Visit:
    return Visit(admission_id=0, diagnoses=dx, procedures=(), drugs=("A01",))


def test_counts_visits_not_mentions_and_takes_the_rarest_code():
    train = [Patient(1, (_visit("a", "b", "a"), _visit("a"))), Patient(2, (_visit("b", "c"),))]
    counts = training_code_counts(train)
    assert counts == Counter({"a": 2, "b": 2, "c": 1})
    assert rarest_code_count(("a", "c"), counts) == 1
    assert rarest_code_count(("a", "zzz"), counts) == 0       # unseen in training
    assert rarest_code_count((), counts) == NO_CODES           # no codes: nothing rare


def test_bins_and_edges():
    assert bin_labels((1, 5, 20)) == ["0 (unseen)", "1-4", "5-19", "20+"]
    assert bin_labels((2, 3)) == ["0-1", "2", "3+"]
    for bad in ("", "0,5", "5,5", "5,2", "a,b"):
        with pytest.raises(UserError, match="--edges"):
            parse_edges(bad)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """popular on synthetic-small plus `oracle`, a run with its exact targets as predictions."""
    folder = tmp_path_factory.mktemp("results")
    record, run_folder = run(RunOptions(model="popular", dataset="synthetic-small", results_dir=folder, timing=FAST,
                                        save_model=False), Progress())
    preds = read_predictions(run_folder)
    oracle = run_folder.parent.parent / "oracle" / "run-oracle"
    write_predictions(oracle, Predictions(target=preds.target, predicted=preds.target,
                                          scores=preds.target.astype(np.float32), patient_id=preds.patient_id,
                                          visit_index=preds.visit_index, drugs=preds.drugs))
    write_run(oracle, {**record, "run_id": "run-oracle", "created_at": "2000-01-01",
                       "model": {"name": "oracle", "config": {}}})
    return folder


def _rows(output: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(output)))


def test_per_bin_scores_match_a_hand_computation(results):
    out = runner.invoke(app, ["rarity", "--dataset", "synthetic-small", "--results-dir", str(results),
                              "--edges", "5,50", "--threshold", "0.2", "-f", "csv"])
    assert out.exit_code == 0, out.output
    rows = _rows(out.output)
    assert {r["model"] for r in rows} == {"oracle", "popular"}
    assert all(float(r["jaccard"]) == 1.0 and float(r["prauc"]) == 1.0 for r in rows if r["model"] == "oracle")

    bundle = load_bundle("synthetic-small")
    split = split_patients(bundle.patients, "random", 0, "8:1:1")
    counts = training_code_counts(split.train)
    [popular_dir] = results.glob("synthetic-small/popular/*")
    preds = read_predictions(popular_dir)
    by_key = {(p.id, i): v for p in split.test for i, v in enumerate(p.visits)}
    rarest = np.array([rarest_code_count(by_key[k].diagnoses, counts)
                       for k in zip(preds.patient_id.tolist(), preds.visit_index.tolist())])
    predicted = preds.scores >= 0.2
    inter = (predicted & preds.target).sum(1)
    jaccard = inter / (predicted | preds.target).sum(1)
    popular = {r["bin"]: r for r in rows if r["model"] == "popular"}
    assert sum(int(r["n"]) for r in popular.values()) == len(preds.target)
    for label, mask in (("0-4", rarest < 5), ("5-49", (rarest >= 5) & (rarest < 50)), ("50+", rarest >= 50)):
        if not mask.any():
            assert label not in popular           # empty bins are left out
            continue
        assert int(popular[label]["n"]) == mask.sum()
        assert float(popular[label]["jaccard"]) == pytest.approx(jaccard[mask].mean())


def test_another_dataset_version_is_refused_in_one_line(results, tmp_path):
    [popular_dir] = results.glob("synthetic-small/popular/*")
    copy = tmp_path / "synthetic-small" / "popular" / "run-x"
    copy.mkdir(parents=True)
    for f in popular_dir.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    record = json.loads((copy / "run.json").read_text())
    record["dataset"]["hash"] = "0000"
    (copy / "run.json").write_text(json.dumps(record))
    out = runner.invoke(app, ["rarity", "--dataset", "synthetic-small", "--results-dir", str(tmp_path)])
    assert out.exit_code != 0
    assert "another version of synthetic-small" in out.output and "Traceback" not in out.output
    out = runner.invoke(app, ["rarity", "--dataset", "synthetic-small", "--results-dir", str(results),
                              "--run", "no-such-run"])
    assert out.exit_code != 0 and "--run no-such-run" in out.output
    record["dataset"]["hash"] = json.loads((popular_dir / "run.json").read_text())["dataset"]["hash"]
    (copy / "run.json").write_text(json.dumps(record))
    (copy / "predictions.safetensors").write_bytes(b"not a safetensors file")
    out = runner.invoke(app, ["rarity", "--dataset", "synthetic-small", "--results-dir", str(tmp_path)])
    assert out.exit_code == 2 and "cannot read the run's predictions" in out.output and "Traceback" not in out.output
