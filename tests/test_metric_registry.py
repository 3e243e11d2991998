"""The metric registry drives every consumer: adding a metric is one entry (here a temporary `toy_recall`,
registered with monkeypatch) and evaluation, run.json, `bench compare`, the paired tests, `bench rarity`,
`bench ls metrics` and `bench run`'s summary all show it; runs written before it existed show n/a."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from sklearn.metrics import recall_score
from typer.testing import CliRunner

from bench import metrics
from bench.analysis.compare import columns
from bench.analysis.significance import paired_metrics, ratio_terms
from bench.cli import app
from bench.metric_registry import METRICS, Inputs, Metric, model_metrics
from bench.progress import Progress
from bench.runner import RunOptions, run
from bench.timing import TimingOptions
from tests.test_rarity import results  # noqa: F401  (popular and `oracle` on synthetic-small, runs without toy_recall)

runner = CliRunner()
FAST = TimingOptions(latency_samples=3, batch_size=16, min_seconds=0.0)
TOY = Metric("toy_recall", "Toy recall", True, ("sets",), "mean set recall |P&T|/|T| (0 if T empty)",
             lambda x: x.recall, short="Toy", groups=("all", "multi_visit"))


def _inputs(n: int = 30, d: int = 8, seed: int = 0) -> Inputs:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random((n, d)), 1)
    adj = np.triu(rng.random((d, d)) < 0.3, 1)
    return Inputs(rng.random((n, d)) < 0.3, scores >= 0.5, scores, adj | adj.T, (adj | adj.T).any(axis=1))


def test_every_entry_gives_per_sample_arrays_of_its_declared_kind():
    x = _inputs()
    for name, metric in METRICS.items():
        assert metric.name == name and metric.label
        out = metric.per_sample(x)
        if metric.parts is None:        # a mean metric: values [n]
            assert np.shape(out) == (30,)
        else:                           # a pooled metric: (numerator [n], denominator [n])
            assert len(out) == 2 and all(np.shape(a) == (30,) for a in out)


def test_direction_is_declared_once_and_read_by_compare():
    for col in columns():
        metric = METRICS.get(col.key.removesuffix("_single").removesuffix("_multi"))
        if metric is not None:
            assert col.better == metric.better
    names = [m.name for m in model_metrics()]
    assert [c.key for c in columns()][:len(names)] == names
    assert paired_metrics() == [m.name for m in model_metrics()]
    assert "ddi_rate_true" not in paired_metrics()   # a property of the test set, not of a model


@pytest.mark.parametrize("bad", [dict(needs=()), dict(needs=("graph",)), dict(groups=("single_visit",)),
                                 dict(parts=("a", "a")), dict(about="model")])
def test_malformed_entries_are_refused(bad):
    with pytest.raises(ValueError, match="metric x"):
        Metric(**{**dict(name="x", label="X", higher_is_better=True, needs=("sets",), description="",
                         per_sample=lambda x: x.recall), **bad})


@pytest.fixture
def with_toy(monkeypatch):
    monkeypatch.setitem(METRICS, TOY.name, TOY)


def test_evaluation_and_patients_pick_up_a_new_entry(with_toy):
    x = _inputs(seed=1)
    expected = recall_score(x.y_true, x.y_pred, average="samples", zero_division=0)
    result = metrics.evaluate(x.y_true, x.scores, ddi_adj=x.ddi_adj, rounds=3)["all"]
    assert result["point"]["toy_recall"] == pytest.approx(expected)
    assert list(result["point"])[-1] == "toy_recall" and result["metrics"]["toy_recall"]["std"] is not None
    patients = np.repeat(np.arange(10), 3)
    per_patient = metrics.evaluate(x.y_true, x.scores, ddi_adj=x.ddi_adj, patient_ids=patients, rounds=0)["all"]
    by_patient = metrics.per_sample_metrics(x.y_true, x.y_pred, x.scores, x.ddi_adj)["toy_recall"].reshape(10, 3)
    assert per_patient["point"]["toy_recall"] == pytest.approx(by_patient.mean(axis=1).mean())
    terms = ratio_terms(metrics.per_sample_metrics(x.y_true, x.y_pred, x.scores, x.ddi_adj))
    assert "toy_recall" in terms and terms["toy_recall"][0].mean() == pytest.approx(expected)


def _table(output: str, first: str) -> list[list[str]]:
    """The Markdown table whose header starts with `first`, as rows of stripped cells."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return [rows[0], *rows[2:]]


def test_every_consumer_shows_a_new_entry(results, with_toy, capsys):  # noqa: F811
    from bench.cli.run import print_summary

    record, folder = run(RunOptions(model="popular", dataset="synthetic-small", results_dir=results, timing=FAST,
                                    save_model=False), Progress())
    stored = json.loads((folder / "run.json").read_text())["metrics"]
    assert all("toy_recall" in stored[group] for group in ("all", "single_visit", "multi_visit"))

    print_summary(record, folder)
    assert "toy_recall" in capsys.readouterr().out

    out = runner.invoke(app, ["compare", "--results-dir", str(results), "-f", "md", "--vs", "popular",
                              "--bootstrap", "50"])
    assert out.exit_code == 0, out.output
    head, *rows = _table(out.output, "| dataset | model |")
    assert "Toy recall" in head and "Toy multi" in head and "Toy single" not in head
    cells = {row[1]: dict(zip(head, row)) for row in rows}
    assert cells["oracle"]["Toy recall"] == "n/a"                       # written before toy_recall existed
    assert float(cells["popular"]["Toy recall"].split(" ± ")[0]) == pytest.approx(stored["all"]["toy_recall"]["mean"],
                                                                                abs=5e-5)
    head, *rows = _table(out.output, "| dataset | model | Δ")
    [oracle] = [dict(zip(head, row)) for row in rows if row[1] == "oracle"]
    assert oracle["Δ Toy recall"].startswith("+") and "*" in oracle["Δ Toy recall"]   # recomputed from predictions

    out = runner.invoke(app, ["rarity", "--dataset", "synthetic-small", "--results-dir", str(results), "-f", "csv"])
    assert out.exit_code == 0, out.output
    rarity = list(csv.DictReader(io.StringIO(out.output)))
    assert {r["model"] for r in rarity} == {"oracle", "popular"}
    assert all(float(r["toy_recall"]) == 1.0 for r in rarity if r["model"] == "oracle")

    out = runner.invoke(app, ["ls", "metrics"])
    assert "toy_recall" in out.output and "Toy recall" in out.output
