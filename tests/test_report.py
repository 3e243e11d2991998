"""`bench compare --vs/--plot` and `bench report` on real runs (popular, logreg) of synthetic-small."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.analysis.significance import paired_metrics
from bench.cli import app
from bench.progress import Progress
from bench.results import Predictions, read_predictions, write_predictions, write_run
from bench.runner import RunOptions, run
from bench.timing import TimingOptions

runner = CliRunner()
FAST = TimingOptions(latency_samples=5, batch_size=16, min_seconds=0.0)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """popular and logreg (2 epochs) on synthetic-small, plus `oracle`: logreg's run with exact predictions."""
    folder = tmp_path_factory.mktemp("results")
    for model, overrides in (("popular", {}), ("logreg", {"epochs": "2"})):
        record, run_folder = run(RunOptions(model=model, dataset="synthetic-small", results_dir=folder, timing=FAST,
                                            overrides=overrides, save_model=False), Progress())
    preds = read_predictions(run_folder)
    oracle = run_folder.parent.parent / "oracle" / "run-oracle"
    write_predictions(oracle, Predictions(target=preds.target, predicted=preds.target,
                                          scores=preds.target.astype(np.float32), patient_id=preds.patient_id,
                                          visit_index=preds.visit_index, drugs=preds.drugs))
    write_run(oracle, {**record, "run_id": "run-oracle", "model": {"name": "oracle", "config": {}}})
    return folder


def test_compare_vs_marks_significant_differences(results):
    out = runner.invoke(app, ["compare", "--results-dir", str(results), "--vs", "popular", "-f", "md",
                              "--bootstrap", "300", "--seed", "1"])
    assert out.exit_code == 0, out.output
    assert "paired bootstrap vs popular" in out.output and "300 replicates" in out.output
    paired = out.output[out.output.index("paired bootstrap"):]
    [oracle] = [line for line in paired.splitlines() if line.startswith("| synthetic-small | oracle |")]
    cells = [c.strip() for c in oracle.strip("|").split("|")][2:]
    # oracle's file stores no DDI graph (written by hand above): the DDI column uses popular's stored graph
    assert len(cells) == len(paired_metrics()) and "n/a" not in oracle
    jaccard, f1, prauc, ddi = cells[:4]
    logreg_record, popular_record = (json.loads(next(results.glob(f"synthetic-small/{m}/*/run.json")).read_text())
                                     for m in ("logreg", "popular"))
    expected = (logreg_record["metrics"]["all"]["ddi_rate_true"]["point"]  # the oracle predicts the targets
                - popular_record["metrics"]["all"]["ddi_rate"]["point"])
    assert float(re.match(r"([+-][0-9.]+)", ddi).group(1)) == pytest.approx(expected, abs=5.1e-5)
    for cell in (jaccard, f1, prauc):
        diff = float(re.match(r"([+-][0-9.]+)\*", cell).group(1))
        low, high = map(float, re.search(r"\[([+-][0-9.]+), ([+-][0-9.]+)\]", cell).groups())
        assert diff > 0 and 0 < low <= diff <= high
    assert not any(line.startswith("| synthetic-small | popular |") for line in paired.splitlines())


def test_compare_vs_every_format(results):
    for fmt in ("table", "latex", "csv"):
        out = runner.invoke(app, ["compare", "--results-dir", str(results), "--vs", "logreg", "-f", fmt,
                                  "--bootstrap", "50"])
        assert out.exit_code == 0, out.output
        assert "oracle" in out.output and "popular" in out.output
    csv_rows = out.output.split("\n\n")[1].splitlines()  # the last format was csv: main table, blank line, paired
    assert csv_rows[0].startswith("dataset,model,reference,jaccard_diff,jaccard_low,jaccard_high,jaccard_p")


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000, path


def test_compare_plot_writes_pngs(results, tmp_path):
    out = runner.invoke(app, ["compare", "--results-dir", str(results), "--plot", str(tmp_path / "plots")])
    assert out.exit_code == 0, out.output
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    # synthetic-small (cohort v2) runs hold rare/unseen-code and mechanism groups: the groups plot too
    assert names == ["synthetic-small-ddi-jaccard.png", "synthetic-small-frontier.png", "synthetic-small-groups.png",
                     "synthetic-small-visits.png"]
    for name in names:
        _assert_png(tmp_path / "plots" / name)


