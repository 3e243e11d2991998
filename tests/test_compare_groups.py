"""Evaluation groups end to end: a run on a tagged copy of synthetic-small stores every group in run.json
(schema-valid) and in its predictions; `bench compare --groups` renders them; runs written before the
groups existed still compare and re-score."""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

from bench.analysis.group_compare import group_tables
from bench.analysis.rescore import rescore
from bench.cli import app
from bench.data import Patient, make_samples
from bench.groups import rarest_code_count, training_code_counts
from bench.progress import Progress
from bench.registry import REPO_ROOT
from bench.results import read_predictions, read_run, read_runs, write_predictions, write_run
from bench.run_record import SCHEMA_PATH
from bench.runner import RunOptions, run_model
from bench.splits import split_patients
from bench.timing import TimingOptions

runner = CliRunner()
FAST = TimingOptions(latency_samples=3, batch_size=16, min_seconds=0.0)
GROUPS = ["all", "single_visit", "multi_visit", "rare_code", "unseen_code", "avoidance", "carry_over", "interaction"]


def _tagged(patient: Patient, train_ids: set[int]) -> Patient:
    """Tags by admission id; "avoidance" only on training visits, so its test group is empty."""
    visits = []
    for visit in patient.visits:
        tags = {"interaction"} if visit.admission_id % 3 == 0 else set()
        tags |= {"carry_over"} if visit.admission_id % 2 == 0 else set()
        tags |= {"avoidance"} if patient.id in train_ids else set()
        visits.append(replace(visit, tags=frozenset(tags)))
    return replace(patient, visits=tuple(visits))


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, small_bundle):
    """(results folder, tagged bundle): popular and random on synthetic-small with tagged visits."""
    split = split_patients(small_bundle.patients, "random", 0)
    train_ids = {p.id for p in split.train}
    bundle = replace(small_bundle, patients=tuple(_tagged(p, train_ids) for p in small_bundle.patients))
    folder = tmp_path_factory.mktemp("results")
    for model in ("popular", "random"):
        run_model(RunOptions(model=model, dataset="synthetic-small", results_dir=folder, timing=FAST,
                             save_model=False), Progress(), bundle=bundle)
    return folder, bundle


def _run(folder: Path, model: str) -> dict:
    [record] = [r for r in read_runs(folder) if r["model"]["name"] == model]
    return record


def test_run_json_holds_every_group_with_hand_computed_sizes(tagged):
    folder, bundle = tagged
    record = _run(folder, "popular")
    assert list(record["metrics"]) == GROUPS
    split = split_patients(bundle.patients, "random", 0)
    test = make_samples(split.test, "last")
    counts = training_code_counts(split.train)
    rarest = np.array([rarest_code_count(s.current.diagnoses, counts) for s in test])
    expected = {"all": len(test), "single_visit": sum(s.index == 0 for s in test),
                "multi_visit": sum(s.index > 0 for s in test), "rare_code": int(((rarest >= 1) & (rarest <= 4)).sum()),
                "unseen_code": int((rarest == 0).sum()), "avoidance": 0,
                "carry_over": sum(s.current.admission_id % 2 == 0 for s in test),
                "interaction": sum(s.current.admission_id % 3 == 0 for s in test)}
    assert {g: record["metrics"][g]["n"] for g in GROUPS} == expected
    assert expected["interaction"] > 0 and expected["carry_over"] > 0 and expected["rare_code"] > 0
    assert all(v == {"mean": None, "std": None, "point": None}
               for k, v in record["metrics"]["avoidance"].items() if k != "n")
    preds = read_predictions(Path(record["_path"]))
    assert list(preds.groups) == GROUPS
    np.testing.assert_array_equal(preds.groups["interaction"], [s.current.admission_id % 3 == 0 for s in test])
    np.testing.assert_array_equal(preds.groups["rare_code"], (rarest >= 1) & (rarest <= 4))
    # a group's metric is the metric on its samples alone
    mask = preds.groups["carry_over"]
    jaccard = (preds.predicted & preds.target).sum(1) / (preds.predicted | preds.target).sum(1)
    assert record["metrics"]["carry_over"]["jaccard"]["point"] == pytest.approx(jaccard[mask].mean())


def test_run_json_with_groups_validates_against_the_schema(tagged):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    for path in tagged[0].glob("*/*/*/run.json"):
        assert [e.message for e in validator.iter_errors(read_run(path))] == []


def test_rescoring_keeps_every_group_and_old_files_keep_the_visit_groups(tagged, tmp_path):
    record = _run(tagged[0], "popular")
    new = rescore(record, 0.3)
    assert list(new["metrics"]) == GROUPS and new["metrics"] != record["metrics"]
    old_folder = tmp_path / "old"
    shutil.copytree(record["_path"], old_folder)
    write_predictions(old_folder, replace(read_predictions(old_folder), groups=None))
    old = rescore({**record, "_path": str(old_folder)}, 0.3)
    assert list(old["metrics"]) == GROUPS[:3]
    assert old["metrics"] == {g: new["metrics"][g] for g in GROUPS[:3]}


def _csv(output: str) -> list[dict[str, str]]:
    """The --groups block of a CSV output (the one with a `group` column)."""
    [block] = [b for b in output.split("\n\n") if b.startswith("dataset,model,source,run_id,group,")]
    return list(csv.DictReader(io.StringIO(block)))


