"""The synthetic cohort's signal is learnable but not trivial, and it has a known ceiling: a model that
reads diagnoses beats recommending the most popular drugs to everyone, the generator's own
probabilities (the oracle) beat both, and nothing is near perfect."""

from __future__ import annotations

from bench.progress import Progress
from bench.runner import RunOptions, run
from bench.timing import TimingOptions


def test_oracle_beats_logreg_beats_popular_on_a_small_cohort(tmp_path):
    timing = TimingOptions(latency_samples=3, batch_size=64, min_seconds=0.0)
    results = {m: run(RunOptions(model=m, dataset="synthetic", prep_overrides={"n_patients": "1500"},
                                 results_dir=tmp_path, timing=timing, save_model=False), Progress())[0]["metrics"]["all"]
               for m in ("popular", "logreg", "oracle")}
    popular, logreg, oracle = results["popular"], results["logreg"], results["oracle"]
    assert logreg["prauc"]["mean"] > popular["prauc"]["mean"] + 0.05
    for metric in ("jaccard", "prauc"):
        assert oracle[metric]["mean"] > max(logreg[metric]["mean"], popular[metric]["mean"]) + 0.03, metric
        assert oracle[metric]["mean"] < 0.9, metric  # not trivial, even knowing the latent state
    assert 0.2 < popular["jaccard"]["mean"] < 0.45
