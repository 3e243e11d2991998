"""LEADER's distillation claim on one teacher: KD against no-KD against the shuffled control.

Reads three results folders, each holding the runs of one arm over training seeds (`bench run --seeds ...`):

    no-KD     leader-student-nokd
    KD        leader-student (distilling from a leader-teacher run)
    shuffled  leader-student with kd_control=shuffled (the same loss, features moved to other patients)

and writes a Markdown table per evaluation group (all, single/multi-visit, rare and unseen codes):
each arm's PRAUC and Jaccard (mean ± std over the training seeds, each seed on the whole group), and
the paired differences KD - no-KD, shuffled - no-KD and KD - shuffled with the two-way bootstrap over
seeds and test samples of `bench compare --vs` (bench.analysis.paired, docs/evaluation.md), restricted
to the group's samples (`--vs-group`). The optional teacher run is shown for reference (one seed).

    python scripts/leader_claim.py --nokd DIR --kd DIR --shuffled DIR [--teacher RUN_DIR] \\
        --dataset synthetic --out results/leader-claim.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.analysis.paired import paired_table  # noqa: E402
from bench.analysis.seed_rows import as_row, members  # noqa: E402
from bench.analysis.significance import Difference  # noqa: E402
from bench.results import read_runs  # noqa: E402
from bench.io import atomic_write_text  # noqa: E402

ARMS = (("no-KD", "nokd", "leader-student-nokd"), ("KD", "kd", "leader-student"),
        ("shuffled", "shuffled", "leader-student"))
GROUPS = ("all", "single_visit", "multi_visit", "rare_code", "unseen_code")
METRICS = (("prauc", "PRAUC"), ("jaccard", "Jaccard"))
PAIRS = (("KD", "no-KD"), ("shuffled", "no-KD"), ("KD", "shuffled"))


def arm_row(folder: Path, dataset: str, model: str, label: str) -> dict[str, Any]:
    """The row of every training seed of `model` in `folder` (the latest run of each seed, so seeds
    added later by another `bench run --seeds` join the row), its model renamed `label`."""
    latest: dict[int, dict[str, Any]] = {}
    for run in read_runs(folder):
        if (run["dataset"]["name"], run["model"]["name"]) == (dataset, model):
            if run["seed"] not in latest or run["created_at"] > latest[run["seed"]]["created_at"]:
                latest[run["seed"]] = run
    if not latest:
        raise SystemExit(f"{folder}: no {model} run on {dataset}")
    return as_row([{**run, "model": {**run["model"], "name": label}} for _, run in sorted(latest.items())])


def seed_values(row: dict[str, Any], group: str, metric: str) -> list[float]:
    """Each seed's value of `metric` on `group` (its point value on the whole group)."""
    out = []
    for run in members(row):
        entry = run["metrics"][group][metric]
        out.append(entry.get("point", entry["mean"]))
    return out


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def diff_text(d: Difference | None) -> str:
    if d is None:
        return "n/a"
    return f"{d.diff:+.4f} [{d.low:+.4f}, {d.high:+.4f}] p={d.p_value:.3f}"


def claim(rows: dict[str, dict[str, Any]], teacher: dict[str, Any] | None, n_boot: int) -> tuple[str, dict]:
    """The Markdown tables and the same figures as a dict (for results/*.json)."""
    seeds = sorted({run["seed"] for row in rows.values() for run in members(row)})
    lines, data = [], {"seeds": seeds, "bootstrap": n_boot, "groups": {}}
    for group in GROUPS:
        n = rows["no-KD"]["metrics"][group]["n"]
        diffs = {}
        for a, b in PAIRS:
            table = paired_table([rows[a], rows[b]], b, n_boot=n_boot, group=group)
            diffs[(a, b)] = table.rows[0].differences
        data["groups"][group] = {
            "n": n,
            "arms": {label: {m: seed_values(row, group, m) for m, _ in METRICS} for label, row in rows.items()},
            "teacher": None if teacher is None else {m: teacher["metrics"][group][m]["point"] for m, _ in METRICS},
            "paired": {f"{a} - {b}": {m: None if d.get(m) is None else
                                      {"diff": d[m].diff, "low": d[m].low, "high": d[m].high, "p": d[m].p_value}
                                      for m, _ in METRICS} for (a, b), d in diffs.items()}}
        lines += [f"### {group} (n = {n})", "",
                  "| metric | " + (" teacher (1 seed) |" if teacher else "") + " no-KD | KD | shuffled | "
                  + " | ".join(f"{a} - {b}" for a, b in PAIRS) + " |",
                  "|---|" + ("---:|" if teacher else "") + "---:|" * (3 + len(PAIRS))]
        for metric, label in METRICS:
            cells = [mean_std(seed_values(rows[arm], group, metric)) for arm, _, _ in ARMS]
            teacher_cell = [f"{teacher['metrics'][group][metric]['point']:.4f}"] if teacher else []
            lines.append("| " + " | ".join([label, *teacher_cell, *cells,
                                             *(diff_text(diffs[pair].get(metric)) for pair in PAIRS)]) + " |")
        lines.append("")
    head = (f"Training seeds {','.join(map(str, seeds))} (± = std over seeds of each seed's value on the group); "
            f"differences: paired two-way bootstrap over seeds and test samples ({n_boot} replicates), "
            "95% interval, two-sided p.\n")
    return head + "\n" + "\n".join(lines), data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for _, key, _ in ARMS:
        parser.add_argument(f"--{key}", type=Path, required=True, help=f"results folder of the {key} arm")
    parser.add_argument("--teacher", type=Path, help="the teacher's run folder (shown for reference)")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True, help="Markdown file (a .json beside it)")
    args = parser.parse_args()
    rows = {label: arm_row(getattr(args, key), args.dataset, model, label) for label, key, model in ARMS}
    teacher = json.loads((args.teacher / "run.json").read_text()) if args.teacher else None
    text, data = claim(rows, teacher, args.bootstrap)
    atomic_write_text(args.out, text)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(data, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
