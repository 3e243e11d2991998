"""A bad --seed is one line and exit code 2 in every command that takes one (issue 13, case d)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bench.cli import app

COMMANDS = [
    ["run", "--model", "popular"],
    ["ablate", "--model", "leader-student"],
    ["teacher-probe"],
    ["compare"],
    ["prompts", "--dataset", "synthetic"],
    ["report", "--dataset", "synthetic", "--out", "{tmp}/report.md"],
    ["synth-raw", "--format", "mimic4", "--scale", "0.001", "--out", "{tmp}/raw"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
@pytest.mark.parametrize("seed,expected", [
    ("-1", "--seed -1: expected an integer >= 0"),
    (str(2**32), f"--seed {2**32}: expected an integer below {2**32} (2**32)"),
])
def test_bad_seed_is_one_line(command, seed, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --results-dir is ./results: nothing may appear there
    args = [part.format(tmp=tmp_path) for part in command] + ["--seed", seed]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2, out.output
    assert out.output == f"error: {expected}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("dataset,setting,expected", [
    ("synthetic", "seed=-1", "seed must be >= 0"),
    ("mimic3-demo", "subsample_seed=-1", "subsample_seed must be >= 0"),
])
def test_bad_dataset_seed_is_one_line(dataset, setting, expected, tmp_path):
    out = CliRunner().invoke(app, ["prepare", "--dataset", dataset, "--set", setting,
                                   *(["--data-dir", str(tmp_path)] if dataset != "synthetic" else []),
                                   "--cache-dir", str(tmp_path / "cache")])
    assert out.exit_code == 2, out.output
    assert out.output.startswith("error: ") and expected in out.output
    assert len(out.output.strip().splitlines()) == 1
