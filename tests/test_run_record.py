"""run.json as a typed record with a committed JSON Schema, its version policy, and the version stamp of a
saved model's config.json (bench.run_record, bench.file_versions, bench.results.read_run, bench.model_base)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

import bench
from bench.cli import app
from bench.errors import UserError
from bench.file_versions import version_problem
from bench.registry import REPO_ROOT
from bench.results import read_predictions, read_run, read_runs
from bench.run_record import SCHEMA_PATH, SCHEMA_VERSION, RunRecord, json_schema, schema_text
from tests.conftest import one_line_error

runner = CliRunner()
COMMITTED_RUNS = sorted((REPO_ROOT / "results").rglob("run.json"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    """A validator of the committed docs/run.schema.json."""
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(validator: jsonschema.Draft202012Validator, record: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(record)]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """Two quick `bench run`s on synthetic-small (popular, logreg with its smoke options); the results folder."""
    from bench.registry import model_class

    folder = tmp_path_factory.mktemp("results")
    for model in ("popular", "logreg"):
        sets = [arg for key, value in model_class(model).smoke_options.items() for arg in ("--set", f"{key}={value}")]
        out = runner.invoke(app, ["run", "--model", model, "--dataset", "synthetic-small",
                                  "--results-dir", str(folder), *sets])
        assert out.exit_code == 0, out.output
    return folder


def test_committed_schema_is_the_one_generated_from_the_types():
    assert SCHEMA_PATH.read_text() == schema_text(), "docs/run.schema.json is stale: run `python -m bench.run_record`"
    assert json_schema()["properties"]["schema_version"]["maximum"] == SCHEMA_VERSION


def test_the_repository_has_committed_runs():
    assert len(COMMITTED_RUNS) >= 10  # results/reference/synthetic/*: every model of the benchmark


@pytest.mark.parametrize("path", COMMITTED_RUNS, ids=lambda p: str(p.relative_to(REPO_ROOT / "results").parent))
def test_every_committed_run_validates_and_loads(validator, path):
    record = read_run(path)
    assert problems(validator, record) == []


def test_a_new_run_validates_with_every_field_of_the_record(validator, fresh):
    records = [read_run(path) for path in sorted(fresh.glob("*/*/*/run.json"))]
    assert [r["model"]["name"] for r in records] == ["logreg", "popular"]
    for record in records:
        assert problems(validator, record) == []
        # the runner writes every field the type declares (the optional ones are optional for older runs)
        assert list(record) == list(RunRecord.__annotations__)
        assert record["schema_version"] == SCHEMA_VERSION
    assert [r["_path"] for r in read_runs(fresh)] == [str(p.parent) for p in sorted(fresh.glob("*/*/*/run.json"))]


def test_the_schema_refuses_unknown_missing_and_mistyped_fields(validator):
    record = json.loads(COMMITTED_RUNS[0].read_text())
    assert problems(validator, record) == []
    del record["seed"]
    record["timing"]["latency_ms"] = 1.0
    record["metrics"]["all"]["jaccard"]["meen"] = 0.5
    record["metrics"]["all"]["n"] = "600"
    record["schema_version"] = SCHEMA_VERSION + 1
    found = problems(validator, record)
    for fragment in ("'seed' is a required property", "'latency_ms' was unexpected", "'meen' was unexpected",
                     "metrics/all/n: '600' is not of type 'integer'", "schema_version: "):
        assert any(fragment in line for line in found), (fragment, found)
    assert len(found) == 5


def _copy_run(tmp_path: Path, change: dict[str, Any], source: Path = COMMITTED_RUNS[0]) -> Path:
    """A results folder holding the run `source` with `change` applied (None: key removed); its run.json."""
    record = json.loads(source.read_text()) | change
    record = {k: v for k, v in record.items() if v is not None}
    path = tmp_path / "results" / "synthetic" / record["model"]["name"] / record["run_id"] / "run.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("version,fragment", [
    (SCHEMA_VERSION + 1, f"run.json schema_version {SCHEMA_VERSION + 1} is newer than medrec-bench "
                         f"{bench.__version__} reads (up to {SCHEMA_VERSION}); update medrec-bench"),
    ("1", "run.json schema_version '1' is not a known version"),
    (0, "run.json schema_version 0 is not a known version"),
    (None, "run.json schema_version None is not a known version"),
])
def test_compare_names_the_file_and_a_version_it_cannot_read(tmp_path, version, fragment):
    path = _copy_run(tmp_path, {"schema_version": version})
    out = runner.invoke(app, ["compare", "--results-dir", str(tmp_path / "results")])
    one_line_error(out, str(path), fragment)


def test_older_runs_without_later_fields_still_load(tmp_path, validator, fresh):
    """Fields added within version 1 (resources, prediction_notes, model.hard_predictions, the timing
    fields of timing version 2, fit's training speed) are optional: a new run without them is an older run."""
    [new] = fresh.glob("synthetic-small/logreg/*/run.json")
    path = _copy_run(tmp_path, {"resources": None, "prediction_notes": None}, source=new)
    record = json.loads(path.read_text())
    del record["model"]["hard_predictions"]
    keep = ("fit_seconds", "latency_ms_p50", "latency_ms_p95", "throughput_per_s", "peak_rss_mb", "n_params")
    record["timing"] = {k: v for k, v in record["timing"].items() if k in keep}
    record["fit"] = {k: v for k, v in record["fit"].items() if k not in TRAINING_SPEED}
    path.write_text(json.dumps(record))
    assert problems(validator, read_run(path)) == []
    out = runner.invoke(app, ["compare", "--results-dir", str(tmp_path / "results")])
    assert out.exit_code == 0 and record["model"]["name"] in out.output, out.output


TRAINING_SPEED = ("train_samples", "train_seconds", "valid_seconds", "train_cpu_seconds", "train_samples_per_s",
                  "valid_time_share")


def test_a_new_run_records_how_fast_training_went(fresh):
    """logreg trains by epochs (bench.training.fit_minibatch): samples, seconds and the derived rates;
    popular does not: null."""
    [logreg] = [read_run(p) for p in fresh.glob("synthetic-small/logreg/*/run.json")]
    fit = logreg["fit"]
    assert fit["train_samples"] == logreg["dataset"]["n_train"] * fit["epochs"]
    assert fit["train_seconds"] > 0 and fit["valid_seconds"] > 0 and fit["train_cpu_seconds"] > 0
    assert fit["train_samples_per_s"] == pytest.approx(fit["train_samples"] / fit["train_seconds"])
    assert 0 <= fit["valid_time_share"] <= 1
    assert fit["valid_time_share"] == pytest.approx(fit["valid_seconds"] / (fit["train_seconds"] + fit["valid_seconds"]))
    assert fit["train_seconds"] + fit["valid_seconds"] <= logreg["timing"]["fit_seconds"]
    [popular] = [read_run(p) for p in fresh.glob("synthetic-small/popular/*/run.json")]
    assert {k: popular["fit"][k] for k in TRAINING_SPEED} == dict.fromkeys(TRAINING_SPEED)


@pytest.mark.parametrize("fmt", ["table", "md", "csv", "latex"])
def test_compare_shows_training_samples_per_s_and_na_for_older_runs(fresh, fmt):
    """The committed reference runs were recorded before fit.train_samples_per_s: n/a (CSV: empty)."""
    out = runner.invoke(app, ["compare", "--results-dir", str(fresh), "--reference", "--format", fmt])
    assert out.exit_code == 0, out.output
    [logreg] = [read_run(p) for p in fresh.glob("synthetic-small/logreg/*/run.json")]
    speed = logreg["fit"]["train_samples_per_s"]
    if fmt == "csv":
        rows = {(r["dataset"], r["model"], r["source"]): r for r in csv.DictReader(io.StringIO(out.output))}
        assert float(rows["synthetic-small", "logreg", "user"]["train_samples_per_s"]) == pytest.approx(speed)
        assert rows["synthetic-v1", "logreg", "reference"]["train_samples_per_s"] == ""
        return
    assert "train samples/s" in out.output
    lines = out.output.splitlines()
    assert any(f"{speed:,.0f}" in line for line in lines if "synthetic-small" in line and "logreg" in line), out.output
    assert any("n/a" in line for line in lines if "logreg (ref)" in line), out.output  # logreg has every other value


@pytest.mark.parametrize("found,ok", [(1, True), (2, True), (3, False), (0, False), (True, False), ("2", False),
                                      (None, False), (2.0, False)])
def test_version_problem(found, ok):
    assert (version_problem(found, 2, "x") is None) == ok


def test_package_version_matches_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert bench.__version__ == project["version"]


# --- a saved model's config.json --------------------------------------------------------------------

def _saved_logreg(fresh: Path, small_bundle) -> tuple[Path, Any, Any]:
    """The logreg run's model folder, its class, and resources (with the test samples) to load it with."""
    from bench.data import make_samples
    from bench.loading import build_resources
    from bench.registry import model_class
    from bench.splits import split_patients

    [folder] = fresh.glob("synthetic-small/logreg/*")
    cls = model_class("logreg")
    split = split_patients(small_bundle.patients, "random", seed=0)  # bench run's defaults
    return folder, cls, (build_resources(small_bundle, split.train, cls.needs), make_samples(split.test, "last"))


def test_saved_model_config_is_stamped_and_loads_back(fresh, small_bundle):
    folder, cls, (resources, test) = _saved_logreg(fresh, small_bundle)
    meta = json.loads((folder / "model" / "config.json").read_text())
    assert meta["schema_version"] == 1 and meta["package_version"] == bench.__version__
    assert meta["model"] == "logreg"
    scores = cls.load(folder / "model", resources).predict_proba(test)
    np.testing.assert_array_equal(scores, read_predictions(folder).scores)


def test_unstamped_config_loads_and_a_newer_one_is_refused_in_one_line(fresh, small_bundle, tmp_path):
    folder, cls, (resources, test) = _saved_logreg(fresh, small_bundle)
    model_dir = tmp_path / "model"
    shutil.copytree(folder / "model", model_dir)
    meta = json.loads((model_dir / "config.json").read_text())
    old = {k: v for k, v in meta.items() if k not in ("schema_version", "package_version")}
    (model_dir / "config.json").write_text(json.dumps(old))  # as written before the stamp
    np.testing.assert_array_equal(cls.load(model_dir, resources).predict_proba(test), read_predictions(folder).scores)
    (model_dir / "config.json").write_text(json.dumps(meta | {"schema_version": 2}))
    with pytest.raises(UserError) as caught:
        cls.load(model_dir, resources)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(model_dir / "config.json"))
    assert "saved-model config.json schema_version 2 is newer than medrec-bench" in message
