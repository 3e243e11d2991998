"""`bench compare`: the latest run per model and dataset as one table, best value per column marked;
with `--vs MODEL`, a paired-bootstrap table of every other model against MODEL (bench.significance)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.console import Group
from rich.table import Table

from bench import metrics
from bench.errors import UserError
from bench.results import PREDICTIONS_FILE, Predictions, read_predictions
from bench.significance import PAIRED_METRICS, SIGNIFICANT, Difference, align_keys, paired_bootstrap, ratio_terms

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


def build_rows(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[Cell]]]:
    """One row per run; a cell is best when it is the best value of its column within its dataset."""
    values = [[col.get(r) for col in COLUMNS] for r in runs]
    rows = []
    for i, record in enumerate(runs):
        cells = []
        for j, col in enumerate(COLUMNS):
            value, std = values[i][j]
            peers = [values[k][j][0] for k, other in enumerate(runs)
                     if other["dataset"]["name"] == record["dataset"]["name"] and values[k][j][0] is not None]
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


# --------------------------------------------------------------------------- paired significance (--vs)
@dataclass(frozen=True)
class PairedRow:
    """One model against the reference on one dataset: {metric: Difference or None (n/a)}."""

    dataset: str
    model: str
    differences: dict[str, Difference | None]


@dataclass(frozen=True)
class PairedTable:
    reference: str
    n_boot: int
    seed: int
    rows: list[PairedRow]
    notes: list[str]


@dataclass(frozen=True)
class _Loaded:
    """A run's test predictions with per-sample keys int [n, 2] (patient_id, visit_index)."""

    record: dict[str, Any]
    predictions: Predictions
    keys: np.ndarray


def _load(record: dict[str, Any]) -> _Loaded:
    from safetensors import SafetensorError

    folder = Path(record["_path"])
    try:
        preds = read_predictions(folder)
    except (OSError, KeyError, ValueError, SafetensorError) as exc:
        raise UserError(f"{folder / PREDICTIONS_FILE}: cannot read the run's predictions ({exc})") from None
    return _Loaded(record, preds, np.column_stack([preds.patient_id, preds.visit_index]))


@cache
def _ddi_pairs(name: str, content_hash: str, built_in: bool, overrides: tuple[tuple[str, str], ...]
               ) -> tuple[tuple[str, str], ...] | None:
    """The DDI pairs of the dataset bundle with this content hash: built-in data is generated again,
    prepared data is found in the bundle cache by its hash. None when neither works."""
    from bench.bundle_store import BUNDLE_FILE, cache_root

    if built_in:
        from bench.loading import load_bundle
        try:
            bundle = load_bundle(name, overrides=dict(overrides))
        except (UserError, ValueError, OSError):
            bundle = None
        if bundle is not None and bundle.hash == content_hash:
            return bundle.ddi_pairs
    for path in sorted(cache_root().glob(f"{name}-*/{BUNDLE_FILE}")):
        try:
            rest = json.loads(path.read_text(encoding="utf-8"))
            if rest.get("hash") == content_hash:
                return tuple(tuple(p) for p in rest["ddi_pairs"])
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return None


def ddi_adjacency(record: dict[str, Any], drugs: tuple[str, ...]) -> np.ndarray | None:
    """bool [d, d] DDI graph over the prediction columns `drugs` for the run's dataset, or None."""
    dataset = record["dataset"]
    pairs = _ddi_pairs(dataset["name"], dataset["hash"], dataset.get("data_dir") is None,
                       tuple(sorted((dataset.get("prep_overrides") or {}).items())))
    if pairs is None:
        return None
    index = {drug: i for i, drug in enumerate(drugs)}
    adj = np.zeros((len(drugs), len(drugs)), dtype=bool)
    for a, b in pairs:
        if a in index and b in index and a != b:
            adj[index[a], index[b]] = adj[index[b], index[a]] = True
    return adj


