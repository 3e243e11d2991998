"""`bench compare --vs MODEL`: every other model against MODEL on the same test samples, per dataset.

Reads each run's predictions.safetensors (the results store, nothing else), pairs the runs (same
drug columns, protocol, test samples and targets, rows aligned by patient id and visit index), runs
the paired bootstrap of bench.analysis.significance and renders the table. The DDI rate uses the DDI graph
stored with the predictions; a pair of runs written before graphs were stored shows DDI as n/a.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from bench import metrics
from bench.errors import UserError
from bench.metric_registry import METRICS
from bench.results import Predictions, read_predictions
from bench.analysis.significance import (SIGNIFICANT, Difference, align_keys, paired_bootstrap, paired_metrics,
                                         ratio_terms)

__all__ = ["PairedRow", "PairedTable", "paired_table", "paired_caption", "render_paired"]

NO_GRAPH = "run predates stored DDI graphs; re-run to get DDI differences"


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

    @property
    def name(self) -> str:
        return self.record["model"]["name"]


def _load(record: dict[str, Any]) -> _Loaded:
    preds = read_predictions(Path(record["_path"]))
    return _Loaded(record, preds, np.column_stack([preds.patient_id, preds.visit_index]))


def _pair_check(ref: _Loaded, other: _Loaded) -> np.ndarray:
    """Row order aligning `other` with `ref`; a UserError naming both runs when they cannot be paired."""
    names = f"{other.name} ({other.record['_path']}) and {ref.name} ({ref.record['_path']})"
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


def _shared_graph(ref: _Loaded, other: _Loaded) -> tuple[np.ndarray | None, str]:
    """(graph, "") with the DDI graph stored with the pair (either run's: equal drug columns are already
    checked), or (None, why): "missing" when neither run stores one, "differs" when their graphs differ."""
    a, b = ref.predictions.ddi_adj, other.predictions.ddi_adj
    if a is None and b is None:
        return None, "missing"
    if a is not None and b is not None and not np.array_equal(a, b):
        return None, "differs"
    return (a if a is not None else b), ""


def _terms(loaded: _Loaded, order: np.ndarray, adj: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    p = loaded.predictions
    scores = None if p.scores is None else p.scores[order]
    predicted = p.predicted[order]
    if scores is not None and "rescored_from" in loaded.record:   # bench compare --threshold
        predicted = scores >= loaded.record["threshold"]
    per_sample = metrics.per_sample_metrics(p.target[order], predicted, scores, adj)
    every = loaded.record.get("protocol") == "every"
    return ratio_terms(per_sample, p.patient_id[order] if every else None)


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
        identity = np.arange(len(ref.keys))
        no_graph, other_graph = [], []
        for record in runs:
            if record["dataset"]["name"] != dataset or record is refs[dataset]:
                continue
            other = _load(record)
            order = _pair_check(ref, other)
            graph, why = _shared_graph(ref, other)
            adj = graph if graph is not None else np.zeros((len(ref.predictions.drugs),) * 2, dtype=bool)
            diffs = paired_bootstrap(_terms(ref, identity, adj), _terms(other, order, adj), n_boot=n_boot, seed=seed)
            if graph is None:   # every metric that reads the DDI graph is n/a
                diffs.update({name: None for name in diffs if "ddi" in METRICS[name].needs})
                (no_graph if why == "missing" else other_graph).append(other.name)
            rows.append(PairedRow(dataset, other.name, diffs))
        if no_graph:
            notes.append(f"{dataset}: DDI n/a for {', '.join(no_graph)} vs {reference}: {NO_GRAPH}")
        if other_graph:
            notes.append(f"{dataset}: DDI n/a for {', '.join(other_graph)}: stored DDI graph differs from "
                         f"{reference}'s (other drug-knowledge resources?); re-run both on the same data")
    return PairedTable(reference, n_boot, seed, rows, notes)


def _diff_text(d: Difference | None, name: str, sep: str = " ") -> str:
    if d is None:
        return "n/a"
    k = METRICS[name].digits
    return f"{d.diff:+.{k}f}{'*' if d.significant else ''}{sep}[{d.low:+.{k}f}, {d.high:+.{k}f}]{sep}p={d.p_value:.3f}"


def paired_caption(table: PairedTable) -> str:
    return (f"paired bootstrap vs {table.reference}: other - {table.reference}, 95% percentile interval, "
            f"two-sided p ({table.n_boot} replicates over the same test samples, seed {table.seed}; "
            f"* p < {SIGNIFICANT})")


def render_paired(table: PairedTable, fmt: str) -> str | Table:
    """The paired comparison as a rich Table (`table`) or Markdown / CSV / LaTeX text."""
    names = paired_metrics()
    head = ["dataset", "model", *(f"Δ {METRICS[m].label}" for m in names)]
    rows = [(r, [r.differences.get(m) for m in names]) for r in table.rows]
    if fmt == "table":
        out = Table(title=paired_caption(table), caption="\n".join(table.notes) or None)
        for i, h in enumerate(head):
            out.add_column(h, justify="left" if i < 2 else "right")
        for r, diffs in rows:
            texts = [_diff_text(d, m, "\n") for d, m in zip(diffs, names)]
            out.add_row(r.dataset, r.model, *(f"[bold]{t}[/]" if d is not None and d.significant else t
                                              for t, d in zip(texts, diffs)))
        return out
    if fmt == "md":
        lines = [f"{paired_caption(table)}.", "", "| " + " | ".join(head) + " |",
                 "|---|---|" + "---:|" * len(names)]
        lines += [f"| {r.dataset} | {r.model} | " + " | ".join(_diff_text(d, m) for d, m in zip(diffs, names))
                  + " |" for r, diffs in rows]
        return "\n".join(lines + [""] + [f"- {n}" for n in table.notes]) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["dataset", "model", "reference", *(f"{m}_{part}" for m in names
                                                             for part in ("diff", "low", "high", "p"))])
        for r, diffs in rows:
            writer.writerow([r.dataset, r.model, table.reference,
                             *(("" if d is None else v) for d in diffs
                               for v in ((d.diff, d.low, d.high, d.p_value) if d else (None,) * 4))])
        return buffer.getvalue()
    if fmt == "latex":
        lines = [r"\begin{tabular}{ll" + "r" * len(names) + "}", r"\toprule",
                 " & ".join(head).replace("Δ", r"$\Delta$").replace("#", r"\#") + r" \\", r"\midrule"]
        lines += [f"{r.dataset} & {r.model} & " + " & ".join(_diff_text(d, m).replace("*", "$^{*}$")
                                                              for d, m in zip(diffs, names)) + r" \\"
                  for r, diffs in rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}")
