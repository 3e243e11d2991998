"""The runner's teacher step (bench.runner.resolve_teacher): a distilling student's teacher run is
found (named, or the latest compatible one) or trained first as an explicit, announced step with run
options derived from the student's; no model code runs the runner."""

from __future__ import annotations

import json
from pathlib import Path

from bench import runner
from bench.progress import Progress
from bench.protocol import TeacherRequest, TeacherSpec
from bench.runner import RunOptions, resolve_teacher, teacher_entry

SPEC = TeacherSpec("big-model")


def write_run(results: Path, run_id: str) -> Path:
    folder = results / "d" / "big-model" / run_id
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text("{}")
    (folder / "run.json").write_text(json.dumps({"schema_version": 1, 
        "run_id": run_id, "created_at": run_id, "model": {"name": "big-model"}, "dataset": {"hash": "h"},
        "seed": 0, "split": {"scheme": "random", "ratios": "8:1:1"}}))
    return folder


def test_an_existing_teacher_run_is_used_and_announced(tmp_path, capsys):
    options = RunOptions(model="small", dataset="d", results_dir=tmp_path)
    older, newer = write_run(tmp_path, "2026-01"), write_run(tmp_path, "2026-02")
    choice = resolve_teacher(SPEC, TeacherRequest(), options, "h", Progress())
    assert (choice.model, choice.run_folder, choice.how, choice.trained) == ("big-model", newer, "latest", False)
    assert f"teacher: using big-model run {newer} (latest)" in capsys.readouterr().err
    named = resolve_teacher(SPEC, TeacherRequest(run="2026-01"), options, "h", Progress())
    assert (named.run_folder, named.how) == (older, "explicit")
    assert teacher_entry(SPEC, named) == {"model": "big-model", "distilled": True, "run_id": "2026-01",
                                          "path": str(older), "how": "explicit"}
    assert teacher_entry(TeacherSpec("big-model", distils=False), None)["distilled"] is False
    assert teacher_entry(None, None) is None


def test_a_missing_teacher_is_trained_first_with_options_derived_from_the_students(tmp_path, capsys, monkeypatch):
    trained: list[RunOptions] = []

    def train(options: RunOptions, progress: Progress, *, bundle=None) -> Path:
        trained.append(options)
        return write_run(tmp_path, "2026-03")

    monkeypatch.setattr(runner, "train_teacher", train)
    student = RunOptions(model="small", dataset="d", seed=0, results_dir=tmp_path, save_model=False,
                         overrides={"alpha": "0.4"})
    choice = resolve_teacher(SPEC, TeacherRequest(train_overrides={"steps": "3"}), student, "h", Progress())
    assert choice.how == "trained" and choice.trained and choice.run_folder.name == "2026-03"
    [options] = trained
    assert (options.model, dict(options.overrides), options.save_model) == ("big-model", {"steps": "3"}, True)
    assert (options.dataset, options.seed, options.results_dir) == ("d", 0, tmp_path)
    assert "no teacher run for d: training big-model first (explicit step" in capsys.readouterr().err
