"""Seed groups in the readers: which runs form a row, `--vs` pairing seed s with seed s (the two-way
bootstrap of bench.analysis.significance), old run.json files without `split_seed`, the teacher of a
seed, and `bench ablate --seeds`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.analysis.paired import paired_table
from bench.analysis.seed_rows import as_row, latest_groups, latest_rows, members
from bench.analysis.significance import pooled_paired_bootstrap
from bench.progress import Progress
from bench.registry import REPO_ROOT
from bench.results import SCHEMA_VERSION, Predictions, read_run, read_runs, write_predictions, write_run
from bench.seed_groups import seed_metrics, split_seed_of
from bench.teachers import mismatch

N, D = 40, 4
TARGET = np.ones((N, D), dtype=bool)
FULL = np.ones((N, D), dtype=bool)                 # Jaccard 1 on every sample
HALF = np.repeat([[True, True, False, False]], N, 0)   # Jaccard 0.5 on every sample


def _write(results: Path, model: str, seed: int, predicted: np.ndarray, *, group: str | None = None,
           seeds: tuple[int, ...] = (), created: str = "2026-01-01") -> None:
    """A minimal run of `model` with training seed `seed` (split seed 0), in seed group `group`."""
    run_id = f"{model}-{seed}-{created}"
    folder = results / "toy" / model / run_id
    write_predictions(folder, Predictions(target=TARGET, predicted=predicted, scores=None,
                                          patient_id=np.arange(N), visit_index=np.zeros(N, int),
                                          drugs=tuple(f"D{i}" for i in range(D))))
    write_run(folder, {"schema_version": SCHEMA_VERSION, "run_id": run_id, "created_at": created,
                       "model": {"name": model, "config": {}}, "protocol": "last", "seed": seed, "split_seed": 0,
                       "seed_group": {"id": group, "seeds": list(seeds)} if group else None,
                       "dataset": {"name": "toy", "hash": "h", "n_test": N, "n_drugs": D},
                       "metrics": {"all": {"n": N, "jaccard": {"mean": 0.5, "std": 0.0, "point": 0.5}}},
                       "timing": {"fit_seconds": float(seed)}})


def test_the_two_way_bootstrap_carries_the_seed_noise():
    """Seed 0: other beats reference by d on every unit; seed 1: loses by d. The mean difference is 0; a
    replicate draws the seed pairs (2, 0), (1, 1) or (0, 2) with probabilities 1/4, 1/2, 1/4, so its
    difference is +d, 0 or -d whatever test units it draws, and the 95% interval is [-d, +d]."""
    d, ones = 0.25, np.ones(N)   # exact in binary: the middle draws give exactly 0
    ref = {"jaccard": (np.full(N, 0.5), ones)}
    better, worse = {"jaccard": (np.full(N, 0.5 + d), ones)}, {"jaccard": (np.full(N, 0.5 - d), ones)}
    result = pooled_paired_bootstrap([ref, ref], [better, worse], n_boot=2000, seed=3)["jaccard"]
    assert (result.diff, result.reference, result.other, result.n_seeds) == (0, 0.5, 0.5, 2)
    assert (result.low, result.high) == (-d, d)
    assert result.p_value == 1.0
    # the same seeds scored once each (one seed only): no seed noise, the single-pair bootstrap
    single = pooled_paired_bootstrap([ref], [better], n_boot=200)["jaccard"]
    assert (single.low, single.high, single.n_seeds) == (d, d, 1)


def test_vs_pairs_seed_s_with_seed_s(tmp_path):
    # reference: seed 0 FULL, seed 1 HALF; "same" repeats it (written in the other order); "better" is FULL twice
    _write(tmp_path, "ref", 0, FULL, group="g1", seeds=(0, 1), created="2026-01-01")
    _write(tmp_path, "ref", 1, HALF, group="g1", seeds=(0, 1), created="2026-01-02")
    _write(tmp_path, "same", 1, HALF, group="g2", seeds=(1, 0), created="2026-01-03")
    _write(tmp_path, "same", 0, FULL, group="g2", seeds=(1, 0), created="2026-01-04")
    _write(tmp_path, "better", 0, FULL, group="g3", seeds=(0, 1))
    _write(tmp_path, "better", 1, FULL, group="g3", seeds=(0, 1))
    _write(tmp_path, "single", 1, FULL)                      # one run, seed 1: paired with the reference's seed 1
    _write(tmp_path, "apart", 5, FULL, group="g4", seeds=(5, 6))
    _write(tmp_path, "apart", 6, FULL, group="g4", seeds=(5, 6))
    table = paired_table(latest_rows(read_runs(tmp_path)), "ref", n_boot=300)
    rows = {r.model: r for r in table.rows}
    same = rows["same"].differences["jaccard"]
    assert (rows["same"].seeds, same.diff, same.low, same.high, same.p_value) == ((0, 1), 0, 0, 0, 1.0)
    better = rows["better"].differences["jaccard"]
    # per seed 1 - 1 = 0 and 1 - 0.5 = 0.5: mean 0.25; reference mean (1 + 0.5) / 2
    assert (better.diff, better.reference, better.other, better.n_seeds) == (0.25, 0.75, 1.0, 2)
    single = rows["single"].differences["jaccard"]
    assert (rows["single"].seeds, single.diff, single.reference, single.n_seeds) == ((1,), 0.5, 0.5, 1)
    assert "apart" not in rows
    assert table.notes == ["toy: apart has no training seed in common with ref (bench run --seeds with the same "
                           "seeds), skipped", f"toy: DDI n/a for better, same, single vs ref: run predates stored "
                                               "DDI graphs; re-run to get DDI differences"]


def test_a_row_is_the_latest_seed_group_else_the_latest_run(tmp_path):
    _write(tmp_path, "m", 0, FULL, group="g1", seeds=(0, 1, 2), created="2026-01-01")
    _write(tmp_path, "m", 2, HALF, group="g1", seeds=(0, 1, 2), created="2026-01-03")
    _write(tmp_path, "m", 1, HALF, group="g1", seeds=(0, 1, 2), created="2026-01-02")
    _write(tmp_path, "m", 0, FULL, group="g0", seeds=(0, 1), created="2025-12-01")   # an older group
    [group] = latest_groups(read_runs(tmp_path))
    assert [(r["seed"], r["seed_group"]["id"]) for r in group] == [(0, "g1"), (1, "g1"), (2, "g1")]
    row = as_row(group)
    assert row["uncertainty"] == "training_seeds" and members(row) == group
    assert row["metrics"] == seed_metrics(group) and row["timing"]["fit_seconds"] == 1.0   # mean of 0, 1, 2
    _write(tmp_path, "m", 7, FULL, created="2026-02-01")     # a newer single run replaces the group
    [latest] = latest_rows(read_runs(tmp_path))
    assert latest["seed"] == 7 and "uncertainty" not in latest and members(latest) == [latest]


def test_seed_metrics_by_hand():
    records = [{"metrics": {"all": {"n": 3, "jaccard": {"point": p}, "prauc": {"point": q}},
                            "rare": {"n": 1, "jaccard": {"point": p / 2}}}}
               for p, q in ((0.2, None), (0.4, 0.5), (0.9, 0.7))]
    out = seed_metrics(records)
    assert list(out) == ["all", "rare"]                     # every group present, not a fixed list
    assert out["all"]["jaccard"] == {"mean": pytest.approx(0.5), "std": pytest.approx(np.sqrt(0.13)),
                                     "values": [0.2, 0.4, 0.9]}   # squares 0.09 + 0.01 + 0.16 over 3 - 1
    assert out["all"]["prauc"] == {"mean": None, "std": None, "values": [None, 0.5, 0.7]}
    assert out["rare"]["jaccard"]["mean"] == pytest.approx(0.25) and out["all"]["n"] == 3
    assert seed_metrics(records[:1])["all"]["jaccard"] == {"mean": 0.2, "std": None, "values": [0.2]}


def test_an_old_run_without_split_seed_still_loads_and_means_split_seed_equals_seed(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    old = sorted((REPO_ROOT / "results" / "reference" / "synthetic-v1").rglob("run.json"))[0]  # made before split_seed
    record = read_run(old)
    assert "split_seed" not in record and split_seed_of(record) == record["seed"]
    copy = tmp_path / "synthetic" / record["model"]["name"] / record["run_id"] / "run.json"
    copy.parent.mkdir(parents=True)
    copy.write_text(json.dumps({**record, "seed": 3}))
    out = CliRunner().invoke(app, ["compare", "--results-dir", str(tmp_path), "-f", "csv"])
    assert out.exit_code == 0, out.output
    assert "test_resampling" in out.stdout
    teacher = {"model": {"name": "t"}, "dataset": {"hash": "h"}, "seed": 3,
               "split": {"scheme": "random", "ratios": "8:1:1"}}
    assert mismatch(teacher, "t", "h", 3, "random", "8:1:1", split_seed=3) is None
    assert "training patients differ" in mismatch(teacher, "t", "h", 3, "random", "8:1:1", split_seed=0)


def test_the_teacher_of_seed_s_is_the_teacher_run_of_seed_s(tmp_path):
    from bench.protocol import TeacherRequest, TeacherSpec
    from bench.runner import RunOptions, resolve_teacher

    for seed, split_seed in ((0, 0), (1, 0), (1, 1)):
        folder = tmp_path / "d" / "big" / f"run-{seed}-{split_seed}"
        (folder / "model").mkdir(parents=True)
        (folder / "model" / "config.json").write_text("{}")
        (folder / "run.json").write_text(json.dumps({
            "schema_version": 1, "run_id": folder.name, "created_at": folder.name, "model": {"name": "big"},
            "dataset": {"hash": "h"}, "seed": seed, "split_seed": split_seed,
            "split": {"scheme": "random", "ratios": "8:1:1"}}))
    for seed, split_seed in ((0, 0), (1, 0), (1, 1)):
        options = RunOptions(model="small", dataset="d", seed=seed, split_seed=split_seed, results_dir=tmp_path)
        choice = resolve_teacher(TeacherSpec("big"), TeacherRequest(), options, "h", Progress())
        assert choice.run_folder.name == f"run-{seed}-{split_seed}"
    assert mismatch(json.loads((tmp_path / "d" / "big" / "run-1-0" / "run.json").read_text()), "big", "h", 0,
                    "random", "8:1:1", 0) == "it was trained with seed 1 and this run with seed 0"


def test_ablate_with_seeds_gives_rows_over_the_seeds(tmp_path, monkeypatch):
    """A toy ablation of two trained steps and one reused step, each over training seeds 0 and 1."""
    from dataclasses import replace

    import bench.registry
    from bench.cli.ablate import run_ablation
    from bench.protocol import AblationStep
    from bench.runner import RunOptions, run
    from bench.timing import TimingOptions

    real = bench.registry.model_class

    class Toy:
        ablation = (AblationStep("reused", "random", reuse=True), AblationStep("lr", "logreg", {"epochs": "1"}),
                    AblationStep("top-k", "popular"))

    monkeypatch.setattr(bench.registry, "model_class", lambda name: Toy if name == "toy" else real(name))
    base = RunOptions(model="toy", dataset="synthetic-small", results_dir=tmp_path, save_model=False,
                      timing=TimingOptions(latency_samples=3, batch_size=16, min_seconds=0.0))
    for seed in (0, 1, 2):
        run(replace(base, model="random", seed=seed), Progress())
    rows = run_ablation(base, Progress(), (0, 1))
    assert [r["model"]["name"] for r in rows] == ["random (reused)", "logreg (lr)", "popular (top-k)"]
    for row in rows:
        assert [m["seed"] for m in members(row)] == [0, 1] and row["uncertainty"] == "training_seeds"
        assert row["metrics"] == seed_metrics(members(row))
    assert len(list((tmp_path / "synthetic-small" / "logreg" / "seed-groups").glob("*.json"))) == 1
    assert {m["seed_group"]["seeds"][1] for m in members(rows[1])} == {1}
