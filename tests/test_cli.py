"""The `bench` CLI through Typer's CliRunner: ls, run, compare and the one-line user errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bench.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Two quick runs on synthetic-small, shared by the compare tests."""
    folder = tmp_path_factory.mktemp("results")
    for model, extra in (("popular", []), ("logreg", ["--set", "epochs=2"])):
        out = runner.invoke(app, ["run", "--model", model, "--dataset", "synthetic-small",
                                  "--results-dir", str(folder), *extra])
        assert out.exit_code == 0, out.output
    return folder


@pytest.mark.parametrize("kind,expected", [("models", "logreg"), ("datasets", "synthetic-small"),
                                           ("metrics", "prauc")])
def test_ls(kind, expected):
    out = runner.invoke(app, ["ls", kind])
    assert out.exit_code == 0 and expected in out.output


def test_ls_imports_no_heavy_library():
    code = ("import sys; from bench.cli import app; from typer.testing import CliRunner; "
            "[CliRunner().invoke(app, ['ls', k]) for k in ('models', 'datasets', 'metrics')]; "
            "heavy = [m for m in ('torch', 'torch_geometric', 'transformers') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_run_writes_a_complete_run_json(results):
    [run_json] = results.glob("synthetic-small/logreg/*/run.json")
    record = json.loads(run_json.read_text())
    for key in ("schema_version", "run_id", "created_at", "git", "versions", "model", "dataset", "seed",
                "threshold", "metrics", "timing"):
        assert key in record
    assert set(record["git"]) == {"sha", "dirty"}
    assert record["model"]["config"]["epochs"] == 2
    assert {"name", "hash", "n_train", "n_valid", "n_test"} <= set(record["dataset"])
    for group in ("all", "single_visit", "multi_visit"):
        entry = record["metrics"][group]
        assert entry["n"] > 0
        for metric in ("jaccard", "f1", "prauc", "ddi_rate", "avg_drugs"):
            assert set(entry[metric]) >= {"mean", "std"}
    assert record["metrics"]["all"]["n"] == record["dataset"]["n_test"]
    for key in ("fit_seconds", "peak_rss_mb", "n_params", "timer_resolution_ns", "throughput_batches"):
        assert record["timing"][key] is not None
    for key, flag in (("latency_ms_p50", "latency_below_resolution"), ("throughput_per_s", "throughput_below_resolution")):
        assert (record["timing"][key] is None) == record["timing"][flag]
    assert (run_json.parent / "predictions.safetensors").is_file()
    assert not list(run_json.parent.glob(".*.tmp"))


@pytest.mark.parametrize("fmt", ["table", "md", "csv", "latex"])
def test_compare_formats(results, fmt):
    out = runner.invoke(app, ["compare", "--results-dir", str(results), "--format", fmt])
    assert out.exit_code == 0, out.output
    assert "logreg" in out.output and "popular" in out.output


def test_compare_csv_has_single_and_multi_visit_columns(results):
    out = runner.invoke(app, ["compare", "--results-dir", str(results), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert {r["model"] for r in rows} == {"logreg", "popular"}
    assert all(float(r["jaccard_single"]) >= 0 and float(r["prauc_multi"]) >= 0 for r in rows)
    md = runner.invoke(app, ["compare", "--results-dir", str(results), "--format", "md"]).output
    assert "**" in md  # the best value of each column is marked


@pytest.mark.parametrize("args,message", [
    (["run", "--model", "logrg"], "unknown model 'logrg'; did you mean: logreg"),
    (["run", "--model", "logreg", "--dataset", "synthetc"], "did you mean: synthetic"),
    (["run", "--model", "logreg", "--set", "lrr=1"], "unknown option 'lrr' for model logreg; valid fields: lr"),
    (["run", "--model", "logreg", "--set", "epochs=many"], "expects int"),
    (["run", "--model", "logreg", "--threshold", "2"], "--threshold"),
    (["run", "--model", "logreg", "--protocol", "first"], "--protocol must be one of last, every"),
    (["compare", "--results-dir", "/nonexistent/folder"], "no such folder"),
    (["compare", "--format", "xml"], "--format must be one of"),
])
def test_user_errors_are_one_line(args, message, tmp_path):
    out = runner.invoke(app, [*args, *(["--results-dir", str(tmp_path)] if args[0] == "run" else [])])
    assert out.exit_code == 2
    assert message in out.output
    assert "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_best_ddi_ignores_models_that_predict_almost_nothing():
    from bench.analysis.compare import build_rows, columns

    def record(model, ddi, drugs):
        metrics = {"ddi_rate": {"mean": ddi, "std": 0.0}, "avg_drugs": {"mean": drugs, "std": 0.0}}
        return {"model": {"name": model}, "dataset": {"name": "d"}, "metrics": {"all": metrics}, "timing": {}}

    rows = build_rows([record("silent", 0.0, 0.02), record("a", 0.05, 10.0), record("b", 0.07, 11.0)])
    ddi = [c.key for c in columns()].index("ddi_rate")
    assert [cells[ddi].best for _, cells in rows] == [False, True, False]
