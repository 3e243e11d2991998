"""`bench compare`: the latest run per model and dataset as one table, best value per column marked.
The paired `--vs MODEL` table is bench.analysis.paired; both read the results store only.

A row is a run, or a seed group's runs aggregated over training seeds (bench.analysis.seed_rows); the
table says which kind of ± it shows (`uncertainty_note`; CSV: columns `uncertainty` and `seeds`).

Rows of committed reference runs (bench.analysis.reference, `--reference`) carry " (ref)" after the model name
(and `source` "reference" in CSV). A timing below the timer resolution prints "< timer resolution";
the timing cells of runs timed before timing version 2 carry a dagger and a footnote (bench.timing)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from rich.console import Group
from rich.table import Table

from bench.analysis.reference import base_model, source
from bench.analysis.seed_rows import missing_seeds_notes, seeds_of, uncertainty_kind, uncertainty_note
from bench.metric_registry import Metric, caveat_metrics, model_metrics
from bench.registry import models
from bench.timing import BELOW_FLAGS, BELOW_RESOLUTION, TIMING_VERSION, timing_version

Better = Literal["high", "low"] | None
FORMATS = ("table", "md", "csv", "latex")


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    get: Callable[[dict[str, Any]], tuple[float | None, float | None]]  # (value, std)
    better: Better
    digits: int
    below_flag: str | None = None   # timing flag that marks a null value as below the timer resolution
    significant: bool = False       # values under 1 keep 3 significant digits (a fast latency is not 0.000)
    min_drugs: float = 0.0          # best only among runs predicting >= this many drugs per visit (Metric)


def _metric(group: str, name: str) -> Callable[[dict[str, Any]], tuple[float | None, float | None]]:
    def get(record: dict[str, Any]) -> tuple[float | None, float | None]:
        entry = record["metrics"].get(group, {}).get(name) or {}
        return entry.get("mean"), entry.get("std")
    return get


def _timing(name: str) -> Callable[[dict[str, Any]], tuple[float | None, float | None]]:
    return lambda record: (record.get("timing", {}).get(name), None)


def _fit(name: str) -> Callable[[dict[str, Any]], tuple[float | None, float | None]]:
    """A value of run.json's `fit` (None in runs recorded before it, or without `fit`)."""
    return lambda record: ((record.get("fit") or {}).get(name), None)


# the cost columns: training (run.json timing.fit_seconds, fit.train_samples_per_s), then inference
TIMING_COLUMNS: tuple[Column, ...] = (
    Column("fit_seconds", "fit s", _timing("fit_seconds"), "low", 1),
    Column("train_samples_per_s", "train samples/s", _fit("train_samples_per_s"), "high", 0, significant=True),
    Column("latency_ms_p50", "p50 ms", _timing("latency_ms_p50"), "low", 3, BELOW_FLAGS["latency_ms_p50"], True),
    Column("throughput_per_s", "samples/s", _timing("throughput_per_s"), "high", 0, BELOW_FLAGS["throughput_per_s"],
           True),
)


def metric_columns() -> tuple[list[Column], list[Column]]:
    """The metric columns from the registry (bench.metric_registry): every model metric on all test
    samples, then each metric on its other groups ("jaccard_single", header "Jac single")."""
    metrics = model_metrics()

    def column(metric: Metric, group: str) -> Column:
        suffix = "" if group == "all" else group.removesuffix("_visit")
        return Column(f"{metric.name}_{suffix}" if suffix else metric.name,
                      f"{metric.short or metric.label} {suffix}" if suffix else metric.label,
                      _metric(group, metric.name), metric.better, metric.digits, min_drugs=metric.min_drugs_to_rank)

    return ([column(m, "all") for m in metrics],
            [column(m, group) for m in metrics for group in m.groups if group != "all"])


def caveat_columns(runs: list[dict[str, Any]]) -> list[Column]:
    """A column for each caveat metric (bench.metric_registry: the share of predicted pairs the DDI graph
    can judge) on all test samples, only when some run's value is below 1: elsewhere it says nothing."""
    shown = []
    for metric in caveat_metrics():
        get = _metric("all", metric.name)
        if any((value := get(r)[0]) is not None and value < 1 for r in runs):
            shown.append(Column(metric.name, metric.label, get, None, metric.digits))
    return shown


ORACLE_SHARE = Column("prauc_of_oracle", "PRAUC / oracle", lambda r: (r.get("prauc_of_oracle"), None), "high", 3)


