"""scripts/gpu-teacher.sh, argument checks only: no GPU is at hand in the test machines, so the
training itself is not run here (--dry-run prints the two commands it would run)."""

from __future__ import annotations

import subprocess

from bench.registry import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "gpu-teacher.sh"


def script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)


def test_missing_base_model_fails_in_one_line():
    result = script("--dry-run")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--set base_model=/path/to/model" in result.stderr


def test_a_folder_without_a_model_fails_in_one_line(tmp_path):
    result = script("--set", f"base_model={tmp_path / 'nowhere'}", "--dry-run")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and f"base_model {tmp_path / 'nowhere'}: no model folder" in result.stderr


def test_dry_run_prints_one_teacher_epoch_then_the_student(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = script("--set", f"base_model={tmp_path}", "--set", "valid_prompts=500", "--dry-run")
    assert result.returncode == 0, result.stderr
    teacher, student = result.stdout.splitlines()
    assert teacher.startswith("bench run --model leader-teacher --dataset synthetic --seed 0 --results-dir results/gpu")
    for piece in (f"--set base_model={tmp_path}", "--set device=auto", "--set epochs=1", "--set steps=0",
                  "--set valid_prompts=500"):
        assert piece in teacher
    assert student == ("bench run --model leader-student --dataset synthetic --seed 0 --results-dir results/gpu "
                       "--train-protocol every --threshold 0.3")
