"""`bench compare`: the latest run per model and dataset as one table, best value per column marked.
The paired `--vs MODEL` table is bench.paired; both read the results store only."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Group
from rich.table import Table

Better = Literal["high", "low"] | None
FORMATS = ("table", "md", "csv", "latex")


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    get: Callable[[dict[str, Any]], tuple[float | None, float | None]]  # (value, std)
    better: Better
    digits: int


def _metric(group: str, name: str) -> Callable[[dict[str, Any]], tuple[float | None, float | None]]:
    def get(record: dict[str, Any]) -> tuple[float | None, float | None]:
        entry = record["metrics"].get(group, {}).get(name) or {}
        return entry.get("mean"), entry.get("std")
    return get


def _timing(name: str) -> Callable[[dict[str, Any]], tuple[float | None, float | None]]:
    return lambda record: (record.get("timing", {}).get(name), None)


COLUMNS: tuple[Column, ...] = (
    Column("jaccard", "Jaccard", _metric("all", "jaccard"), "high", 4),
    Column("f1", "F1", _metric("all", "f1"), "high", 4),
    Column("prauc", "PRAUC", _metric("all", "prauc"), "high", 4),
    Column("ddi_rate", "DDI", _metric("all", "ddi_rate"), "low", 4),
    Column("avg_drugs", "#drugs", _metric("all", "avg_drugs"), None, 2),
    Column("jaccard_single", "Jac single", _metric("single_visit", "jaccard"), "high", 4),
    Column("jaccard_multi", "Jac multi", _metric("multi_visit", "jaccard"), "high", 4),
    Column("prauc_single", "PRAUC single", _metric("single_visit", "prauc"), "high", 4),
    Column("prauc_multi", "PRAUC multi", _metric("multi_visit", "prauc"), "high", 4),
    Column("fit_seconds", "fit s", _timing("fit_seconds"), "low", 1),
    Column("latency_ms_p50", "p50 ms", _timing("latency_ms_p50"), "low", 3),
    Column("throughput_per_s", "samples/s", _timing("throughput_per_s"), "high", 0),
)


@dataclass(frozen=True)
class Cell:
    value: float | None
    std: float | None
    best: bool

    def text(self, digits: int) -> str:
        if self.value is None:
            return "n/a"
        body = f"{self.value:,.{digits}f}" if digits == 0 else f"{self.value:.{digits}f}"
        return f"{body} ± {self.std:.{digits}f}" if self.std is not None else body


# A DDI rate only counts as best for a model that predicts at least this many drugs per visit on
# average: a model that predicts (almost) nothing has (almost) no interactions.
MIN_DRUGS_FOR_BEST_DDI = 1.0


def _ranked(col: Column, record: dict[str, Any]) -> bool:
    if col.key != "ddi_rate":
        return True
    drugs = _metric("all", "avg_drugs")(record)[0]
    return drugs is not None and drugs >= MIN_DRUGS_FOR_BEST_DDI


def build_rows(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[Cell]]]:
    """One row per run; a cell is best when it is the best value of its column within its dataset
    (DDI only among models predicting >= MIN_DRUGS_FOR_BEST_DDI drugs per visit)."""
    values = [[col.get(r) for col in COLUMNS] for r in runs]
    rows = []
    for i, record in enumerate(runs):
        cells = []
        for j, col in enumerate(COLUMNS):
            value, std = values[i][j]
            peers = [values[k][j][0] for k, other in enumerate(runs)
                     if other["dataset"]["name"] == record["dataset"]["name"] and values[k][j][0] is not None
                     and _ranked(col, other)]
            if not _ranked(col, record):
                peers = []
            best = False
            if col.better and value is not None and len(peers) > 1:
                best = value == (max(peers) if col.better == "high" else min(peers))
            cells.append(Cell(value, std, best))
        rows.append((record, cells))
    return rows


def _rich_table(rows: list[tuple[dict[str, Any], list[Cell]]], title: str, columns: range,
                with_std: bool = True) -> Table:
    table = Table(title=title)
    table.add_column("dataset")
    table.add_column("model")
    for j in columns:
        table.add_column(COLUMNS[j].header, justify="right")
    for record, cells in rows:
        texts = []
        for j in columns:
            cell = cells[j] if with_std else Cell(cells[j].value, None, cells[j].best)
            text = cell.text(COLUMNS[j].digits)
            texts.append(f"[bold green]{text}[/]" if cell.best else text)
        table.add_row(record["dataset"]["name"], record["model"]["name"], *texts)
    return table


def render(runs: list[dict[str, Any]], fmt: str) -> str | Group:
    """The comparison as two rich Tables (`table`) or as Markdown / CSV / LaTeX text."""
    rows = build_rows(runs)
    if fmt == "table":
        return Group(_rich_table(rows, "accuracy: mean ± std over resampling rounds (best in bold green)",
                                 range(0, 5)),
                     _rich_table(rows, "single- vs multi-visit (mean) and cost", range(5, len(COLUMNS)),
                                 with_std=False))
    if fmt == "md":
        lines = ["| dataset | model | " + " | ".join(c.header for c in COLUMNS) + " |",
                 "|---|---|" + "---:|" * len(COLUMNS)]
        for record, cells in rows:
            texts = [f"**{c.text(col.digits)}**" if c.best else c.text(col.digits) for c, col in zip(cells, COLUMNS)]
            lines.append(f"| {record['dataset']['name']} | {record['model']['name']} | " + " | ".join(texts) + " |")
        return "\n".join(lines) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["dataset", "model", "run_id", *(h for c in COLUMNS for h in (c.key, f"{c.key}_std"))])
        for record, cells in rows:
            writer.writerow([record["dataset"]["name"], record["model"]["name"], record["run_id"],
                             *(("" if v is None else v) for c in cells for v in (c.value, c.std))])
        return out.getvalue()
    if fmt == "latex":
        lines = [r"\begin{tabular}{ll" + "r" * len(COLUMNS) + "}", r"\toprule",
                 "dataset & model & " + " & ".join(c.header for c in COLUMNS) + r" \\", r"\midrule"]
        for record, cells in rows:
            texts = [(rf"\textbf{{{c.text(col.digits)}}}" if c.best else c.text(col.digits)).replace("±", r"$\pm$")
                     for c, col in zip(cells, COLUMNS)]
            lines.append(f"{record['dataset']['name']} & {record['model']['name']} & " + " & ".join(texts) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}")