def with_oracle_share(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs, each with `prauc_of_oracle`: its PRAUC (mean) over the PRAUC of the ceiling model's run
    (ModelEntry.ceiling: the oracle) of the same dataset and source (your runs, or the reference runs);
    runs of datasets without one are unchanged."""
    ceiling_models = {entry.name for entry in models().values() if entry.ceiling}

    def prauc(record: dict[str, Any]) -> float | None:
        return _metric("all", "prauc")(record)[0]

    ceilings = {(r["dataset"]["name"], source(r)): prauc(r) for r in runs if base_model(r) in ceiling_models}
    shown = []
    for record in runs:
        ceiling, value = ceilings.get((record["dataset"]["name"], source(record))), prauc(record)
        if ceiling and value is not None:
            record = {**record, "prauc_of_oracle": value / ceiling}
        shown.append(record)
    return shown


def columns(oracle_share: bool = False, caveats: tuple[Column, ...] = ()) -> tuple[Column, ...]:
    """Every column of the comparison: the registry's metric columns and the `caveats` shown
    (caveat_columns), then (with an oracle run) each PRAUC as a share of the oracle's, the metrics on
    other groups, then the timing columns."""
    main, by_group = metric_columns()
    return (*main, *caveats, *((ORACLE_SHARE,) if oracle_share else ()), *by_group, *TIMING_COLUMNS)


OLD_TIMING_COLUMNS = ("latency_ms_p50", "throughput_per_s")   # marked when timed before timing version 2
OLD_TIMING_MARK = "†"
OLD_TIMING_NOTE = (f"{OLD_TIMING_MARK} timed before timing version {TIMING_VERSION}: the test samples' input "
                   "encodings could be cached between calls and left out of the time; re-run to re-time.")


@dataclass(frozen=True)
class Cell:
    value: float | None
    std: float | None
    best: bool
    missing: str = "n/a"        # the text of a null value ("< timer resolution" for a too-fast timing)
    mark: str = ""              # appended footnote mark (OLD_TIMING_MARK)
    significant: bool = False   # values under 1 keep 3 significant digits

    def text(self, digits: int) -> str:
        if self.value is None:
            return self.missing + self.mark
        if self.significant and abs(self.value) < 1:
            body = f"{self.value:.3g}"
        else:
            body = f"{self.value:,.{digits}f}" if digits == 0 else f"{self.value:.{digits}f}"
        body = f"{body} ± {self.std:.{digits}f}" if self.std is not None else body
        return body + self.mark


def _ranked(col: Column, record: dict[str, Any]) -> bool:
    """Whether `record` takes part in the column's best-value marking (Metric.min_drugs_to_rank: a DDI
    rate only counts for a model that predicts at least one drug per visit on average)."""
    if col.min_drugs <= 0:
        return True
    drugs = _metric("all", "avg_drugs")(record)[0]
    return drugs is not None and drugs >= col.min_drugs


def build_rows(runs: list[dict[str, Any]],
               cols: tuple[Column, ...] | None = None) -> list[tuple[dict[str, Any], list[Cell]]]:
    """One row per run over `cols` (default: columns()); a cell is best when it is the best value of its
    column within its dataset, by the metric's direction (DDI only among models predicting at least
    one drug per visit)."""
    cols = columns() if cols is None else cols
    values = [[col.get(r) for col in cols] for r in runs]
    rows = []
    for i, record in enumerate(runs):
        cells = []
        for j, col in enumerate(cols):
            value, std = values[i][j]
            peers = [values[k][j][0] for k, other in enumerate(runs)
                     if other["dataset"]["name"] == record["dataset"]["name"] and values[k][j][0] is not None
                     and _ranked(col, other)]
            if not _ranked(col, record):
                peers = []
            best = False
            if col.better and value is not None and len(peers) > 1:
                best = value == (max(peers) if col.better == "high" else min(peers))
            timing = record.get("timing") or {}
            below = col.below_flag is not None and value is None and bool(timing.get(col.below_flag))
            old = col.key in OLD_TIMING_COLUMNS and timing_version(record) < TIMING_VERSION
            cells.append(Cell(value, std, best, missing=BELOW_RESOLUTION if below else "n/a",
                              mark=OLD_TIMING_MARK if old else "", significant=col.significant))
        rows.append((record, cells))
    return rows


def _rich_table(rows: list[tuple[dict[str, Any], list[Cell]]], title: str, cols: tuple[Column, ...], shown: range,
                with_std: bool = True) -> Table:
    table = Table(title=title)
    table.add_column("dataset")
    table.add_column("model")
    for j in shown:
        table.add_column(cols[j].header, justify="right")
    for record, cells in rows:
        texts = []
        for j in shown:
            cell = cells[j] if with_std else replace(cells[j], std=None)
            text = cell.text(cols[j].digits)
            texts.append(f"[bold green]{text}[/]" if cell.best else text)
        table.add_row(record["dataset"]["name"], record["model"]["name"], *texts)
    return table


PINNED_DDI_NOTE = ("DDI rates of MIMIC datasets use the pinned DDI graph, GAMENet's: TWOSIDES pairs of the 40 "
                   "LEAST frequent side-effect types (its preprocessing meant the 40 most severe; GAMENet issue #18), "
                   "kept for comparability with the published numbers (docs/datasets.md#the-ddi-graph).")


def coverage_note(runs: list[dict[str, Any]]) -> str | None:
    """What "DDI judged" means and the ground truth's share per dataset, when some run's share is below 1."""
    if not any(col.key == "ddi_coverage" for col in caveat_columns(runs)):
        return None
    truth: dict[str, set[float]] = {}
    for record in runs:
        point = (record["metrics"].get("all", {}).get("ddi_coverage_true") or {})
        value = point.get("point", point.get("mean"))   # a seed row holds the mean of its runs' points
        if value is not None:
            truth.setdefault(record["dataset"]["name"], set()).add(round(value, 3))
    # runs of one dataset made with different DDI graphs (resources) disagree: their range
    shares = "; ".join(f"{name} " + "-".join(f"{v:.3f}" for v in sorted({min(values), max(values)}))
                       for name, values in sorted(truth.items()))
    return ("DDI judged: the share of predicted drug pairs whose two drugs the DDI graph knows; a pair outside "
            "the graph never counts as interacting, so below 1 the DDI rate is a lower bound "
            "(docs/evaluation.md#ddi-coverage)" + (f". Ground truth: {shares}." if shares else "."))


def footnotes(runs: list[dict[str, Any]]) -> list[str]:
    """The notes a table of `runs` needs: the old-timing dagger when a run was timed by version 1, the
    pinned DDI graph's known filter when a run read the drug-knowledge resources, the DDI coverage when
    a run's is below 1, and seed groups with runs missing."""
    old = [OLD_TIMING_NOTE] if any(timing_version(r) < TIMING_VERSION for r in runs) else []
    ddi = [PINNED_DDI_NOTE] if any(r.get("resources") for r in runs) else []
    coverage = coverage_note(runs)
    return old + ddi + ([coverage] if coverage else []) + missing_seeds_notes(runs)


