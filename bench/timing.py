"""Inference timing: batch-1 latency percentiles and batch-N throughput, plus process peak memory."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data import Sample
from bench.protocol import Recommender


@dataclass(frozen=True)
class TimingOptions:
    latency_samples: int = 100   # batch-1 calls timed (after 2 warm-up calls)
    batch_size: int = 256        # throughput batch size
    min_seconds: float = 1.0     # repeat throughput batches for at least this long


PROC_STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Restart the peak-memory count at the current resident size (Linux: "5" > /proc/self/clear_refs),
    so a run's peak is its own when several runs share a process (`bench ablate`). False where the
    platform cannot; peak_rss_mb then reports the process's peak so far."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """Peak resident memory in MB since the last reset_peak_rss (VmHWM), else since the process started
    (ru_maxrss is KB on Linux, bytes on macOS)."""
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure_inference(model: Recommender, samples: Sequence[Sample], options: TimingOptions) -> dict[str, float]:
    """latency_ms_p50 / p95 over single-sample calls; throughput_per_s over full batches."""
    if not samples:
        return {"latency_ms_p50": None, "latency_ms_p95": None, "throughput_per_s": None}
    for sample in samples[:2]:
        model.predict_proba([sample])
    latencies = []
    for i in range(options.latency_samples):
        sample = samples[i % len(samples)]
        start = time.perf_counter()
        model.predict_proba([sample])
        latencies.append((time.perf_counter() - start) * 1000)
    batch = [samples[i % len(samples)] for i in range(options.batch_size)]
    done, start = 0, time.perf_counter()
    while True:
        model.predict_proba(batch)
        done += len(batch)
        elapsed = time.perf_counter() - start
        if elapsed >= options.min_seconds:
            break
    return {"latency_ms_p50": float(np.percentile(latencies, 50)),
            "latency_ms_p95": float(np.percentile(latencies, 95)),
            "throughput_per_s": done / elapsed, "throughput_batch_size": options.batch_size,
            "latency_calls": options.latency_samples}