def test_model_colours_are_stable():
    from bench.analysis.plots import model_colours

    a, b = model_colours(["popular", "logreg"]), model_colours(["logreg"])
    assert a["logreg"] == b["logreg"] and a["popular"] != a["logreg"]


def test_report_has_its_sections_and_links(results, tmp_path):
    out_file = tmp_path / "reports" / "small.md"
    out = runner.invoke(app, ["report", "--dataset", "synthetic-small", "--out", str(out_file),
                              "--results-dir", str(results), "--bootstrap", "100", "--vs", "logreg"])
    assert out.exit_code == 0, out.output
    text = out_file.read_text()
    for heading in ("# medrec-bench report: synthetic-small", "## Dataset", "## Results",
                    "## Paired significance against logreg", "## Figures", "## Runs",
                    "### logreg: run", "### popular: run", "### oracle: run"):
        assert heading in text, heading
    record = json.loads(next(results.glob("synthetic-small/logreg/*/run.json")).read_text())
    for expected in (record["dataset"]["hash"], record["git"]["sha"] or "None", "numpy=", "epochs=2",
                     "| synthetic-small | oracle |"):
        assert expected in text, expected
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 4 and all(link.startswith("small_plots/") for link in links)
    for link in links:
        _assert_png(out_file.parent / link)
    assert not list(out_file.parent.glob(".*.tmp"))


def test_report_user_errors(results, tmp_path):
    for args, expected in ((["--out", str(tmp_path / "r.txt")], "--out"),
                           (["--out", str(tmp_path / "r.md"), "--vs", "nosuch"], "--vs 'nosuch'"),
                           (["--out", str(tmp_path / "r.md"), "--dataset", "mimic3"], "--dataset 'mimic3'")):
        argv = ["report", "--dataset", "synthetic-small", "--results-dir", str(results), *args]
        if "--dataset" in args:
            argv = ["report", "--results-dir", str(results), *args]
        out = runner.invoke(app, argv)
        assert out.exit_code == 2 and expected in out.output and "Traceback" not in out.output, out.output


