"""How a timing below the timer resolution, an old (version 1) timing and the committed reference runs
show in `bench compare` (every format), `bench report`, the plots and the student/teacher table.
Hand-written run.json records: no training."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.results import write_run
from bench.timing import BELOW_RESOLUTION, TIMING_VERSION

runner = CliRunner()
METRICS = ("jaccard", "f1", "prauc", "ddi_rate", "avg_drugs", "ddi_rate_true")


def record(model: str, *, latency: float | None = 0.5, throughput: float | None = 1000.0, version: int | None = 2,
           created: str = "2026-12-01T00:00:00", dataset: str = "synthetic") -> dict[str, Any]:
    """A minimal run.json; latency None = below the timer resolution (with its flag) under version 2."""
    entry = {m: {"mean": 0.5, "std": 0.01, "point": 0.5} for m in METRICS}
    timing: dict[str, Any] = {"fit_seconds": 1.0, "latency_ms_p50": latency, "latency_ms_p95": latency,
                              "throughput_per_s": throughput, "throughput_batch_size": 256, "peak_rss_mb": 100.0,
                              "n_params": 10}
    if version is not None:
        timing |= {"version": version, "timer_resolution_ns": 50, "latency_below_resolution": latency is None,
                   "throughput_below_resolution": throughput is None}
    return {"schema_version": 1, "run_id": f"{model}-{created[:10]}", "created_at": created,
            "model": {"name": model, "config": {}}, "seed": 0, "threshold": 0.5, "protocol": "last",
            "dataset": {"name": dataset, "hash": "h", "n_test": 10, "n_drugs": 3},
            "metrics": {g: {**entry, "n": 10} for g in ("all", "single_visit", "multi_visit")}, "timing": timing}


def store(folder: Path, *records: dict[str, Any]) -> Path:
    for r in records:
        write_run(folder / r["dataset"]["name"] / r["model"]["name"] / r["run_id"], r)
    return folder


def compare(*args: str) -> Any:
    return runner.invoke(app, ["compare", *args])


@pytest.fixture
def fast_and_slow(tmp_path) -> Path:
    return store(tmp_path / "results", record("popular", latency=None), record("logreg", latency=0.0123))


@pytest.mark.parametrize("fmt,expected", [("table", BELOW_RESOLUTION), ("md", BELOW_RESOLUTION),
                                          ("csv", BELOW_RESOLUTION), ("latex", "$<$ timer resolution")])
def test_compare_shows_below_resolution_instead_of_a_number(fast_and_slow, fmt, expected):
    out = compare("--results-dir", str(fast_and_slow), "--format", fmt)
    assert out.exit_code == 0, out.output
    assert out.output.count(expected) == 1 and "0.0123" in out.output


def test_compare_csv_keeps_numbers_numeric_and_says_why_a_value_is_missing(fast_and_slow):
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(compare("--results-dir", str(fast_and_slow),
                                                                      "--format", "csv").output))}
    assert rows["popular"]["latency_ms_p50"] == BELOW_RESOLUTION and rows["popular"]["latency_ms_p50_std"] == ""
    assert float(rows["logreg"]["latency_ms_p50"]) == 0.0123
    assert rows["logreg"]["timing_version"] == str(TIMING_VERSION) and rows["logreg"]["source"] == "user"


def test_old_timings_are_marked_and_explained(tmp_path):
    folder = store(tmp_path / "results", record("popular", latency=0.00105, throughput=7.6e6, version=None),
                   record("logreg", latency=0.0377))
    md = compare("--results-dir", str(folder), "--format", "md").output
    assert "0.00105†" in md and "7,600,000†" in md and "0.0377 " in md
    assert "† timed before timing version 2" in md
    rows = list(csv.DictReader(io.StringIO(compare("--results-dir", str(folder), "--format", "csv").output)))
    assert {r["model"]: r["timing_version"] for r in rows} == {"popular": "1", "logreg": "2"}
    new_only = store(tmp_path / "new", record("logreg"))
    assert "†" not in compare("--results-dir", str(new_only), "--format", "md").output


def test_report_and_plots_skip_a_latency_below_resolution(fast_and_slow, tmp_path):
    # (the whole report needs predictions for its paired table; these records have none)
    from bench.analysis.plots import frontier_plot, model_colours
    from bench.analysis.report import _runs_section
    from bench.results import latest_runs, read_runs

    runs = latest_runs(read_runs(fast_and_slow))
    section = "\n".join(_runs_section(runs))
    assert f"latency_ms_p50={BELOW_RESOLUTION}" in section and "latency_ms_p50=0.0123" in section
    assert "timing (version 2)" in section
    path = frontier_plot(runs, "synthetic", model_colours(["logreg", "popular"]), tmp_path / "f.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def student_record(**kw: Any) -> dict[str, Any]:
    """A student run that names its teacher model (run.json's `teacher`, bench.runner.teacher_entry)."""
    return {**record("leader-student", **kw), "teacher": {"model": "leader-teacher", "distilled": False, "run_id": None}}


def test_efficiency_gives_no_latency_speedup_below_resolution_and_pairs_by_source():
    from bench.analysis.efficiency import efficiency_rows
    from bench.analysis.reference import as_reference

    teacher, student = record("leader-teacher", latency=300.0, throughput=2.0), student_record(latency=None)
    (row,) = efficiency_rows([teacher, student])
    assert row.speedup_latency is None and "below the timer resolution" in row.note
    assert row.speedup_throughput == pytest.approx(500.0)
    # a reference student is paired with the reference teacher only, never with the user's teacher
    rows = efficiency_rows([teacher, as_reference(student_record(latency=2.0))])
    assert rows == []
    (row,) = efficiency_rows([as_reference(teacher), as_reference(student_record(latency=2.0))])
    assert row.student == "leader-student (ref)" and row.speedup_latency == pytest.approx(150.0)


def test_efficiency_pairs_runs_written_before_the_teacher_entry():
    """Old runs do not name their teacher: a no-KD student, an alpha=0 student (no distillation notes)
    and a distilled student whose teacher run is no longer the latest all keep their row, through the
    model's registry entry (ModelEntry.teacher) and the legacy distillation notes."""
    from bench.analysis.efficiency import efficiency_rows

    teacher = record("leader-teacher", latency=300.0, throughput=2.0)
    nokd, alpha0 = record("leader-student-nokd", latency=2.0), record("leader-student", latency=2.0)
    rows = efficiency_rows([teacher, nokd, alpha0])
    assert sorted(r.student for r in rows) == ["leader-student", "leader-student-nokd"]
    distilled = {**record("leader-student", latency=3.0),
                 "fit": {"notes": {"distillation": {"teacher": {"run_id": "an-older-teacher-run"}}}}}
    (row,) = efficiency_rows([teacher, distilled])
    assert row.teacher == "leader-teacher" and row.speedup_latency == pytest.approx(100.0)
    assert efficiency_rows([teacher, record("logreg")]) == []   # a model without a teacher


# --- reference runs apart from a user's runs -------------------------------------------------------

@pytest.fixture
def reference(tmp_path) -> Path:
    return store(tmp_path / "reference", record("logreg", created="2026-11-28T00:00:00"),
                 record("popular", created="2026-11-28T00:00:00"))


def test_no_user_runs_is_one_line_that_points_at_the_reference(tmp_path, reference):
    (tmp_path / "results").mkdir()
    for folder in (tmp_path / "results", tmp_path / "missing"):
        out = compare("--results-dir", str(folder), "--reference-dir", str(reference))
        assert out.exit_code == 2 and len(out.output.strip().splitlines()) == 1, out.output
        assert "bench compare --reference" in out.output


def test_reference_rows_only_with_reference_and_labelled(tmp_path, reference):
    results = tmp_path / "results"
    out = compare("--results-dir", str(results), "--reference", "--reference-dir", str(reference), "--format", "md")
    assert out.exit_code == 0, out.output
    assert "| logreg (ref) |" in out.output and "| popular (ref) |" in out.output


def test_a_users_run_of_a_model_keeps_its_row_beside_the_reference_row(tmp_path, reference):
    # the user's run is OLDER than the reference one: it must still be shown, not replaced
    results = store(tmp_path / "results", record("logreg", latency=9.0, created="2026-01-01T00:00:00"))
    # a reference/ folder inside the results folder is not read as the user's runs either
    store(results / "reference", record("random"))
    alone = compare("--results-dir", str(results), "--format", "csv").output
    assert [(r["model"], r["source"]) for r in csv.DictReader(io.StringIO(alone))] == [("logreg", "user")]
    both = compare("--results-dir", str(results), "--reference", "--reference-dir", str(reference), "--format", "csv")
    rows = [(r["model"], r["source"], r["latency_ms_p50"]) for r in csv.DictReader(io.StringIO(both.output))]
    assert rows == [("logreg", "user", "9.0"), ("logreg", "reference", "0.5"), ("popular", "reference", "0.5")]
    md = compare("--results-dir", str(results), "--reference", "--reference-dir", str(reference), "--format", "md")
    lines = [line for line in md.output.splitlines() if line.startswith("| synthetic |")]
    assert [line.split(" | ")[1] for line in lines] == ["logreg", "logreg (ref)", "popular (ref)"]


def test_read_runs_leaves_out_the_reference_folder(tmp_path):
    from bench.results import read_runs

    results = store(tmp_path / "results", record("logreg"))
    store(results / "reference", record("random"))
    # a reference folder one level shallower than a dataset would match the run.json pattern
    write_run(results / "reference" / "random" / "r1", record("random"))
    assert [r["model"]["name"] for r in read_runs(results)] == ["logreg"]
    assert json.loads((results / "reference" / "random" / "r1" / "run.json").read_text())["model"]["name"] == "random"
