"""`bench compare --plot DIR`: PNG pictures of the latest runs, three or four per dataset.

* `<dataset>-frontier.png`: PRAUC against batch-1 latency (p50, log axis), the accuracy/cost frontier
  drawn through the models no other model beats on both. When any model has no PRAUC (hard predictions
  only), the whole plot uses Jaccard instead, so one axis never mixes two metrics. A model whose latency
  is below the timer resolution (null in run.json, bench.timing) has no point; the plot names it.
* `<dataset>-ddi-jaccard.png`: DDI rate against Jaccard, with the ground truth's DDI rate as a line.
* `<dataset>-visits.png`: Jaccard on single-visit vs multi-visit patients, two bars per model.
* `<dataset>-groups.png` (only where the runs hold evaluation groups beyond single/multi-visit:
  rare/unseen codes, mechanism tags; bench.groups): PRAUC (Jaccard when a model has none) per group,
  one bar per model in each group, the group's size under its name.

Values are the run.json means over the resampling rounds, error bars their std (for a seed group's row,
bench.analysis.seed_rows: the mean and std over its training seeds). A model has the same
colour in every plot and every call (`model_colours`), its committed reference run (" (ref)",
bench.analysis.reference, hollow markers) too. matplotlib is imported here only, through its
object API with the Agg canvas (no pyplot state), so `bench ls` and `bench compare` stay fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.io import atomic_path
from bench.analysis.reference import base_model, is_reference
from bench.metric_registry import METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# matplotlib's tab10 then the light half of tab20: colour-blind-friendlier first, 20 distinct colours.
PALETTE: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                            "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
                            "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5")
DPI = 150
FRONTIER_METRICS = ("prauc", "jaccard")   # the frontier's y axis: the first one every run has, else the last


def model_colours(names: Iterable[str]) -> dict[str, str]:
    """A colour per model: the sorted union of the registered models and `names`, over PALETTE in order,
    so a model keeps its colour across plots, datasets and calls."""
    from bench.registry import MODELS

    ordered = sorted(set(MODELS) | set(names))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ordered)}


def _metric(record: dict[str, Any], group: str, name: str) -> tuple[float | None, float | None]:
    entry = (record.get("metrics", {}).get(group) or {}).get(name) or {}
    return entry.get("mean"), entry.get("std")


def _figure(title: str) -> tuple[Figure, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=12)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _hollow(record: dict[str, Any]) -> dict[str, Any]:
    """Marker style of a committed reference run: hollow, so it differs from the user's run of the model."""
    return {"markerfacecolor": "white"} if is_reference(record) else {}