def _csv_cells(cell: Cell) -> tuple[Any, Any]:
    """A cell's (value, std) for CSV: numbers unmarked, a null value empty unless it has a reason
    ("< timer resolution")."""
    value = cell.value if cell.value is not None else ("" if cell.missing == "n/a" else cell.missing)
    return value, "" if cell.std is None else cell.std


def render(runs: list[dict[str, Any]], fmt: str) -> str | Group:
    """The comparison as two rich Tables (`table`) or as Markdown / CSV / LaTeX text. Where a dataset has an
    oracle run (a generated cohort's ceiling) every row also shows its PRAUC as a share of the oracle's."""
    runs = with_oracle_share(runs)
    caveats = tuple(caveat_columns(runs))
    cols = columns(oracle_share=any("prauc_of_oracle" in r for r in runs), caveats=caveats)
    rows = build_rows(runs, cols)
    notes = footnotes(runs)
    if fmt == "table":
        n_main = len(metric_columns()[0]) + len(caveats)
        cost = _rich_table(rows, "single- vs multi-visit (mean) and cost", cols, range(n_main, len(cols)),
                           with_std=False)
        if notes:
            cost.caption = " ".join(notes)
        return Group(_rich_table(rows, f"accuracy: mean ± std, best in bold green ({uncertainty_note(runs)})", cols,
                                 range(0, n_main)), cost)
    if fmt == "md":
        lines = ["| dataset | model | " + " | ".join(c.header for c in cols) + " |",
                 "|---|---|" + "---:|" * len(cols)]
        for record, cells in rows:
            texts = [f"**{c.text(col.digits)}**" if c.best else c.text(col.digits) for c, col in zip(cells, cols)]
            lines.append(f"| {record['dataset']['name']} | {record['model']['name']} | " + " | ".join(texts) + " |")
        lines += ["", f"{uncertainty_note(runs)}.", *notes]
        return "\n".join(lines) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["dataset", "model", "source", "run_id",
                         *(h for c in cols for h in (c.key, f"{c.key}_std")), "timing_version", "uncertainty",
                         "seeds"])
        for record, cells in rows:
            writer.writerow([record["dataset"]["name"], base_model(record), source(record), record["run_id"],
                             *(v for c in cells for v in _csv_cells(c)), timing_version(record),
                             uncertainty_kind(record), ";".join(map(str, seeds_of(record)))])
        return out.getvalue()
    if fmt == "latex":
        lines = [r"\begin{tabular}{ll" + "r" * len(cols) + "}", r"\toprule",
                 "dataset & model & " + " & ".join(c.header for c in cols) + r" \\", r"\midrule"]
        for record, cells in rows:
            texts = [_latex(rf"\textbf{{{c.text(col.digits)}}}" if c.best else c.text(col.digits))
                     for c, col in zip(cells, cols)]
            lines.append(f"{record['dataset']['name']} & {record['model']['name']} & " + " & ".join(texts) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [_latex(note) + r" \\" for note in [f"{uncertainty_note(runs)}.", *notes]]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}")


def _latex(text: str) -> str:
    """A cell's text as LaTeX: ±, < and the dagger as math."""
    return (text.replace("±", r"$\pm$").replace(BELOW_RESOLUTION, r"$<$ timer resolution")
            .replace(OLD_TIMING_MARK, r"$^\dagger$"))
