"""`bench report`: one Markdown file for one dataset, ready for a paper appendix.

Sections: dataset summary, the main comparison table, the paired significance table against a reference
model, the plots (PNGs in `<stem>_plots/` next to the report, linked relatively), and each run's
config, seed, git sha and package versions. Built from the results files only (the paired DDI rate
uses the DDI graph stored with each run's predictions, see bench.analysis.paired). A model's row may be a
seed group (bench.analysis.seed_rows): the tables then show mean ± std over its training seeds and pair
the models seed by seed, and the runs section lists every member run.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.analysis.compare import render
from bench.errors import UserError
from bench.io import atomic_write_text
from bench.analysis.paired import paired_table, render_paired
from bench.analysis.seed_rows import is_seed_row, members
from bench.seed_groups import split_seed_of
from bench.timing import BELOW_FLAGS, BELOW_RESOLUTION, timing_version

TIMING_KEYS = ("fit_seconds", "latency_ms_p50", "throughput_per_s", "peak_rss_mb", "n_params")
FIGURES = (("frontier", "Accuracy against batch-1 latency (log axis): the accuracy/cost frontier."),
           ("ddi-jaccard", "DDI rate against Jaccard; the dashed line is the ground truth's DDI rate."),
           ("visits", "Jaccard on single-visit (solid) and multi-visit (hatched) patients."),
           ("groups", "PRAUC (or Jaccard) per evaluation group: rare and unseen codes, each mechanism of a "
                      "synthetic cohort."))


def plots_folder(out: Path) -> Path:
    """Where the report's PNGs go: `<out's folder>/<out's stem>_plots`."""
    return out.parent / f"{out.stem}_plots"


def choose_reference(runs: list[dict[str, Any]], vs: str | None) -> str:
    """`vs` if given, else the model with the best mean Jaccard (ties: first by name), so that the table
    says which models cannot be told apart from the best."""
    names = sorted(r["model"]["name"] for r in runs)
    if vs is not None:
        if vs not in names:
            raise UserError(f"--vs {vs!r}: no run of that model (models with runs: {', '.join(names)})")
        return vs

    def jaccard(run: dict[str, Any]) -> float:
        mean = run["metrics"]["all"]["jaccard"]["mean"]
        return float("-inf") if mean is None else mean

    return min(runs, key=lambda r: (-jaccard(r), r["model"]["name"]))["model"]["name"]