def _nothing(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no run has {what}", ha="center", va="center", transform=ax.transAxes)


def frontier_plot(runs: list[dict[str, Any]], dataset: str, colours: dict[str, str], path: Path) -> Path:
    """PRAUC (or Jaccard, see the module docstring) against batch-1 latency, log x axis; the frontier
    follows the metric's direction (bench.metric_registry)."""
    metric = next((m for m in FRONTIER_METRICS if all(_metric(r, "all", m)[0] is not None for r in runs)),
                  FRONTIER_METRICS[-1])
    label, sign = METRICS[metric].label, -1.0 if METRICS[metric].better == "low" else 1.0
    fig, ax = _figure(f"{dataset}: {label} vs batch-1 latency (accuracy/cost frontier)")
    points, too_fast = [], []
    for record in runs:
        (value, std), latency = _metric(record, "all", metric), record.get("timing", {}).get("latency_ms_p50")
        if latency is None and record.get("timing", {}).get("latency_below_resolution"):
            too_fast.append(record["model"]["name"])
        if value is None or latency is None or latency <= 0:
            continue
        name = record["model"]["name"]
        points.append((latency, value))
        ax.errorbar([latency], [value], yerr=[std or 0.0], fmt="o", ms=8, capsize=3, color=colours[base_model(record)],
                    label=name, **_hollow(record))
        ax.annotate(name, (latency, value), textcoords="offset points", xytext=(6, 6), fontsize=9)
    if points:
        best, frontier = float("-inf"), []
        for latency, value in sorted(points):
            if sign * value > best:
                best = sign * value
                frontier.append((latency, value))
        ax.plot(*zip(*frontier), ls="--", color="0.4", lw=1, drawstyle="steps-post", label="frontier")
        ax.set_xscale("log")
        ax.legend(fontsize=9, loc="best")
    else:
        _nothing(ax, f"both {label} and a latency")
    if too_fast:
        ax.text(0.01, 0.01, f"not drawn, latency below the timer resolution: {', '.join(too_fast)}",
                transform=ax.transAxes, fontsize=8, ha="left", va="bottom")
    ax.set_xlabel("batch-1 latency, p50 (ms, log scale; left is cheaper)")
    ax.set_ylabel(f"{label} (mean over resampling rounds; {METRICS[metric].direction})")
    return _save(fig, path)


def ddi_jaccard_plot(runs: list[dict[str, Any]], dataset: str, colours: dict[str, str], path: Path) -> Path:
    """DDI rate (y) against Jaccard (x); the ground truth's DDI rate as a dashed line. Axis labels say each
    metric's direction (bench.metric_registry)."""
    fig, ax = _figure(f"{dataset}: DDI rate vs Jaccard (lower right is better)")
    drawn = False
    for record in runs:
        (jac, jac_std), (ddi, ddi_std) = _metric(record, "all", "jaccard"), _metric(record, "all", "ddi_rate")
        if jac is None or ddi is None:
            continue
        name = record["model"]["name"]
        ax.errorbar([jac], [ddi], xerr=[jac_std or 0.0], yerr=[ddi_std or 0.0], fmt="o", ms=8, capsize=3,
                    color=colours[base_model(record)], label=name, **_hollow(record))
        ax.annotate(name, (jac, ddi), textcoords="offset points", xytext=(6, 6), fontsize=9)
        drawn = True
    truth = next((v for r in runs if (v := _metric(r, "all", "ddi_rate_true")[0]) is not None), None)
    if truth is not None:
        ax.axhline(truth, ls="--", color="0.4", lw=1, label=f"ground truth ({truth:.4f})")
    if drawn:
        ax.legend(fontsize=9, loc="best")
    else:
        _nothing(ax, "Jaccard and DDI rate")
    ax.set_xlabel(f"{METRICS['jaccard'].label} (mean over resampling rounds; {METRICS['jaccard'].direction})")
    ax.set_ylabel(f"DDI rate of the predicted sets ({METRICS['ddi_rate'].direction})")
    return _save(fig, path)


def visits_plot(runs: list[dict[str, Any]], dataset: str, colours: dict[str, str], path: Path) -> Path:
    """Jaccard of single-visit (solid) and multi-visit (hatched) patients, two bars per model."""
    from matplotlib.patches import Patch

    fig, ax = _figure(f"{dataset}: Jaccard on single- vs multi-visit patients")
    names = [r["model"]["name"] for r in runs]
    width = 0.38
    for i, record in enumerate(runs):
        colour = colours[base_model(record)]
        for offset, group, style in ((-width / 2, "single_visit", {}),
                                     (width / 2, "multi_visit", {"hatch": "//", "alpha": 0.55})):
            value, std = _metric(record, group, "jaccard")
            if value is not None:
                ax.bar(i + offset, value, width, yerr=std or 0.0, capsize=3, color=colour, edgecolor="black",
                       linewidth=0.6, **style)
    counts = {g: next((r["metrics"][g].get("n") for r in runs if r.get("metrics", {}).get(g)), None)
              for g in ("single_visit", "multi_visit")}
    ax.legend(handles=[Patch(facecolor="0.6", edgecolor="black", label=f"single-visit (n={counts['single_visit']})"),
                       Patch(facecolor="0.6", edgecolor="black", hatch="//", alpha=0.55,
                             label=f"multi-visit (n={counts['multi_visit']})")], fontsize=9, loc="best")
    crowded = len(names) > 5
    ax.set_xticks(range(len(names)), names, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_xlabel("model")
    ax.set_ylabel(f"{METRICS['jaccard'].label} (mean over resampling rounds)")
    ax.set_ylim(bottom=0)
    ax.grid(True, axis="x", alpha=0)
    return _save(fig, path)


BASIC_GROUPS = ("all", "single_visit", "multi_visit")


def extra_groups(runs: list[dict[str, Any]]) -> list[str]:
    """The evaluation groups beyond BASIC_GROUPS that any of `runs` holds, in run.json order."""
    names = dict.fromkeys(g for r in runs for g in r.get("metrics", {}))
    return [g for g in names if g not in BASIC_GROUPS]


def groups_plot(runs: list[dict[str, Any]], dataset: str, colours: dict[str, str], path: Path) -> Path:
    """PRAUC (Jaccard when a model has none) on "all" and every further evaluation group, one bar per model."""
    from matplotlib.patches import Patch

    groups = ["all", *extra_groups(runs)]
    metric = "prauc" if all(_metric(r, "all", "prauc")[0] is not None for r in runs) else "jaccard"
    fig, ax = _figure(f"{dataset}: {METRICS[metric].label} per evaluation group")
    fig.set_size_inches(max(7.5, 1.1 * len(groups) + 2), 4.8)
    width = 0.8 / max(len(runs), 1)
    for i, record in enumerate(runs):
        for j, group in enumerate(groups):
            value, std = _metric(record, group, metric)
            if value is not None:
                ax.bar(j - 0.4 + (i + 0.5) * width, value, width, yerr=std or 0.0, capsize=2,
                       color=colours[base_model(record)], edgecolor="black", linewidth=0.4,
                       hatch="//" if is_reference(record) else None)
    sizes = [next((r["metrics"][g].get("n") for r in runs if r.get("metrics", {}).get(g)), None) for g in groups]
    ax.set_xticks(range(len(groups)), [f"{g}\n(n={n})" for g, n in zip(groups, sizes)], fontsize=8)
    fig.legend(handles=[Patch(facecolor=colours[base_model(r)], edgecolor="black", label=r["model"]["name"])
                        for r in runs], fontsize=8, loc="outside right upper")
    ax.set_ylabel(f"{METRICS[metric].label} (mean; {METRICS[metric].direction})")
    ax.set_ylim(bottom=0)
    ax.grid(True, axis="x", alpha=0)
    return _save(fig, path)


PLOTS = (("frontier", frontier_plot), ("ddi-jaccard", ddi_jaccard_plot), ("visits", visits_plot))


def write_plots(runs: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Write the PNGs of every dataset in `runs` into `folder` (atomically: the three of PLOTS, and the
    groups plot where the runs hold further evaluation groups); returns their paths."""
    colours = model_colours(base_model(r) for r in runs)
    written = []
    for dataset in sorted({r["dataset"]["name"] for r in runs}):
        subset = sorted((r for r in runs if r["dataset"]["name"] == dataset), key=lambda r: r["model"]["name"])
        written += [plot(subset, dataset, colours, folder / f"{dataset}-{kind}.png") for kind, plot in PLOTS]
        if extra_groups(subset):
            written.append(groups_plot(subset, dataset, colours, folder / f"{dataset}-groups.png"))
    return written
