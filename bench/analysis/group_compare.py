"""`bench compare --groups`: every run's main metrics on each evaluation group of run.json's `metrics`.

One table per dataset: a row per run and metric, a column per evaluation group (bench.groups: all,
single- and multi-visit, rare and unseen codes, one per mechanism tag), the group's number of test
samples in its header. The groups are the ones the runs hold, in their run.json order (runs written
before the code and tag groups show n/a there). The metrics are the registry's model metrics with a
direction (Jaccard, F1, PRAUC, DDI rate); the DDI rate is left out of a dataset's table when every
run on it has DDI rate 0 predicted and true (no DDI graph: nothing to read). The best value of each
metric and group among a dataset's runs is marked, as in the main table (bench.analysis.compare).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Group
from rich.table import Table

from bench.analysis.compare import Cell, Column, _latex, _metric, build_rows
from bench.analysis.reference import base_model, source
from bench.analysis.seed_rows import uncertainty_note
from bench.metric_registry import Metric, model_metrics

__all__ = ["GroupTable", "group_metrics", "group_names", "group_tables", "render_groups"]


@dataclass(frozen=True)
class GroupTable:
    """One dataset's runs on its groups: `sizes[group]` the distinct test-sample counts of the runs that
    hold the group; `rows` per run, per shown metric, one Cell per group (mean ± std; best marked)."""

    dataset: str
    groups: list[str]
    sizes: dict[str, list[int]]
    metrics: list[Metric]
    rows: list[tuple[dict[str, Any], list[tuple[Metric, list[Cell]]]]]

    def header(self, group: str, sep: str = " ") -> str:
        """"rare_code (n=8)"-like: the group and its size (several sizes when runs differ: "n=30/120")."""
        sizes = "/".join(map(str, self.sizes[group]))
        return f"{group}{sep}(n={sizes})"


def group_metrics() -> list[Metric]:
    """The metrics shown per group: the registry's model metrics that have a direction."""
    return [m for m in model_metrics() if m.better is not None]


def group_names(runs: list[dict[str, Any]]) -> list[str]:
    """Every group any of `runs` holds, in order of first appearance."""
    return list(dict.fromkeys(group for record in runs for group in record["metrics"]))


def _has_ddi(runs: list[dict[str, Any]]) -> bool:
    """Whether any run saw an interacting pair (predicted or true) on its whole test set."""
    for record in runs:
        entry = record["metrics"].get("all", {})
        for name in ("ddi_rate", "ddi_rate_true"):
            value = entry.get(name) or {}
            if any(value.get(k) for k in ("point", "mean")):
                return True
    return False


def group_tables(runs: list[dict[str, Any]]) -> list[GroupTable]:
    """One GroupTable per dataset of `runs` (in order of first appearance)."""
    tables = []
    for dataset in dict.fromkeys(r["dataset"]["name"] for r in runs):
        mine = [r for r in runs if r["dataset"]["name"] == dataset]
        groups = group_names(mine)
        sizes = {g: sorted({r["metrics"][g]["n"] for r in mine if g in r["metrics"]}) for g in groups}
        shown = [m for m in group_metrics() if "ddi" not in m.needs or _has_ddi(mine)]
        per_metric = []
        for metric in shown:
            cols = tuple(Column(f"{metric.name}_{g}", g, _metric(g, metric.name), metric.better, metric.digits,
                                min_drugs=metric.min_drugs_to_rank) for g in groups)
            per_metric.append([cells for _, cells in build_rows(mine, cols)])
        rows = [(record, [(m, per_metric[j][i]) for j, m in enumerate(shown)]) for i, record in enumerate(mine)]
        tables.append(GroupTable(dataset, groups, sizes, shown, rows))
    return tables


TITLE = "{dataset}: metrics per evaluation group (n: its test samples), mean{std} ({note})"


def _title(table: GroupTable, std: str) -> str:
    """The table's title; says which kind of ± its rows show (over training seeds or test resampling)."""
    return TITLE.format(dataset=table.dataset, std=std, note=uncertainty_note([r for r, _ in table.rows]))


def _rich(table: GroupTable) -> Table:
    out = Table(title=_title(table, "") + ", best in bold green")
    out.add_column("model")
    out.add_column("metric")
    for group in table.groups:
        out.add_column(table.header(group, "\n"), justify="right")
    for record, metrics in table.rows:
        for k, (metric, cells) in enumerate(metrics):
            texts = [replace(c, std=None).text(metric.digits) for c in cells]
            texts = [f"[bold green]{t}[/]" if c.best else t for t, c in zip(texts, cells)]
            out.add_row(record["model"]["name"] if k == 0 else "", metric.label, *texts,
                        end_section=k == len(metrics) - 1)
    return out


def _text_rows(table: GroupTable, bold: str) -> list[list[str]]:
    """[model, metric, cell...] per run and metric; best cells wrapped in `bold` ("**{}**")."""
    lines = []
    for record, metrics in table.rows:
        for metric, cells in metrics:
            texts = [bold.format(c.text(metric.digits)) if c.best else c.text(metric.digits) for c in cells]
            lines.append([record["model"]["name"], metric.label, *texts])
    return lines


def _csv(tables: list[GroupTable]) -> str:
    """Long CSV: one row per run and group, with n and every group metric's mean and std."""
    names = [m.name for m in group_metrics()]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["dataset", "model", "source", "run_id", "group", "n",
                     *(h for name in names for h in (name, f"{name}_std"))])
    for table in tables:
        for record, _ in table.rows:
            for group in table.groups:
                entry = record["metrics"].get(group)
                if entry is None:
                    continue   # an older run without this group
                values = [entry.get(name) or {} for name in names]
                writer.writerow([table.dataset, base_model(record), source(record), record["run_id"], group,
                                 entry["n"], *(("" if v.get(k) is None else v[k]) for v in values
                                               for k in ("mean", "std"))])
    return out.getvalue()


def render_groups(runs: list[dict[str, Any]], fmt: str) -> str | Group:
    """The per-group tables as rich Tables (`table`) or Markdown / CSV / LaTeX text."""
    tables = group_tables(runs)
    if fmt == "table":
        return Group(*(_rich(t) for t in tables))
    if fmt == "csv":
        return _csv(tables)
    if fmt == "md":
        blocks = []
        for t in tables:
            lines = [_title(t, " ± std") + ", best in bold.", "",
                     "| model | metric | " + " | ".join(t.header(g) for g in t.groups) + " |",
                     "|---|---|" + "---:|" * len(t.groups)]
            lines += ["| " + " | ".join(row) + " |" for row in _text_rows(t, "**{}**")]
            blocks.append("\n".join(lines) + "\n")
        return "\n".join(blocks)
    if fmt == "latex":
        blocks = []
        for t in tables:
            head = ["model", "metric", *(t.header(g) for g in t.groups)]
            lines = [r"\begin{tabular}{ll" + "r" * len(t.groups) + "}", r"\toprule",
                     " & ".join(map(_latex_name, head)) + r" \\", r"\midrule"]
            lines += [" & ".join([*map(_latex_name, row[:2]), *map(_latex, row[2:])]) + r" \\"
                      for row in _text_rows(t, r"\textbf{{{}}}")]
            lines += [r"\bottomrule", r"\end{tabular}"]
            blocks.append("\n".join(lines) + "\n")
        return "\n".join(blocks)
    raise ValueError(f"unknown format {fmt!r}")


def _latex_name(text: str) -> str:
    """A group or model name as LaTeX text (underscores and # escaped)."""
    return text.replace("_", r"\_").replace("#", r"\#")

