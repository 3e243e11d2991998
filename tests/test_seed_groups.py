"""Training seeds (bench.seed_groups, bench run --seeds): parsing, one split for every seed, one run per
seed plus the group's aggregate record, and `bench compare` showing mean ± std over the seeds."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import UserError
from bench.results import read_predictions, read_runs
from bench.run_record import SCHEMA_PATH, SEED_GROUP_SCHEMA_PATH, seed_group_schema_text
from bench.seed_groups import GROUPS_FOLDER, parse_seeds
from tests.conftest import one_line_error

runner = CliRunner()


@pytest.mark.parametrize("text,seeds", [("0,1,2", (0, 1, 2)), ("3", (0, 1, 2)), ("1", (0,)), (" 7, 2 ", (7, 2))])
def test_seeds_parse_as_a_list_or_a_count(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "x", "0", "1,1", "1,,2", "1.5", "2,", "-3", "5000"])
def test_bad_seeds_are_a_user_error(text):
    with pytest.raises(UserError, match=r"^--seeds "):
        parse_seeds(text)
    with pytest.raises(UserError, match="expected an integer >= 0"):
        parse_seeds("-1,2")


@pytest.mark.parametrize("verb", [["run", "--model", "popular"], ["ablate", "--model", "popular"]])
@pytest.mark.parametrize("args,fragment", [
    (["--seeds", "0,0"], "--seeds '0,0': expected a count like 3 (seeds 0, 1, 2) or a comma-separated list"),
    (["--seeds", "two"], "--seeds 'two': expected a count"),
    (["--seed", "1", "--seeds", "3"], "--seed 1 and --seeds 3: give one of them"),
    (["--split-seed", "-1"], "--split-seed -1: expected an integer >= 0"),
])
def test_bad_seed_options_are_one_line(verb, args, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = runner.invoke(app, [*verb, "--dataset", "synthetic-small", *args])
    one_line_error(out, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def groups(tmp_path_factory) -> Path:
    """logreg and popular, each by `bench run --seeds` (3 seeds, split seed 0), on synthetic-small."""
    results = tmp_path_factory.mktemp("results")
    for model, seeds in (("logreg", "0,1,2"), ("popular", "3")):
        out = runner.invoke(app, ["run", "--model", model, "--dataset", "synthetic-small", "--seeds", seeds,
                                  "--results-dir", str(results), "--set" if model == "logreg" else "--threshold",
                                  "epochs=2" if model == "logreg" else "0.5"])
        assert out.exit_code == 0, out.output
        assert "± = std over 3 training seeds (ddof=1)" in out.stdout
    return results


def _members(results: Path, model: str) -> list[dict]:
    return sorted((r for r in read_runs(results) if r["model"]["name"] == model), key=lambda r: r["seed"])


def test_one_run_per_seed_on_one_split_and_the_aggregate_of_their_points(groups):
    logreg = _members(groups, "logreg")
    assert [r["seed"] for r in logreg] == [0, 1, 2]
    assert {r["split_seed"] for r in logreg} == {0}
    assert all(r["uncertainty"] == "test_resampling" for r in logreg)
    group_id = logreg[0]["seed_group"]["id"]
    assert all(r["seed_group"] == {"id": group_id, "seeds": [0, 1, 2]} for r in logreg)
    predictions = [read_predictions(Path(r["_path"])) for r in logreg]
    for other in predictions[1:]:   # the same test samples, other models
        np.testing.assert_array_equal(other.patient_id, predictions[0].patient_id)
        np.testing.assert_array_equal(other.visit_index, predictions[0].visit_index)
    assert not np.array_equal(predictions[0].scores, predictions[1].scores)

    [path] = (groups / "synthetic-small" / "logreg" / GROUPS_FOLDER).glob("*.json")
    aggregate = json.loads(path.read_text())
    assert path.stem == group_id == aggregate["group_id"]
    assert aggregate["runs"] == [{"seed": r["seed"], "run_id": r["run_id"]} for r in logreg]
    assert (aggregate["seeds"], aggregate["split_seed"], aggregate["uncertainty"], aggregate["std_ddof"]) == \
        ([0, 1, 2], 0, "training_seeds", 1)
    assert list(aggregate["metrics"]) == list(logreg[0]["metrics"])   # every group the runs have
    for group, entry in aggregate["metrics"].items():
        assert entry["n"] == logreg[0]["metrics"][group]["n"]
        for name in ("jaccard", "prauc", "ddi_rate"):
            points = [r["metrics"][group][name]["point"] for r in logreg]
            assert entry[name]["values"] == points
            assert entry[name]["mean"] == pytest.approx(statistics.mean(points), abs=1e-12)
            assert entry[name]["std"] == pytest.approx(statistics.stdev(points), abs=1e-12)   # ddof=1
    assert aggregate["metrics"]["all"]["jaccard"]["std"] > 0


def test_records_validate_against_their_schemas(groups):
    assert SEED_GROUP_SCHEMA_PATH.read_text() == seed_group_schema_text(), "run `python -m bench.run_record`"
    for schema_path, pattern in ((SCHEMA_PATH, "*/*/*/run.json"), (SEED_GROUP_SCHEMA_PATH, f"*/*/{GROUPS_FOLDER}/*")):
        validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))
        paths = sorted(groups.glob(pattern))
        assert len(paths) == (6 if schema_path == SCHEMA_PATH else 2)
        for path in paths:
            assert [e.message for e in validator.iter_errors(json.loads(path.read_text()))] == []


def test_the_split_seed_alone_moves_the_split(groups, tmp_path):
    out = runner.invoke(app, ["run", "--model", "popular", "--dataset", "synthetic-small", "--seed", "2",
                              "--split-seed", "1", "--results-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    [record] = read_runs(tmp_path)
    assert (record["seed"], record["split_seed"], record["seed_group"]) == (2, 1, None)
    moved = read_predictions(Path(record["_path"])).patient_id
    seed_2 = _members(groups, "popular")[2]   # training seed 2, split seed 0
    assert set(moved) != set(read_predictions(Path(seed_2["_path"])).patient_id)


def test_compare_shows_mean_and_std_over_seeds_and_says_so(groups):
    logreg = _members(groups, "logreg")
    points = [r["metrics"]["all"]["jaccard"]["point"] for r in logreg]
    cell = f"{statistics.mean(points):.4f} ± {statistics.stdev(points):.4f}"
    out = runner.invoke(app, ["compare", "--results-dir", str(groups), "-f", "md"])
    assert out.exit_code == 0, out.output
    [row] = [line for line in out.stdout.splitlines() if line.startswith("| synthetic-small | logreg |")]
    assert row.split(" | ")[2] == cell
    assert "± = std over 3 training seeds (ddof=1) of each seed's value on the whole test set." in out.stdout
    table = runner.invoke(app, ["compare", "--results-dir", str(groups)])
    assert "± = std over 3 training seeds" in " ".join(table.stdout.split())
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["compare", "--results-dir", str(groups),
                                                               "-f", "csv"]).stdout)))
    assert {(r["model"], r["uncertainty"], r["seeds"]) for r in rows} == {("logreg", "training_seeds", "0;1;2"),
                                                                          ("popular", "training_seeds", "0;1;2")}
    assert float(rows[0]["jaccard"]) == pytest.approx(statistics.mean(points))


def test_compare_of_single_runs_says_test_resampling(groups, tmp_path):
    single = tmp_path / "single" / "synthetic-small" / "logreg"
    single.mkdir(parents=True)
    member = _members(groups, "logreg")[0]
    record = {k: v for k, v in member.items() if k not in ("_path", "seed_group")}
    (single / member["run_id"]).mkdir()
    (single / member["run_id"] / "run.json").write_text(json.dumps(record))
    out = runner.invoke(app, ["compare", "--results-dir", str(tmp_path / "single"), "-f", "md"])
    assert out.exit_code == 0, out.output
    assert "± = std over 10 test resampling rounds of one run." in out.stdout
    [row] = [line for line in out.stdout.splitlines() if line.startswith("| synthetic-small | logreg |")]
    jaccard = member["metrics"]["all"]["jaccard"]
    assert row.split(" | ")[2] == f"{jaccard['mean']:.4f} ± {jaccard['std']:.4f}"


def test_compare_rescores_every_seed_of_a_group(groups):
    from bench.analysis.rescore import rescore

    out = runner.invoke(app, ["compare", "--results-dir", str(groups), "-f", "csv", "--threshold", "0.3"])
    assert out.exit_code == 0, out.output
    [row] = [r for r in csv.DictReader(io.StringIO(out.stdout)) if r["model"] == "logreg"]
    points = [rescore(r, 0.3)["metrics"]["all"]["jaccard"]["point"] for r in _members(groups, "logreg")]
    assert float(row["jaccard"]) == pytest.approx(statistics.mean(points))
    assert float(row["jaccard_std"]) == pytest.approx(statistics.stdev(points))
