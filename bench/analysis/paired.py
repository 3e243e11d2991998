"""`bench compare --vs MODEL`: every other model against MODEL on the same test samples, per dataset.

Reads each run's predictions.safetensors (the results store, nothing else), pairs the runs (same
drug columns, protocol, test samples and targets, rows aligned by patient id and visit index), runs
the paired bootstrap of bench.analysis.significance and renders the table. The DDI rate uses the DDI graph
stored with the predictions; a pair of runs written before graphs were stored shows DDI as n/a.

Rows may be seed groups (bench.analysis.seed_rows). Runs are then paired by training seed: seed s of the
other model with seed s of the reference, over the seeds both rows have, every pair on the same test
samples; the pairs are pooled by the two-way bootstrap over seeds and test samples
(significance.pooled_paired_bootstrap). Two single runs pair as they always did, whatever their seeds.
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
from bench.analysis.seed_rows import is_seed_row, members
from bench.analysis.significance import (SIGNIFICANT, Difference, align_keys, paired_metrics, pooled_paired_bootstrap,
                                         ratio_terms)

__all__ = ["PairedRow", "PairedTable", "paired_table", "paired_caption", "render_paired", "seed_pairs"]

NO_GRAPH = "run predates stored DDI graphs; re-run to get DDI differences"


@dataclass(frozen=True)
class PairedRow:
    """One model against the reference on one dataset: {metric: Difference or None (n/a)}, over the
    training seeds paired (one pair of single runs: that pair's seed, the other model's)."""

    dataset: str
    model: str
    differences: dict[str, Difference | None]
    seeds: tuple[int, ...] = ()


@dataclass(frozen=True)
class PairedTable:
    reference: str
    n_boot: int
    seed: int
    rows: list[PairedRow]
    notes: list[str]
    group: str = "all"


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
                        "split and split seed") from None
    if not np.array_equal(other.predictions.target[order], ref.predictions.target):
        raise UserError(f"--vs: {names} have different targets for the same samples; rerun on the same dataset")
    return order


def _shared_graph(loaded: list[_Loaded]) -> tuple[np.ndarray | None, str]:
    """(graph, "") with the DDI graph stored with the paired runs (any run's: equal drug columns are
    already checked), or (None, why): "missing" when no run stores one, "differs" when their graphs differ."""
    graphs = [run.predictions.ddi_adj for run in loaded if run.predictions.ddi_adj is not None]
    if not graphs:
        return None, "missing"
    if any(not np.array_equal(graphs[0], graph) for graph in graphs[1:]):
        return None, "differs"
    return graphs[0], ""


def seed_pairs(reference: dict[str, Any], other: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (reference run, other run) pairs of two rows: by training seed, over the seeds both have, when
    either row is a seed group; the two runs themselves when both are single runs."""
    if not is_seed_row(reference) and not is_seed_row(other):
        return [(reference, other)]
    theirs = {run["seed"]: run for run in members(other)}
    return [(run, theirs[run["seed"]]) for run in members(reference) if run["seed"] in theirs]


