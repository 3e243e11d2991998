"""Paired bootstrap (bench.analysis.significance) on cases with a known answer, and pairing checks on run folders."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from bench import metrics
from bench.cli import app
from bench.errors import UserError
from bench.analysis.paired import NO_GRAPH, paired_caption, paired_table
from bench.results import SCHEMA_VERSION, Predictions, read_predictions, read_runs, write_predictions, write_run
from bench.analysis.significance import (align_keys, bootstrap_counts, p_value, paired_bootstrap, paired_metrics,
                                ratio_terms)

N, D = 60, 12
ADJ = np.zeros((D, D), dtype=bool)
ADJ[0, 1] = ADJ[1, 0] = ADJ[2, 5] = ADJ[5, 2] = ADJ[3, 7] = ADJ[7, 3] = True


def _case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bool targets [N, D] (>= 2 drugs each), float scores [N, D], predictions at 0.5."""
    rng = np.random.default_rng(seed)
    target = rng.random((N, D)) < 0.35
    target[:, :2] = True
    scores = np.clip(0.55 * target + 0.6 * rng.random((N, D)), 0, 1)
    return target, scores, scores >= 0.5


def _terms(target, scores, predicted, patient_ids=None):
    return ratio_terms(metrics.per_sample_metrics(target, predicted, scores, ADJ), patient_ids)


def test_identical_predictions_give_zero_difference_and_p_one():
    target, scores, predicted = _case()
    terms = _terms(target, scores, predicted)
    result = paired_bootstrap(terms, terms, n_boot=500, seed=1)
    for name in paired_metrics():
        d = result[name]
        assert d.diff == 0 and d.low == 0 and d.high == 0
        assert d.p_value == 1.0 and not d.significant


def test_a_model_better_on_every_sample_is_significant():
    target, _, _ = _case()
    wrong = np.argmin(target, axis=1)  # a drug outside each target set
    noisy = target.copy()
    noisy[np.arange(N), wrong] = True
    scores = 0.3 + 0.4 * target
    scores[np.arange(N), wrong] = 0.9  # ranked first: precision < 1 at every positive
    worse = _terms(target, scores, noisy)
    oracle = _terms(target, target.astype(float), target)  # exact sets: Jaccard 1 on every sample
    assert (oracle["jaccard"][0] > worse["jaccard"][0]).all()
    result = paired_bootstrap(worse, oracle, n_boot=999, seed=0)
    for name in ("jaccard", "f1", "prauc"):
        d = result[name]
        assert d.diff > 0 and d.low > 0 and d.significant
        assert d.p_value == pytest.approx(2 / 1000)  # the smallest p 999 replicates can give
    assert result["jaccard"].other == pytest.approx(1.0)


def test_point_values_and_replicates_match_metrics_aggregate():
    target, scores, predicted = _case(3)
    per_sample = metrics.per_sample_metrics(target, predicted, scores, ADJ)
    terms = ratio_terms(per_sample)
    full = metrics.aggregate(per_sample)
    result = paired_bootstrap(terms, terms, n_boot=10, seed=0)
    for name in paired_metrics():
        assert result[name].reference == pytest.approx(full[name])
    # one count matrix row = one index vector of metrics.aggregate
    idx = np.random.default_rng(7).integers(0, N, size=(4, N))
    counts = bootstrap_counts(N, 4, np.random.default_rng(7))
    for b in range(4):
        expected = metrics.aggregate(per_sample, idx[b])
        for name, (num, den) in terms.items():
            got = counts[b] @ num / (counts[b] @ den) if counts[b] @ den > 0 else 0.0
            assert got == pytest.approx(expected[name])