def test_compare_without_plot_does_not_import_matplotlib(results):
    code = ("import sys; from bench.cli import app; from typer.testing import CliRunner; "
            f"r = CliRunner().invoke(app, ['compare', '--results-dir', {str(results)!r}]); "
            "CliRunner().invoke(app, ['ls', 'models']); "
            "sys.exit(r.exit_code or (2 if 'matplotlib' in sys.modules else 0))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_efficiency_rows_give_student_over_teacher_ratios():
    from bench.analysis.efficiency import efficiency_rows, render_efficiency

    def record(model, throughput, latency, params, rss, batch=256):
        teacher = {"model": "leader-teacher", "distilled": False, "run_id": None} if model == "leader-student" else None
        return {"model": {"name": model}, "dataset": {"name": "d", "hash": "h", "n_test": 10}, "seed": 0,
                "timing": {"throughput_per_s": throughput, "latency_ms_p50": latency, "n_params": params,
                           "peak_rss_mb": rss, "throughput_batch_size": batch}, "teacher": teacher}

    runs = [record("leader-teacher", 10.0, 200.0, 1_000_000, 8000.0),
            record("leader-student", 250.0, 2.0, 10_000, 500.0), record("logreg", 1e5, 0.1, 100, 300.0)]
    (row,) = efficiency_rows(runs)
    assert (row.student, row.speedup_throughput, row.speedup_latency) == ("leader-student", 25.0, 100.0)
    assert (row.params_ratio, row.memory_ratio) == (100.0, 16.0)
    assert "25.0x" in render_efficiency([row], "md")
    runs[1] = {**runs[1], "fit": {"notes": {"distillation": {"teacher": {}}}}}
    (row,) = efficiency_rows(runs)
    assert row.speedup_throughput == 25.0 and "includes the teacher" in row.note
    runs[1] = record("leader-student", 250.0, 2.0, 10_000, 500.0, batch=64)
    (row,) = efficiency_rows(runs)
    assert row.speedup_throughput is None and "not comparable" in row.note


def test_compare_at_another_threshold_rescores_stored_predictions(results, tmp_path):
    import shutil

    from bench.analysis.rescore import rescore
    from bench.results import read_runs

    old = runner.invoke(app, ["compare", "--results-dir", str(results), "--threshold", "0.3"])
    assert old.exit_code == 2 and "written before DDI graphs were stored" in old.output   # the hand-made oracle
    results = Path(shutil.copytree(results, tmp_path / "results", ignore=shutil.ignore_patterns("oracle")))
    out = runner.invoke(app, ["compare", "--results-dir", str(results), "--threshold", "0.3", "-f", "csv"])
    assert out.exit_code == 0, out.output
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(out.stdout.split("\n\n")[0]))}
    [logreg] = [r for r in read_runs(results) if r["model"]["name"] == "logreg"]
    expected = rescore(logreg, 0.3)["metrics"]["all"]["jaccard"]["mean"]
    assert float(rows["logreg"]["jaccard"]) == pytest.approx(expected)
    assert expected != logreg["metrics"]["all"]["jaccard"]["mean"]
    paired = runner.invoke(app, ["compare", "--results-dir", str(results), "--threshold", "0.3", "--vs", "popular",
                                 "-f", "md", "--bootstrap", "50"])
    assert paired.exit_code == 0, paired.output
    [row] = [line for line in paired.stdout.splitlines() if line.startswith("| synthetic-small | logreg |")][-1:]
    [popular] = [r for r in read_runs(results) if r["model"]["name"] == "popular"]
    points = [rescore(r, 0.3)["metrics"]["all"]["jaccard"]["point"] for r in (logreg, popular)]
    shown = float(re.match(r"([+-][0-9.]+)", [c.strip() for c in row.strip("|").split("|")][2]).group(1))
    assert shown == pytest.approx(points[0] - points[1], abs=5.1e-5)      # the paired table re-scored too
    bad = runner.invoke(app, ["compare", "--results-dir", str(results), "--threshold", "1.5"])
    assert bad.exit_code == 2 and "--threshold must lie strictly between 0 and 1" in bad.output


def test_efficiency_pairs_a_student_with_the_run_it_names_not_by_model_name():
    from bench.analysis.efficiency import efficiency_rows, render_efficiency

    def record(model, run_id, throughput, teacher=None, notes=None):
        return {"run_id": run_id, "model": {"name": model}, "dataset": {"name": "d", "hash": "h", "n_test": 10},
                "seed": 0, "teacher": teacher, "fit": {"notes": notes or {}},
                "timing": {"throughput_per_s": throughput, "throughput_batch_size": 8, "n_params": 10}}

    big = record("big-llm", "t1", 2.0)
    small = record("small", "s1", 20.0, teacher={"model": "big-llm", "distilled": True, "run_id": "t1"})
    (row,) = efficiency_rows([big, small, record("other", "o1", 1.0)])
    assert (row.student, row.teacher, row.speedup_throughput) == ("small", "big-llm", 10.0)
    assert "includes the teacher" in row.note and "student vs big-llm" in render_efficiency([row], "md")
    # a run written before run.json's `teacher`: the run its distillation notes name
    legacy = record("small", "s1", 40.0, notes={"distillation": {"teacher": {"run_id": "t1"}}})
    (row,) = efficiency_rows([big, legacy])
    assert row.speedup_throughput == 20.0
    assert efficiency_rows([big, record("small", "s1", 40.0)]) == []   # declares no teacher: no row


def test_report_default_reference_is_the_best_jaccard():
    """Without --vs the significance table is against the model with the best mean Jaccard (ties: first
    by name; a run without Jaccard comes last)."""
    from bench.analysis.report import choose_reference

    def run(name: str, jaccard: float | None) -> dict:
        return {"model": {"name": name}, "metrics": {"all": {"jaccard": {"mean": jaccard}}}}

    runs = [run("a", 0.3), run("d", None), run("c", 0.5), run("b", 0.5)]
    assert choose_reference(runs, None) == "b"
    assert choose_reference(runs, "a") == "a"
    assert choose_reference([run("z", None), run("y", 0.1)], None) == "y"