def _dataset_section(runs: list[dict[str, Any]]) -> list[str]:
    """A row per distinct dataset build (content hash + sizes) with the models run on it, then its meta."""
    builds: dict[tuple, list[str]] = {}
    for r in runs:
        d = r["dataset"]
        key = (d.get("hash"), d.get("n_train"), d.get("n_valid"), d.get("n_test"), d.get("n_drugs"),
               r.get("protocol"), json.dumps(r.get("split", {}).get("patients"), sort_keys=True))
        builds.setdefault(key, []).append(r["model"]["name"])
    lines = ["## Dataset", "",
             "| models | content hash | train samples | valid samples | test samples | drugs | protocol "
             "| patients per split |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for (hash_, n_train, n_valid, n_test, n_drugs, protocol, patients), models in builds.items():
        lines.append(f"| {', '.join(models)} | `{hash_}` | {n_train} | {n_valid} | {n_test} | {n_drugs} | "
                     f"{protocol} | {patients} |")
    if len(builds) > 1:
        lines += ["", "**Note:** the runs do not all share one dataset build; compare them with care."]
    seen: set[str] = set()
    for r in runs:
        d = r["dataset"]
        if d.get("hash") in seen:
            continue
        seen.add(d.get("hash"))
        extra = {k: d[k] for k in ("data_dir", "prep_overrides") if d.get(k)}
        lines += ["", f"Metadata of build `{d.get('hash')}`:", "", "```json",
                  json.dumps({**extra, **(d.get("meta") or {})}, indent=1, sort_keys=True), "```"]
    return lines


def _results_section(runs: list[dict[str, Any]]) -> list[str]:
    resampling = runs[0].get("resampling") or {}
    how = (f"{resampling.get('rounds')} rounds of {resampling.get('fraction')} resampling "
           f"{'with' if resampling.get('replace') else 'without'} replacement") if resampling else "resampling rounds"
    thresholds = sorted({str(r.get("threshold")) for r in runs})
    seeded = any(is_seed_row(r) for r in runs)
    spread = (f"Mean ± std, as the note under the table says: over training seeds, or over a run's {how}"
              if seeded else f"Mean ± std over {how}")
    return ["## Results", "",
            f"{spread}; threshold {', '.join(thresholds)}; best value per column in bold. "
            "Latency is batch-1 p50; throughput is samples over the summed time of whole batches of the run's "
            "batch size; both time raw samples to scores (input encoding included). \"< timer resolution\" marks "
            "a value the clock cannot measure.", "",
            str(render(runs, "md")).rstrip()]


def _significance_section(runs: list[dict[str, Any]], reference: str, n_boot: int, seed: int) -> list[str]:
    lines = [f"## Paired significance against {reference}", ""]
    if len(runs) < 2:
        return lines + ["Only one model has a run on this dataset: nothing to compare."]
    lines += ["Δ = other model minus the reference on the full test set. Interval: 2.5th and 97.5th "
              "percentiles of the differences over bootstrap replicates that draw the test samples (patients "
              "under the `every` protocol) with replacement, the same draws for both models. p (two-sided) = "
              "min(1, 2 min(#{Δ* ≤ 0} + 1, #{Δ* ≥ 0} + 1) / (B + 1)) over the B replicate differences Δ*.", ""]
    if any(is_seed_row(r) for r in runs):
        lines[-1:] = ["", "Where a row pairs several training seeds (column `seeds`), Δ is the mean over the "
                      "seeds of seed s of the model minus seed s of the reference, and each replicate also draws "
                      "the seed pairs with replacement (docs/evaluation.md).", ""]
    return lines + [str(render_paired(paired_table(runs, reference, n_boot=n_boot, seed=seed), "md")).rstrip()]


def _figures_section(dataset: str, plots: Path) -> list[str]:
    lines = ["## Figures", ""]
    for kind, caption in FIGURES:
        if not (plots / f"{dataset}-{kind}.png").exists():  # the groups plot exists only for grouped runs
            continue
        link = quote(f"{plots.name}/{dataset}-{kind}.png")
        lines += [f"![{dataset}: {kind}]({link})", "", f"*{caption}*", ""]
    return lines[:-1]


def _compact(values: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"
                     for k, v in (values or {}).items() if v is not None) or "(none)"


def _short(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else value


def _timing_values(timing: dict[str, Any]) -> dict[str, Any]:
    """The runs section's timing entries; a value below the timer resolution reads "< timer resolution"."""
    return {k: BELOW_RESOLUTION if timing.get(k) is None and timing.get(BELOW_FLAGS.get(k, "")) else _short(timing.get(k))
            for k in TIMING_KEYS}


def _runs_section(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["## Runs", ""]
    for r in (run for row in runs for run in members(row)):
        git = r.get("git") or {}
        split = r.get("split") or {}
        timing = r.get("timing") or {}
        sha = f"`{git.get('sha')}`" + (" (uncommitted changes)" if git.get("dirty") else "")
        lines += [f"### {r['model']['name']}: run `{r['run_id']}`", "",
                  f"- created: {r.get('created_at')}; folder: `{r.get('_path', '')}`",
                  f"- seed: {r.get('seed')}; split seed: {split_seed_of(r)}; threshold: {r.get('threshold')}; "
                  f"protocol: {r.get('protocol')}; split: {split.get('scheme')} {split.get('ratios')}"
                  + (f"; seed group `{r['seed_group']['id']}`" if r.get("seed_group") else ""),
                  f"- config: `{_compact(r['model'].get('config'))}`",
                  f"- overrides (`--set`): `{_compact(r.get('overrides'))}`",
                  f"- git: {sha}",
                  f"- versions: {_compact(r.get('versions'))}",
                  f"- device: {_compact(r.get('device'))}",
                  f"- timing (version {timing_version(r)}): {_compact(_timing_values(timing))}",
                  ""]
    return lines[:-1]


def build_report(runs: list[dict[str, Any]], dataset: str, out: Path, *, vs: str | None = None,
                 n_boot: int = 1000, seed: int = 0) -> str:
    """The report's Markdown for the latest runs of `dataset`; writes the plots beside `out`."""
    from bench.analysis.plots import write_plots

    runs = [r for r in runs if r["dataset"]["name"] == dataset]
    if not runs:
        raise UserError(f"--dataset {dataset!r}: no runs of that dataset (run `bench run --dataset {dataset}` first)")
    reference = choose_reference(runs, vs)
    plots = plots_folder(out)
    write_plots(runs, plots)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = [f"# medrec-bench report: {dataset}", "",
             f"Generated {created} by `bench report` from the latest run of each of {len(runs)} models "
             f"({', '.join(r['model']['name'] for r in runs)}).", "",
             *_dataset_section(runs), "", *_results_section(runs), "",
             *_significance_section(runs, reference, n_boot, seed), "",
             *_figures_section(dataset, plots), "", *_runs_section(runs)]
    return "\n".join(lines) + "\n"


def write_report(runs: list[dict[str, Any]], dataset: str, out: Path, *, vs: str | None = None,
                 n_boot: int = 1000, seed: int = 0) -> Path:
    """Write the report to `out` atomically (plots first, into `<stem>_plots/`); returns `out`."""
    atomic_write_text(out, build_report(runs, dataset, out, vs=vs, n_boot=n_boot, seed=seed))
    return out