def _terms(loaded: _Loaded, order: np.ndarray, adj: np.ndarray,
           rows: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The run's per-sample metric terms in `order`; `rows` (bool [n], in that order): only those samples."""
    p = loaded.predictions
    if rows is not None:
        order = order[rows]
    scores = None if p.scores is None else p.scores[order]
    predicted = p.predicted[order]
    if scores is not None and "rescored_from" in loaded.record:   # bench compare --threshold
        predicted = scores >= loaded.record["threshold"]
    per_sample = metrics.per_sample_metrics(p.target[order], predicted, scores, adj)
    every = loaded.record.get("protocol") == "every"
    return ratio_terms(per_sample, p.patient_id[order] if every else None)


def _group_rows(base: _Loaded, group: str | None) -> np.ndarray | None:
    """The evaluation group's mask over `base`'s test samples (None: every sample); a UserError when the
    run did not store that group or it holds no test sample."""
    if group is None or group == "all":
        return None
    stored = base.predictions.groups
    if stored is None or group not in stored:
        have = ", ".join(sorted(stored or ())) or "none (written before groups were stored)"
        raise UserError(f"--vs-group {group!r}: run {base.record['_path']} stores no such group (it has: {have})")
    mask = np.asarray(stored[group], dtype=bool)
    if not mask.any():
        raise UserError(f"--vs-group {group!r}: no test sample of run {base.record['_path']} is in it")
    return mask


def paired_table(runs: list[dict[str, Any]], reference: str, *, n_boot: int = 1000, seed: int = 0,
                 group: str | None = None) -> PairedTable:
    """Paired bootstrap of every model against `reference`, per dataset (from the saved predictions);
    `runs` are rows (bench.analysis.seed_rows: runs, or seed groups paired seed by seed). `group`: an
    evaluation group (bench.groups; its mask as stored with the reference's predictions): only its
    test samples are compared."""
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
        no_graph, other_graph, loaded = [], [], {}
        for record in runs:
            if record["dataset"]["name"] != dataset or record is refs[dataset]:
                continue
            pairs = seed_pairs(refs[dataset], record)
            name = record["model"]["name"]
            if not pairs:
                notes.append(f"{dataset}: {name} has no training seed in common with {reference} "
                             f"(bench run --seeds with the same seeds), skipped")
                continue
            for run in (run for pair in pairs for run in pair):
                loaded.setdefault(id(run), _load(run))
            base = loaded[id(pairs[0][0])]   # every run is aligned to the first reference run's test samples
            orders = [[_pair_check(base, loaded[id(run)]) for run in pair] for pair in pairs]
            graph, why = _shared_graph([loaded[id(run)] for pair in pairs for run in pair])
            adj = graph if graph is not None else np.zeros((len(base.predictions.drugs),) * 2, dtype=bool)
            rows_in_group = _group_rows(base, group)
            terms = [[_terms(loaded[id(run)], order, adj, rows_in_group) for run, order in zip(pair, pair_orders)]
                     for pair, pair_orders in zip(pairs, orders)]
            diffs = pooled_paired_bootstrap([ref for ref, _ in terms], [oth for _, oth in terms], n_boot=n_boot,
                                            seed=seed)
            if graph is None:   # every metric that reads the DDI graph is n/a
                diffs.update({metric: None for metric in diffs if "ddi" in METRICS[metric].needs})
                (no_graph if why == "missing" else other_graph).append(name)
            rows.append(PairedRow(dataset, name, diffs, tuple(oth["seed"] for _, oth in pairs)))
        if no_graph:
            notes.append(f"{dataset}: DDI n/a for {', '.join(no_graph)} vs {reference}: {NO_GRAPH}")
        if other_graph:
            notes.append(f"{dataset}: DDI n/a for {', '.join(other_graph)}: stored DDI graph differs from "
                         f"{reference}'s (other drug-knowledge resources?); re-run both on the same data")
    return PairedTable(reference, n_boot, seed, rows, notes, group or "all")


def _diff_text(d: Difference | None, name: str, sep: str = " ") -> str:
    if d is None:
        return "n/a"
    k = METRICS[name].digits
    return f"{d.diff:+.{k}f}{'*' if d.significant else ''}{sep}[{d.low:+.{k}f}, {d.high:+.{k}f}]{sep}p={d.p_value:.3f}"


def pooled(table: PairedTable) -> bool:
    """Whether any row pools more than one pair of training seeds."""
    return any(len(r.seeds) > 1 for r in table.rows)


def paired_caption(table: PairedTable) -> str:
    where = "" if table.group == "all" else f" (evaluation group {table.group} only)"
    return _caption(table) + where


def _caption(table: PairedTable) -> str:
    if pooled(table):
        return (f"paired two-way bootstrap vs {table.reference} over training seeds and test samples: other - "
                f"{table.reference} averaged over the paired seeds (seed s with seed s, on the same test samples), "
                f"95% percentile interval, two-sided p ({table.n_boot} replicates each resampling the seed pairs "
                f"and the test samples, seed {table.seed}; * p < {SIGNIFICANT})")
    return (f"paired bootstrap vs {table.reference}: other - {table.reference}, 95% percentile interval, "
            f"two-sided p ({table.n_boot} replicates over the same test samples, seed {table.seed}; "
            f"* p < {SIGNIFICANT})")


def _seeds_text(row: PairedRow) -> str:
    return ",".join(map(str, row.seeds))


def render_paired(table: PairedTable, fmt: str) -> str | Table:
    """The paired comparison as a rich Table (`table`) or Markdown / CSV / LaTeX text; a `seeds` column
    (the training seeds paired) when any row pools several seeds, and always in CSV."""
    names = paired_metrics()
    with_seeds = pooled(table)
    keys = ["dataset", "model", *(["seeds"] if with_seeds else [])]
    head = [*keys, *(f"Δ {METRICS[m].label}" for m in names)]
    rows = [(r, [r.differences.get(m) for m in names]) for r in table.rows]

    def first(r: PairedRow) -> list[str]:
        return [r.dataset, r.model, *([_seeds_text(r)] if with_seeds else [])]

    if fmt == "table":
        out = Table(title=paired_caption(table), caption="\n".join(table.notes) or None)
        for i, h in enumerate(head):
            out.add_column(h, justify="left" if i < len(keys) else "right")
        for r, diffs in rows:
            texts = [_diff_text(d, m, "\n") for d, m in zip(diffs, names)]
            out.add_row(*first(r), *(f"[bold]{t}[/]" if d is not None and d.significant else t
                                     for t, d in zip(texts, diffs)))
        return out
    if fmt == "md":
        lines = [f"{paired_caption(table)}.", "", "| " + " | ".join(head) + " |",
                 "|" + "---|" * len(keys) + "---:|" * len(names)]
        lines += ["| " + " | ".join(first(r)) + " | " + " | ".join(_diff_text(d, m) for d, m in zip(diffs, names))
                  + " |" for r, diffs in rows]
        return "\n".join(lines + [""] + [f"- {n}" for n in table.notes]) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["dataset", "model", "reference", *(f"{m}_{part}" for m in names
                                                             for part in ("diff", "low", "high", "p")), "seeds"])
        for r, diffs in rows:
            writer.writerow([r.dataset, r.model, table.reference,
                             *(("" if d is None else v) for d in diffs
                               for v in ((d.diff, d.low, d.high, d.p_value) if d else (None,) * 4)),
                             ";".join(map(str, r.seeds))])
        return buffer.getvalue()
    if fmt == "latex":
        lines = [r"\begin{tabular}{" + "l" * len(keys) + "r" * len(names) + "}", r"\toprule",
                 " & ".join(head).replace("Δ", r"$\Delta$").replace("#", r"\#") + r" \\", r"\midrule"]
        lines += [" & ".join(first(r)) + " & " + " & ".join(_diff_text(d, m).replace("*", "$^{*}$")
                                                           for d, m in zip(diffs, names)) + r" \\"
                  for r, diffs in rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}")
