"""The committed LEADER claim runs (results/leader-claim/: no-KD, KD and the shuffled control, five
training seeds each, one teacher) and scripts/leader_claim.py, which tabulates them."""

from __future__ import annotations

import importlib.util
import json

import pytest

from bench.results import read_runs
from tests.conftest import REPO_ROOT

CLAIM = REPO_ROOT / "results" / "leader-claim"
TEACHERS = REPO_ROOT / "results" / "reference" / "synthetic" / "leader-teacher"
SEEDS = [0, 1, 2, 3, 4]


def _script():
    spec = importlib.util.spec_from_file_location("leader_claim", REPO_ROOT / "scripts" / "leader_claim.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_arm_is_five_seeds_on_one_split_trained_on_last_visits():
    [teacher] = [json.loads(p.read_text()) for p in TEACHERS.glob("*/run.json")]
    for arm, model, control in (("nokd", "leader-student-nokd", None), ("kd", "leader-student", "none"),
                                ("shuffled", "leader-student", "shuffled")):
        runs = read_runs(CLAIM / arm)
        assert {r["model"]["name"] for r in runs} == {model}
        assert sorted(r["seed"] for r in runs) == SEEDS
        assert {(r["split_seed"], r["train_protocol"], r["dataset"]["hash"]) for r in runs} == {
            (0, "last", teacher["dataset"]["hash"])}
        if control is None:
            continue
        for run in runs:   # every distilled run read the committed teacher, seed 0
            distilled = run["fit"]["notes"]["distillation"]
            assert distilled["kd_control"] == control
            assert distilled["teacher"]["run_id"] == teacher["run_id"] and distilled["teacher"]["seed"] == 0


def test_the_claim_table_reads_the_runs_and_pairs_them_per_group():
    script = _script()
    rows = {label: script.arm_row(CLAIM / key, "synthetic", model, label) for label, key, model in script.ARMS}
    text, data = script.claim(rows, None, n_boot=20)
    assert data["seeds"] == SEEDS and list(data["groups"]) == list(script.GROUPS)
    every = data["groups"]["all"]
    assert every["n"] == 600
    kd_values = [r["metrics"]["all"]["prauc"]["point"] for r in sorted(read_runs(CLAIM / "kd"), key=lambda r: r["seed"])]
    assert every["arms"]["KD"]["prauc"] == pytest.approx(kd_values)
    mean_diff = (sum(kd_values) - sum(every["arms"]["no-KD"]["prauc"])) / len(SEEDS)
    assert every["paired"]["KD - no-KD"]["prauc"]["diff"] == pytest.approx(mean_diff, abs=1e-9)
    assert "### single_visit" in text and "KD - shuffled" in text