def test_compare_groups_csv_has_a_row_per_run_and_group(tagged):
    folder, _ = tagged
    out = runner.invoke(app, ["compare", "--results-dir", str(folder), "--groups", "-f", "csv"])
    assert out.exit_code == 0, out.output
    rows = _csv(out.output)
    assert [(r["model"], r["group"]) for r in rows] == [(m, g) for m in ("popular", "random") for g in GROUPS]
    for row in rows:
        entry = _run(folder, row["model"])["metrics"][row["group"]]
        assert int(row["n"]) == entry["n"]
        if entry["n"] == 0:
            assert row["jaccard"] == row["prauc"] == row["ddi_rate"] == ""
        else:
            assert float(row["jaccard"]) == pytest.approx(entry["jaccard"]["mean"])
            assert float(row["f1_std"]) == pytest.approx(entry["f1"]["std"])


@pytest.mark.parametrize("fmt", ["table", "md", "latex"])
def test_compare_groups_shows_each_group_with_its_size(tagged, fmt):
    folder, _ = tagged
    record = _run(folder, "popular")
    out = runner.invoke(app, ["compare", "--results-dir", str(folder), "--groups", "-f", fmt],
                        env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    n = record["metrics"]["interaction"]["n"]
    if fmt == "table":   # the size sits under the group's name
        assert f"(n={n})" in out.output and "interaction" in out.output and "carry_over" in out.output
    else:
        assert f"interaction (n={n})" in out.output and "avoidance (n=0)" in out.output
        assert ("carry\\_over" if fmt == "latex" else "carry_over") in out.output
    for label in ("Jaccard", "F1", "PRAUC", "DDI"):
        assert label in out.output
    plain = runner.invoke(app, ["compare", "--results-dir", str(folder), "-f", fmt], env={"COLUMNS": "250"})
    assert plain.exit_code == 0 and "rare_code" not in plain.output and "evaluation group" not in plain.output


def test_runs_without_the_new_groups_still_compare(tagged, tmp_path):
    """An old run (three groups in run.json, no masks in its predictions) beside a new one: its missing
    groups are n/a, and --threshold re-scores both."""
    folder, _ = tagged
    record = _run(folder, "popular")
    old_dir = tmp_path / "synthetic-small" / "old-popular" / "20000101T000000Z-000000"
    shutil.copytree(record["_path"], old_dir)
    write_predictions(old_dir, replace(read_predictions(old_dir), groups=None))
    old = {k: v for k, v in record.items() if k != "_path"}
    write_run(old_dir, {**old, "model": {**old["model"], "name": "old-popular"},
                        "metrics": {g: old["metrics"][g] for g in GROUPS[:3]}})
    shutil.copytree(record["_path"], tmp_path / "synthetic-small" / "popular" / record["run_id"])
    for extra in ([], ["--threshold", "0.3"]):
        out = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--groups", "-f", "csv", *extra])
        assert out.exit_code == 0, out.output
        rows = _csv(out.output)
        assert [r["group"] for r in rows if r["model"] == "old-popular"] == GROUPS[:3]
        assert [r["group"] for r in rows if r["model"] == "popular"] == GROUPS
    md = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--groups", "-f", "md"]).output
    [old_line] = [line for line in md.splitlines() if line.startswith("| old-popular | Jaccard |")]
    assert old_line.rstrip(" |").endswith("n/a | n/a | n/a | n/a | n/a")   # rare, unseen and the three tags


def test_the_committed_reference_runs_compare_by_group():
    """Written before the groups: three groups each, re-scored from predictions without masks."""
    out = runner.invoke(app, ["compare", "--results-dir", str(REPO_ROOT / "results" / "reference"), "--groups",
                              "-d", "synthetic-v1", "--threshold", "0.3", "-f", "csv"])
    assert out.exit_code == 0, out.output
    rows = _csv(out.output)
    assert len(rows) >= 30 and {r["group"] for r in rows} == {"all", "single_visit", "multi_visit"}


def _record(model: str, metrics: dict) -> dict:
    return {"model": {"name": model}, "dataset": {"name": "d"}, "run_id": model, "metrics": metrics, "timing": {}}


def _entry(n: int, jaccard: float | None, ddi: float = 0.0) -> dict:
    value = lambda x: {"mean": x, "std": 0.0 if x is not None else None, "point": x}   # noqa: E731
    return {"n": n, "jaccard": value(jaccard), "f1": value(jaccard), "prauc": value(jaccard),
            "ddi_rate": value(ddi), "ddi_rate_true": value(ddi), "avg_drugs": value(3.0)}


def test_group_table_sizes_best_values_and_ddi_only_with_interactions():
    runs = [_record("a", {"all": _entry(30, 0.5), "rare_code": _entry(4, 0.2)}),
            _record("b", {"all": _entry(120, 0.4), "rare_code": _entry(5, 0.3), "interaction": _entry(0, None)})]
    [table] = group_tables(runs)
    assert table.groups == ["all", "rare_code", "interaction"]
    assert [table.header(g) for g in table.groups] == ["all (n=30/120)", "rare_code (n=4/5)", "interaction (n=0)"]
    assert [m.name for m in table.metrics] == ["jaccard", "f1", "prauc"]        # every DDI rate is 0: no DDI row
    (_, a), (_, b) = table.rows
    assert [c.best for c in a[0][1]] == [True, False, False] and [c.best for c in b[0][1]] == [False, True, False]
    assert a[0][1][2].value is None and b[0][1][2].value is None               # missing group; empty group
    runs[1]["metrics"]["all"]["ddi_rate"]["point"] = 0.05
    assert "ddi_rate" in [m.name for m in group_tables(runs)[0].metrics]
