"""The synthetic cohort's signal is learnable but not trivial: a model that reads diagnoses clearly
beats recommending the most popular drugs to everyone, and neither is near perfect."""

from __future__ import annotations

from bench.progress import Progress
from bench.runner import RunOptions, run
from bench.timing import TimingOptions


def test_logreg_clearly_beats_popular_on_synthetic(tmp_path):
    timing = TimingOptions(latency_samples=3, batch_size=64, min_seconds=0.0)
    results = {m: run(RunOptions(model=m, dataset="synthetic", results_dir=tmp_path, timing=timing,
                                 save_model=False), Progress())[0]["metrics"]["all"]
               for m in ("popular", "logreg")}
    popular, logreg = results["popular"], results["logreg"]
    for metric in ("jaccard", "prauc"):
        assert logreg[metric]["mean"] > popular[metric]["mean"] + 0.1, metric
        assert logreg[metric]["mean"] < 0.9, metric  # not trivial
    assert 0.2 < popular["jaccard"]["mean"] < 0.45
