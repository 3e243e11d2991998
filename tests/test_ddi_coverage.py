"""The DDI coverage (issue 18): the share of drug pairs the DDI graph can judge. By hand on tiny cases; the
graph's node set (the pinned GAMENet vocabulary, a node file, or the classes with a pair); the bundle and its
cache; run.json, the stored predictions and re-scoring; `bench compare`'s column and note; the MIMIC-III demo."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.analysis.compare import caveat_columns, footnotes, render
from bench.analysis.rescore import rescore
from bench.data import DatasetBundle, Patient, Visit, build_vocabs
from bench.errors import UserError
from bench.loading import load_bundle
from bench.metrics import evaluate, per_sample_metrics
from bench.prep.bundle_store import cached_bundle, store_bundle
from bench.prep.ddi_nodes import NODES_FILE, PINNED_GRAPH_NODES, edge_classes, graph_nodes
from bench.prep.drug_knowledge import DDI_PAIRS, load_medkb, read_ddi_pairs
from bench.progress import Progress
from bench.results import read_predictions
from bench.runner import RunOptions, run
from bench.timing import TimingOptions
from tests.conftest import data_path
from tests.test_metrics import onehot

MEDKB, DEMO = data_path("medkb"), data_path("mimic3-demo")
FAST = TimingOptions(latency_samples=3, batch_size=16, min_seconds=0.0)


# --- the metric, by hand --------------------------------------------------------------------------------

def _case():
    """4 drugs; the graph knows 0, 1, 2 (drug 3 is outside it) and has one edge, 0-1."""
    adj = np.zeros((4, 4), bool)
    adj[0, 1] = adj[1, 0] = True
    y_pred = onehot([{0, 1, 3}, {0, 1, 2, 3}, {2}], 4)
    y_true = onehot([{0, 2}, {3}, {1, 3}], 4)
    return y_true, y_pred, adj, np.array([True, True, True, False])


def test_coverage_by_hand():
    y_true, y_pred, adj, known = _case()
    point = evaluate(y_true, y_pred=y_pred, ddi_adj=adj, ddi_known=known, rounds=0)["all"]["point"]
    # predicted pairs 3 + 6 + 0, judged 1 (0-1) + 3 (0-1, 0-2, 1-2) + 0
    assert point["ddi_coverage"] == pytest.approx(4 / 9)
    # true pairs 1 + 0 + 1, judged 1 (0-2) + 0 + 0 (1-3: drug 3 is unknown)
    assert point["ddi_coverage_true"] == pytest.approx(1 / 2)
    assert point["ddi_rate"] == pytest.approx(2 / 9)   # the DDI rate still divides by every pair
    per_patient = evaluate(y_true, y_pred=y_pred, ddi_adj=adj, ddi_known=known, rounds=0,
                           patient_ids=np.array([1, 1, 2]))["all"]["point"]
    assert per_patient["ddi_coverage"] == pytest.approx(4 / 9)   # pooled: patients sum their pairs


def test_coverage_per_sample_parts_and_a_full_graph():
    y_true, y_pred, adj, known = _case()
    parts = per_sample_metrics(y_true, y_pred, None, adj, known)
    assert parts["judged_pairs"].tolist() == [1, 3, 0] and parts["all_pairs"].tolist() == [3, 6, 0]
    everything = evaluate(y_true, y_pred=y_pred, ddi_adj=adj, ddi_known=np.ones(4, bool), rounds=3)["all"]
    assert everything["point"]["ddi_coverage"] == 1.0 and everything["metrics"]["ddi_coverage"]["std"] == 0.0


def test_coverage_is_null_without_a_node_set_or_without_pairs():
    y_true, y_pred, adj, known = _case()
    point = evaluate(y_true, y_pred=y_pred, ddi_adj=adj, rounds=0)["all"]["point"]
    assert point["ddi_coverage"] is None and point["ddi_coverage_true"] is None
    assert "judged_pairs" not in per_sample_metrics(y_true, y_pred, None, adj)
    single = evaluate(y_true[2:], y_pred=y_pred[2:], ddi_adj=adj, ddi_known=known, rounds=0)["all"]["point"]
    assert single["ddi_coverage"] is None   # one predicted drug: no pair to judge


@pytest.mark.parametrize("known,message", [(np.ones(3, bool), "shape"),
                                           (np.array([True, False, True, True]), "every drug with a DDI edge")])
def test_a_node_mask_that_does_not_fit_is_refused(known, message):
    y_true, y_pred, adj, _ = _case()
    with pytest.raises(ValueError, match=message):
        evaluate(y_true, y_pred=y_pred, ddi_adj=adj, ddi_known=known, rounds=0)


# --- the graph's node set -------------------------------------------------------------------------------

def _pairs_folder(tmp_path: Path, rows: str = "A02B,N02B\nC07A,N02B\n") -> Path:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / DDI_PAIRS).write_text("atc3_a,atc3_b\n" + rows)
    return folder


def test_nodes_from_a_node_file_else_the_classes_with_pairs(tmp_path):
    folder = _pairs_folder(tmp_path)
    pairs = read_ddi_pairs(folder / DDI_PAIRS)
    assert graph_nodes(folder, pairs, "not the pinned checksum") == (frozenset({"A02B", "C07A", "N02B"}), "edges")
    (folder / NODES_FILE).write_text("atc3\nA02B\nB01A\nC07A\nN02B\n")
    assert graph_nodes(folder, pairs, "x") == (frozenset({"A02B", "B01A", "C07A", "N02B"}), "file")


@pytest.mark.parametrize("text,message", [("atc3\nA02B\nN02B\n", "lacks 1 class(es) of the DDI pairs (e.g. C07A)"),
                                          ("code\nA02B\n", "expected a column atc3")])
def test_a_bad_node_file_is_a_one_line_error(tmp_path, text, message):
    folder = _pairs_folder(tmp_path)
    (folder / NODES_FILE).write_text(text)
    with pytest.raises(UserError, match=re.escape(message)) as error:
        graph_nodes(folder, read_ddi_pairs(folder / DDI_PAIRS), "x")
    assert str(folder / NODES_FILE) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.needs_data("medkb")
def test_the_pinned_graph_knows_gamenets_151_classes(tmp_path):
    kb = load_medkb(MEDKB)
    assert kb.ddi_nodes_source == "pinned" and kb.ddi_nodes == PINNED_GRAPH_NODES
    with_pairs = edge_classes(kb.ddi_pairs)
    assert (len(PINNED_GRAPH_NODES), len(with_pairs)) == (151, 95) and with_pairs <= PINNED_GRAPH_NODES
    copy = tmp_path / "medkb"
    shutil.copytree(MEDKB, copy)
    (copy / DDI_PAIRS).chmod(0o644)
    with (copy / DDI_PAIRS).open("a") as handle:   # any other graph: its classes with pairs, a lower bound
        handle.write("A02A,V04C\n")   # two classes without a pinned pair
    modified = load_medkb(copy)
    assert modified.ddi_nodes_source == "edges" and len(modified.ddi_nodes) == 95 + 2


# --- the bundle -----------------------------------------------------------------------------------------

def _bundle(nodes: frozenset[str] | None) -> DatasetBundle:
    visits = (Visit(1, ("d1",), ("p1",), ("A02B", "N02B", "Z99Z")), Visit(2, ("d2",), (), ("A02B",)))
    patients = (Patient(7, visits),)
    return DatasetBundle("tiny", patients, build_vocabs(patients), {}, (("A02B", "N02B"),), {}, (), ddi_nodes=nodes)


def test_the_bundle_knows_which_drugs_the_graph_knows(tmp_path):
    assert _bundle(None).ddi_known().tolist() == [True, True, True]          # a generated cohort's own graph
    known = _bundle(frozenset({"A02B", "N02B"}))
    assert known.ddi_known().tolist() == [True, True, False]                 # vocabulary A02B, N02B, Z99Z
    assert known.hash != _bundle(None).hash != _bundle(frozenset({"A02B"})).hash
    for bundle in (known, _bundle(None)):
        store_bundle(bundle, "tiny-key", tmp_path)
        assert cached_bundle("tiny-key", tmp_path).ddi_nodes == bundle.ddi_nodes
        shutil.rmtree(tmp_path / "tiny-key")


# --- runs, predictions, re-scoring and `bench compare` --------------------------------------------------

@pytest.fixture(scope="module")
def popular_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    record, run_folder = run(RunOptions(model="popular", dataset="synthetic-small", results_dir=folder, timing=FAST,
                                        save_model=False), Progress())
    return {**record, "_path": str(run_folder)}


def test_a_synthetic_run_is_fully_covered(popular_run, small_bundle):
    assert small_bundle.ddi_nodes is None
    assert small_bundle.meta["summary"]["drugs_in_ddi_graph"] == len(small_bundle.drug_vocab)
    assert small_bundle.meta["summary"]["ddi_coverage_ground_truth"] == 1.0
    for group in ("all", "multi_visit"):
        entry = popular_run["metrics"][group]
        assert entry["ddi_coverage"]["point"] == 1.0 and entry["ddi_coverage_true"]["point"] == 1.0
    assert read_predictions(Path(popular_run["_path"])).ddi_known.all()
    assert rescore(popular_run, 0.3)["metrics"]["all"]["ddi_coverage"]["point"] == 1.0
    assert caveat_columns([popular_run]) == [] and not any("DDI judged" in note for note in footnotes([popular_run]))


def test_compare_shows_the_coverage_where_a_run_is_below_one(popular_run):
    partial = {**popular_run, "dataset": {**popular_run["dataset"], "name": "mimic4-demo"},
               "metrics": {"all": {**popular_run["metrics"]["all"],
                                   "ddi_coverage": {"mean": 0.625, "std": 0.01, "point": 0.6},
                                   "ddi_coverage_true": {"mean": 0.71, "std": 0.0, "point": 0.7}}}}
    assert [col.key for col in caveat_columns([popular_run, partial])] == ["ddi_coverage"]
    table = render([popular_run, partial], "md")
    assert "| DDI judged |" in table and "| 0.625 ± 0.010 |" in table and "| 1.000 ± 0.000 |" in table
    assert "Ground truth: mimic4-demo 0.700; synthetic-small 1.000." in table
    assert "ddi_coverage,ddi_coverage_std" in render([popular_run, partial], "csv")
    other_graph = {**partial, "metrics": {"all": {**partial["metrics"]["all"],
                                                   "ddi_coverage_true": {"mean": 0.5, "std": 0.0, "point": 0.5}}}}
    assert "Ground truth: mimic4-demo 0.500-0.700; synthetic-small 1.000." in "".join(footnotes([partial, other_graph,
                                                                                                 popular_run]))


# --- the MIMIC-III demo ---------------------------------------------------------------------------------

@pytest.mark.needs_data("mimic3-demo", "medkb")
def test_the_mimic3_demo_is_fully_covered_by_the_pinned_graph(tmp_path):
    demo = load_bundle("mimic3-demo", data_dir=DEMO, resources=MEDKB, cache_dir=tmp_path)
    assert demo.meta["ddi_nodes_source"] == "pinned" and demo.ddi_nodes == frozenset(demo.drug_vocab.tokens)
    summary = demo.meta["summary"]
    assert (summary["drugs_in_ddi_graph"], summary["ddi_coverage_ground_truth"]) == (100, 1.0)
    # only 76 of its 100 classes have a pair: taking the classes with pairs for the graph would judge 55%
    edges_only = replace(demo, ddi_nodes=frozenset(demo.drug_vocab.tokens) & edge_classes(demo.ddi_pairs))
    assert len(edges_only.ddi_nodes) == 76
    assert bundle_coverage(edges_only) == pytest.approx(0.5469, abs=1e-4)


def bundle_coverage(bundle: DatasetBundle) -> float:
    from bench.prep.summary import ground_truth_pairs

    _, judged, pairs = ground_truth_pairs(bundle)
    return judged / pairs
