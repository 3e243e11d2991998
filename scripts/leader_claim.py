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


def diff_text(d: dict[str, float] | None) -> str:
    if d is None:
        return "n/a"
    return f"{d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] p={d['p']:.3f}"


def _difference(d: Difference | None) -> dict[str, float] | None:
    return None if d is None else {"diff": d.diff, "low": d.low, "high": d.high, "p": d.p_value}


def claim_data(rows: dict[str, dict[str, Any]], teacher: dict[str, Any] | None, n_boot: int) -> dict[str, Any]:
    """Per group: n, each arm's per-seed values, the teacher's value and the paired differences."""
    seeds = sorted({run["seed"] for row in rows.values() for run in members(row)})
    data: dict[str, Any] = {"seeds": seeds, "bootstrap": n_boot, "groups": {}}
    for group in GROUPS:
        paired = {}
        for a, b in PAIRS:
            differences = paired_table([rows[a], rows[b]], b, n_boot=n_boot, group=group).rows[0].differences
            paired[f"{a} - {b}"] = {m: _difference(differences.get(m)) for m, _ in METRICS}
        data["groups"][group] = {
            "n": rows["no-KD"]["metrics"][group]["n"],
            "arms": {label: {m: seed_values(row, group, m) for m, _ in METRICS} for label, row in rows.items()},
            "teacher": None if teacher is None else {m: teacher["metrics"][group][m]["point"] for m, _ in METRICS},
            "paired": paired}
    return data


def render(data: dict[str, Any]) -> str:
    """claim_data's figures as one Markdown table per group."""
    lines = [f"Training seeds {','.join(map(str, data['seeds']))} (± = std over seeds of each seed's value on the "
             f"group); differences: paired two-way bootstrap over seeds and test samples ({data['bootstrap']} "
             "replicates), 95% interval, two-sided p.\n"]
    for group, figures in data["groups"].items():
        teacher = figures["teacher"]
        lines += [f"### {group} (n = {figures['n']})", "",
                  "| metric | " + (" teacher (1 seed) |" if teacher else "") + " no-KD | KD | shuffled | "
                  + " | ".join(figures["paired"]) + " |",
                  "|---|" + ("---:|" if teacher else "") + "---:|" * (3 + len(PAIRS))]
        for metric, label in METRICS:
            cells = [mean_std(figures["arms"][arm][metric]) for arm, _, _ in ARMS]
            teacher_cell = [f"{teacher[metric]:.4f}"] if teacher else []
            lines.append("| " + " | ".join([label, *teacher_cell, *cells,
                                             *(diff_text(d[metric]) for d in figures["paired"].values())]) + " |")
        lines.append("")
    return "\n".join(lines)


def claim(rows: dict[str, dict[str, Any]], teacher: dict[str, Any] | None, n_boot: int) -> tuple[str, dict]:
    """The Markdown tables and the same figures as a dict (for results/*.json)."""
    data = claim_data(rows, teacher, n_boot)
    return render(data), data


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
