"""Linear probes of teacher features (leader/probe.py) and `bench teacher-probe` with a tiny-llama teacher."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.metrics import average_precision_rows
from bench.progress import Progress
from bench.runner import RunOptions, run
from bench.timing import TimingOptions
from leader.probe import probe_prauc

runner = CliRunner()


def test_probe_reads_informative_features_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.random((400, 6)) < 0.3
    y[:, 0] = True                                      # every sample has a drug (else its PRAUC is 0)
    y[:, 5] = False                                     # never given in training: scored by its frequency
    x_good = y.astype(float) + 0.1 * rng.standard_normal(y.shape)
    x_noise = rng.standard_normal((400, 6))
    good = probe_prauc(x_good[:300], y[:300], x_good[300:], y[300:])
    noise = probe_prauc(x_noise[:300], y[:300], x_noise[300:], y[300:])
    assert good == pytest.approx(1.0)
    frequency = average_precision_rows(y[300:], np.broadcast_to(y[:300].mean(0), (100, 6))).mean()
    assert noise == pytest.approx(frequency, abs=0.03)   # noise reads no more than the drug frequencies
    assert good > frequency + 0.1


def test_teacher_probe_cli_on_a_tiny_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDREC_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "results"
    args = ["teacher-probe", "--dataset", "synthetic-small", "--results-dir", str(results), "--n", "60"]
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2 and "no leader-teacher run for synthetic-small" in missing.output
    bad = runner.invoke(app, [*args, "--protocol", "bogus"])
    assert bad.exit_code == 2 and "--protocol must be one of" in bad.output
    run(RunOptions(model="leader-teacher", dataset="synthetic-small", results_dir=results,
                   timing=TimingOptions(latency_samples=2, batch_size=8, min_seconds=0.0),
                   overrides={"base_model": "tiny-llama", "steps": "1", "batch_size": "2", "grad_accum": "1",
                              "max_tokens": "128"}), Progress())
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    for inputs in ("teacher features", "codes (current dx + proc, previous drugs)", "teacher features + codes",
                   "drug frequencies only"):
        assert inputs in out.output
    assert len(list((tmp_path / "cache" / "teacher-features").glob("*.safetensors"))) == 2   # train subset, valid