def test_every_protocol_resamples_patients_like_the_runner():
    target, scores, predicted = _case(4)
    patients = np.repeat(np.arange(N // 3), 3)
    terms = _terms(target, scores, predicted, patients)
    assert len(terms["jaccard"][0]) == N // 3
    point = metrics.evaluate(target, scores, ddi_adj=ADJ, patient_ids=patients, rounds=0)["all"]["point"]
    result = paired_bootstrap(terms, terms, n_boot=5)
    for name in paired_metrics():
        assert result[name].reference == pytest.approx(point[name])


def test_interval_contains_the_difference_and_missing_prauc_is_none():
    target, scores, predicted = _case(5)
    _, other_scores, other_predicted = _case(6)
    a, b = _terms(target, scores, predicted), _terms(target, other_scores, other_predicted)
    result = paired_bootstrap(a, b, n_boot=300, seed=2)
    for name in paired_metrics():
        assert result[name].low <= result[name].diff <= result[name].high
    hard = _terms(target, None, other_predicted)
    assert "prauc" not in hard
    assert paired_bootstrap(a, hard, n_boot=20)["prauc"] is None


def test_p_value_definition():
    assert p_value(np.zeros(100)) == 1.0
    assert p_value(np.ones(999)) == pytest.approx(0.002)
    assert p_value(np.r_[-np.ones(24), np.ones(975)]) == pytest.approx(2 * 25 / 1000)


def test_align_keys():
    keys = np.column_stack([np.arange(10) // 2, np.arange(10) % 2])
    perm = np.random.default_rng(0).permutation(10)
    order = align_keys(keys, keys[perm])
    np.testing.assert_array_equal(keys[perm][order], keys)
    with pytest.raises(ValueError, match="differ"):
        align_keys(keys, keys + [[0, 1]])
    with pytest.raises(ValueError, match="samples"):
        align_keys(keys, keys[:9])
    with pytest.raises(ValueError, match="duplicate"):
        align_keys(np.zeros((2, 2), int), np.zeros((2, 2), int))


# --------------------------------------------------------------------------- run folders
def _write(results, model, target, predicted, scores, *, keys=None, drugs=None, dataset="toy", ddi_adj=None,
           groups=None):
    """A minimal run written with the real writers; without `ddi_adj` it is like a run written before
    predictions stored their DDI graph."""
    folder = results / dataset / model / f"run-{model}"
    keys = keys if keys is not None else np.column_stack([np.arange(len(target)), np.zeros(len(target), int)])
    write_predictions(folder, Predictions(target=target, predicted=predicted, scores=scores,
                                          patient_id=keys[:, 0], visit_index=keys[:, 1],
                                          drugs=drugs or tuple(f"D{i:02d}" for i in range(target.shape[1])),
                                          ddi_adj=ddi_adj, groups=groups))
    write_run(folder, {"schema_version": SCHEMA_VERSION, "run_id": f"run-{model}", "created_at": "2026-01-01",
                       "model": {"name": model, "config": {}}, "protocol": "last", "seed": 0,
                       "dataset": {"name": dataset, "hash": "0" * 16, "n_test": len(target), "n_drugs": D},
                       "metrics": {"all": {"jaccard": {"mean": 0.5, "std": 0.0}}}, "timing": {}})


def test_runs_pair_and_hard_predictions_show_na(tmp_path):
    target, scores, predicted = _case()
    _write(tmp_path, "ref", target, predicted, scores)
    perm = np.random.default_rng(1).permutation(N)
    keys = np.column_stack([np.arange(N), np.zeros(N, int)])[perm]
    _write(tmp_path, "same", target[perm], predicted[perm], scores[perm], keys=keys)  # same, reordered
    _write(tmp_path, "hard", target, target, None)
    table = paired_table(read_runs(tmp_path), "ref", n_boot=200)
    rows = {r.model: r.differences for r in table.rows}
    assert rows["same"]["jaccard"].diff == 0 and rows["same"]["jaccard"].p_value == 1.0
    assert rows["hard"]["prauc"] is None and rows["hard"]["jaccard"].significant
    assert rows["hard"]["ddi_rate"] is None  # no run stores a DDI graph
    assert table.notes == [f"toy: DDI n/a for hard, same vs ref: {NO_GRAPH}"]
    out = CliRunner().invoke(app, ["compare", "--results-dir", str(tmp_path), "--vs", "ref", "-f", "md",
                                   "--bootstrap", "200"])
    assert out.exit_code == 0, out.output
    hard_line = [line for line in out.output.splitlines() if line.startswith("| toy | hard |")][-1]  # paired table
    assert hard_line.count("n/a") == 2 and "*" in hard_line  # PRAUC and DDI n/a; Jaccard significant
    assert NO_GRAPH in out.output


def test_a_group_comparison_is_the_comparison_of_that_groups_samples_alone(tmp_path):
    target, scores, predicted = _case()
    other_scores = np.clip(scores + np.random.default_rng(2).normal(0, 0.2, scores.shape), 0, 1)
    mask = np.arange(N) % 3 == 0
    groups = {"single_visit": mask, "empty": np.zeros(N, bool)}
    _write(tmp_path / "all", "ref", target, predicted, scores, groups=groups, ddi_adj=ADJ)
    _write(tmp_path / "all", "other", target, other_scores >= 0.5, other_scores, groups=groups, ddi_adj=ADJ)
    _write(tmp_path / "part", "ref", target[mask], predicted[mask], scores[mask], ddi_adj=ADJ,
           keys=np.column_stack([np.arange(N)[mask], np.zeros(mask.sum(), int)]))
    _write(tmp_path / "part", "other", target[mask], other_scores[mask] >= 0.5, other_scores[mask], ddi_adj=ADJ,
           keys=np.column_stack([np.arange(N)[mask], np.zeros(mask.sum(), int)]))
    grouped = paired_table(read_runs(tmp_path / "all"), "ref", n_boot=300, group="single_visit")
    alone = paired_table(read_runs(tmp_path / "part"), "ref", n_boot=300)
    whole = paired_table(read_runs(tmp_path / "all"), "ref", n_boot=300)
    for metric in ("jaccard", "prauc", "ddi_rate"):
        assert grouped.rows[0].differences[metric] == alone.rows[0].differences[metric]
    assert grouped.rows[0].differences["prauc"].diff != whole.rows[0].differences["prauc"].diff
    assert grouped.group == "single_visit" and "single_visit only" in paired_caption(grouped)
    with pytest.raises(UserError, match="stores no such group"):
        paired_table(read_runs(tmp_path / "all"), "ref", n_boot=10, group="unseen_code")
    with pytest.raises(UserError, match="no test sample"):
        paired_table(read_runs(tmp_path / "all"), "ref", n_boot=10, group="empty")
    out = CliRunner().invoke(app, ["compare", "--results-dir", str(tmp_path / "all"), "--vs-group", "single_visit"])
    assert out.exit_code == 2 and "needs --vs" in out.output


@pytest.mark.parametrize("change", ["samples", "drugs", "targets"])
def test_runs_that_cannot_be_paired_are_a_user_error(tmp_path, change):
    target, scores, predicted = _case()
    _write(tmp_path, "ref", target, predicted, scores)
    if change == "samples":
        keys = np.column_stack([np.arange(N) + 1, np.zeros(N, int)])
        _write(tmp_path, "other", target, predicted, scores, keys=keys)
    elif change == "drugs":
        _write(tmp_path, "other", target, predicted, scores, drugs=tuple(f"X{i}" for i in range(D)))
    else:
        _write(tmp_path, "other", ~target, predicted, scores)
    with pytest.raises(UserError, match=r"--vs: other .* and ref .*" + change[:-1]):
        paired_table(read_runs(tmp_path), "ref", n_boot=10)
    out = CliRunner().invoke(app, ["compare", "--results-dir", str(tmp_path), "--vs", "ref"])
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) <= 2  # one (possibly wrapped) line


def test_unknown_reference_and_bad_bootstrap(tmp_path):
    target, scores, predicted = _case()
    _write(tmp_path, "ref", target, predicted, scores)
    out = CliRunner().invoke(app, ["compare", "--results-dir", str(tmp_path), "--vs", "nosuch"])
    assert out.exit_code == 2 and "--vs 'nosuch'" in out.output and "ref" in out.output
    out = CliRunner().invoke(app, ["compare", "--results-dir", str(tmp_path), "--vs", "ref", "--bootstrap", "0"])
    assert out.exit_code == 2 and "--bootstrap" in out.output


# --------------------------------------------------------------------------- stored DDI graphs
def _ddi_case():
    """4 samples, 4 drugs, one interacting pair (D00, D01). Unordered pairs of the predicted sets:
    ref {0,1,2} {0,1,2} {2,3} {2,3}: 2 of 8 interact (0.25); other {0,1} {1,2,3} x3: 1 of 10 (0.10)."""
    adj = np.zeros((4, 4), dtype=bool)
    adj[0, 1] = adj[1, 0] = True
    target = np.ones((4, 4), dtype=bool)
    ref = np.zeros((4, 4), dtype=bool)
    ref[:2, :3] = True
    ref[2:, 2:] = True
    other = np.zeros((4, 4), dtype=bool)
    other[0, :2] = True
    other[1:, 1:] = True
    return adj, target, ref, other


@pytest.mark.parametrize("stored_by", ["both", "ref", "other"])
def test_ddi_differences_come_from_the_stored_graph(tmp_path, stored_by):
    adj, target, ref, other = _ddi_case()
    # "synthetic-small" has a DDI graph of its own; compare must use the stored one, not rebuild the dataset's
    dataset = "synthetic-small"
    _write(tmp_path, "ref", target, ref, None, dataset=dataset, ddi_adj=adj if stored_by != "other" else None)
    _write(tmp_path, "other", target, other, None, dataset=dataset, ddi_adj=adj if stored_by != "ref" else None)
    table = paired_table(read_runs(tmp_path), "ref", n_boot=50)
    [row] = table.rows
    ddi = row.differences["ddi_rate"]
    assert (ddi.reference, ddi.other) == (pytest.approx(0.25), pytest.approx(0.10))
    assert ddi.diff == pytest.approx(-0.15) and ddi.low <= ddi.diff <= ddi.high
    assert table.notes == []


def test_different_stored_graphs_show_ddi_na(tmp_path):
    adj, target, ref, other = _ddi_case()
    _write(tmp_path, "ref", target, ref, None, ddi_adj=adj)
    _write(tmp_path, "other", target, other, None, ddi_adj=np.zeros_like(adj))
    table = paired_table(read_runs(tmp_path), "ref", n_boot=20)
    assert table.rows[0].differences["ddi_rate"] is None and table.rows[0].differences["jaccard"] is not None
    assert len(table.notes) == 1 and "DDI graph differs" in table.notes[0]


def test_predictions_store_the_ddi_graph(tmp_path):
    adj, target, ref, _ = _ddi_case()
    _write(tmp_path, "with", target, ref, None, ddi_adj=adj)
    _write(tmp_path, "without", target, ref, None)
    stored = read_predictions(tmp_path / "toy" / "with" / "run-with")
    assert stored.ddi_adj.dtype == bool
    np.testing.assert_array_equal(stored.ddi_adj, adj)
    assert read_predictions(tmp_path / "toy" / "without" / "run-without").ddi_adj is None
    for bad in (adj[:3, :3], np.triu(adj)):  # wrong shape for the drug columns; not symmetric
        with pytest.raises(ValueError, match="ddi_adj"):
            _write(tmp_path, "bad", target, ref, None, ddi_adj=bad)