def _terms(loaded: _Loaded, order: np.ndarray, adj: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    p = loaded.predictions
    scores = None if p.scores is None else p.scores[order]
    per_sample = metrics.per_sample_metrics(p.target[order], p.predicted[order], scores, adj)
    every = loaded.record.get("protocol") == "every"
    return ratio_terms(per_sample, p.patient_id[order] if every else None)


def _pair_check(ref: _Loaded, other: _Loaded) -> np.ndarray:
    """Row order aligning `other` with `ref`; a UserError naming both runs when they cannot be paired."""
    names = f"{other.record['model']['name']} ({other.record['_path']}) and {ref.record['model']['name']} " \
            f"({ref.record['_path']})"
    if other.predictions.drugs != ref.predictions.drugs:
        raise UserError(f"--vs: {names} have different drug columns; paired comparison needs the same drugs")
    if other.record.get("protocol") != ref.record.get("protocol"):
        raise UserError(f"--vs: {names} use different --protocol values; paired comparison needs the same")
    try:
        order = align_keys(ref.keys, other.keys)
    except ValueError as exc:
        raise UserError(f"--vs: {names} have different test samples ({exc}); rerun with the same dataset, "
                        "split and seed") from None
    if not np.array_equal(other.predictions.target[order], ref.predictions.target):
        raise UserError(f"--vs: {names} have different targets for the same samples; rerun on the same dataset")
    return order


def _checked_ddi_graph(ref: _Loaded) -> np.ndarray | None:
    """The DDI graph of the reference run's dataset, if found and it reproduces the recorded DDI rate."""
    adj = ddi_adjacency(ref.record, ref.predictions.drugs)
    if adj is None:
        return None
    ps = metrics.per_sample_metrics(ref.predictions.target, ref.predictions.predicted, None, adj)
    pooled = ps["ddi_pairs"].sum() / ps["all_pairs"].sum() if ps["all_pairs"].sum() > 0 else 0.0
    recorded = ((ref.record["metrics"].get("all") or {}).get("ddi_rate") or {}).get("point")
    return adj if recorded is None or abs(pooled - recorded) <= 1e-9 else None


def paired_table(runs: list[dict[str, Any]], reference: str, *, n_boot: int = 1000, seed: int = 0) -> PairedTable:
    """Paired bootstrap of every model against `reference`, per dataset (from the saved predictions)."""
    if n_boot < 1:
        raise UserError(f"--bootstrap must be at least 1, got {n_boot}")
    datasets = sorted({r["dataset"]["name"] for r in runs})
    refs = {r["dataset"]["name"]: r for r in runs if r["model"]["name"] == reference}
    if not refs:
        models = sorted({r["model"]["name"] for r in runs})
        raise UserError(f"--vs {reference!r}: no run of that model (models with runs: {', '.join(models)})")
    rows, notes = [], []
    for dataset in datasets:
        if dataset not in refs:
            notes.append(f"{dataset}: no run of {reference}, skipped")
            continue
        ref = _load(refs[dataset])
        adj = _checked_ddi_graph(ref)
        if adj is None:
            notes.append(f"{dataset}: DDI rate n/a (the dataset's DDI graph was not found: rebuild it with "
                         "`bench prepare` for the same data and options)")
        graph = adj if adj is not None else np.zeros((len(ref.predictions.drugs),) * 2, dtype=bool)
        ref_terms = _terms(ref, np.arange(len(ref.keys)), graph)
        for record in runs:
            if record["dataset"]["name"] != dataset or record is refs[dataset]:
                continue
            other = _load(record)
            order = _pair_check(ref, other)
            diffs = paired_bootstrap(ref_terms, _terms(other, order, graph), n_boot=n_boot, seed=seed)
            if adj is None:
                diffs["ddi_rate"] = None
            rows.append(PairedRow(dataset, record["model"]["name"], diffs))
    return PairedTable(reference, n_boot, seed, rows, notes)


_PAIRED_HEADERS = {"jaccard": "Jaccard", "f1": "F1", "prauc": "PRAUC", "ddi_rate": "DDI", "avg_drugs": "#drugs"}
_DIGITS = {"avg_drugs": 2}


def _diff_text(d: Difference | None, name: str, sep: str = " ") -> str:
    if d is None:
        return "n/a"
    k = _DIGITS.get(name, 4)
    return f"{d.diff:+.{k}f}{'*' if d.significant else ''}{sep}[{d.low:+.{k}f}, {d.high:+.{k}f}]{sep}p={d.p_value:.3f}"


def paired_caption(table: PairedTable) -> str:
    return (f"paired bootstrap vs {table.reference}: other - {table.reference}, 95% percentile interval, "
            f"two-sided p ({table.n_boot} replicates over the same test samples, seed {table.seed}; "
            f"* p < {SIGNIFICANT})")


def render_paired(table: PairedTable, fmt: str) -> str | Table:
    """The paired comparison as a rich Table (`table`) or Markdown / CSV / LaTeX text."""
    head = ["dataset", "model", *(f"Δ {_PAIRED_HEADERS[m]}" for m in PAIRED_METRICS)]
    rows = [(r, [r.differences[m] for m in PAIRED_METRICS]) for r in table.rows]
    if fmt == "table":
        out = Table(title=paired_caption(table), caption="\n".join(table.notes) or None)
        for i, h in enumerate(head):
            out.add_column(h, justify="left" if i < 2 else "right")
        for r, diffs in rows:
            texts = [_diff_text(d, m, "\n") for d, m in zip(diffs, PAIRED_METRICS)]
            out.add_row(r.dataset, r.model, *(f"[bold]{t}[/]" if d is not None and d.significant else t
                                              for t, d in zip(texts, diffs)))
        return out
    if fmt == "md":
        lines = [f"{paired_caption(table)}.", "", "| " + " | ".join(head) + " |",
                 "|---|---|" + "---:|" * len(PAIRED_METRICS)]
        lines += [f"| {r.dataset} | {r.model} | " + " | ".join(_diff_text(d, m) for d, m in zip(diffs, PAIRED_METRICS))
                  + " |" for r, diffs in rows]
        return "\n".join(lines + [""] + [f"- {n}" for n in table.notes]) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["dataset", "model", "reference", *(f"{m}_{part}" for m in PAIRED_METRICS
                                                             for part in ("diff", "low", "high", "p"))])
        for r, diffs in rows:
            writer.writerow([r.dataset, r.model, table.reference,
                             *(("" if d is None else v) for d in diffs
                               for v in ((d.diff, d.low, d.high, d.p_value) if d else (None,) * 4))])
        return buffer.getvalue()
    if fmt == "latex":
        lines = [r"\begin{tabular}{ll" + "r" * len(PAIRED_METRICS) + "}", r"\toprule",
                 " & ".join(head).replace("Δ", r"$\Delta$").replace("#", r"\#") + r" \\", r"\midrule"]
        lines += [f"{r.dataset} & {r.model} & " + " & ".join(_diff_text(d, m).replace("*", "$^{*}$")
                                                              for d, m in zip(diffs, PAIRED_METRICS)) + r" \\"
                  for r, diffs in rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}")
