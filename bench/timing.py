"""Inference timing: batch-1 latency percentiles and batch-N throughput, plus process peak memory.

Every timed unit is one `predict_proba` call from raw `Sample`s to scores: the model's whole predict
path, including turning the samples into its input tensors. A model that keeps per-visit encodings
across calls (`bench.protocol.InputCache`) has them cleared before every timed call (outside the
timed region), so the samples are encoded inside it: the cold path a new patient takes. Values
derived from the model's weights alone (SafeDrug's and MoleRec's drug encodings) stay cached, as a
deployed model would keep them.

Clock: `time.perf_counter_ns`. Its resolution (`timer_resolution_ns`) is the larger of the clock's
declared resolution and the smallest nonzero step seen between consecutive readings. A batch-1
latency percentile below it is not a measurement: run.json stores it as null with
`latency_below_resolution: true` (and `timer_resolution_ns`), and tables print "< timer resolution".
Throughput times whole batches, repeated until their summed time reaches `min_seconds` (and at least
`min_batches` batches; at most `max_batches`, 10,000 batches of 256 being far above the resolution
even for a model that copies one vector), so the total lies far above the resolution; samples/s = samples / summed
batch time. Its batches' p50 / p95 times are stored too (`batch_ms_p50`, `batch_ms_p95`).

`timing.version` 2 marks this method; run.json files without it were timed by version 1 (float
perf_counter, encodings of the test samples cached by the preceding full predict and not timed).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import Sample
from bench.protocol import Recommender, clear_input_cache

TIMING_VERSION = 2
BELOW_RESOLUTION = "< timer resolution"
# run.json timing value -> the flag that says it was below the timer resolution (the value is then null)
BELOW_FLAGS = {"latency_ms_p50": "latency_below_resolution", "latency_ms_p95": "latency_below_resolution",
               "throughput_per_s": "throughput_below_resolution"}


@dataclass(frozen=True)
class TimingOptions:
    latency_samples: int = 100   # batch-1 calls timed (after 2 warm-up calls)
    batch_size: int = 256        # throughput batch size
    min_seconds: float = 1.0     # repeat throughput batches until their summed time is at least this
    min_batches: int = 1         # ... and at least this many batches
    max_batches: int = 10_000    # ... and at most this many (a very fast model, or a clock that stands still)


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


@cache
def timer_resolution_ns(tries: int = 10_000) -> int:
    """The smallest duration perf_counter_ns can tell from zero, in ns (at least 1): the larger of the
    clock's declared resolution and the smallest nonzero difference of consecutive readings."""
    declared = int(np.ceil(time.get_clock_info("perf_counter").resolution * 1e9))
    smallest = None
    for _ in range(tries):
        first, second = time.perf_counter_ns(), time.perf_counter_ns()
        while second == first:
            second = time.perf_counter_ns()
        step = second - first
        smallest = step if smallest is None else min(smallest, step)
    return max(1, declared, smallest or 1)


def _timed_call(model: Recommender, samples: Sequence[Sample]) -> int:
    """Nanoseconds of one cold `predict_proba(samples)` (input caches cleared first, untimed)."""
    clear_input_cache(model)
    start = time.perf_counter_ns()
    model.predict_proba(samples)
    return time.perf_counter_ns() - start


def _ms_or_none(ns: float, resolution: int) -> float | None:
    return None if ns < resolution else ns / 1e6


def measure_inference(model: Recommender, samples: Sequence[Sample], options: TimingOptions) -> dict[str, Any]:
    """The run.json `timing` entries of inference (module docstring): latency_ms_p50 / p95 over
    single-sample calls, throughput_per_s over whole batches, and how they were measured."""
    resolution = timer_resolution_ns()
    base: dict[str, Any] = {"version": TIMING_VERSION, "timer_resolution_ns": resolution}
    if not samples:
        return {**base, "latency_ms_p50": None, "latency_ms_p95": None, "throughput_per_s": None}
    for sample in samples[:2]:
        model.predict_proba([sample])
    latencies = [_timed_call(model, [samples[i % len(samples)]]) for i in range(options.latency_samples)]
    p50, p95 = (float(np.percentile(latencies, q)) for q in (50, 95)) if latencies else (None, None)
    batch = [samples[i % len(samples)] for i in range(options.batch_size)]
    batch_ns: list[int] = []
    total_ns, wanted_ns = 0, options.min_seconds * 1e9
    while not batch_ns or ((total_ns < wanted_ns or len(batch_ns) < options.min_batches)
                           and len(batch_ns) < max(1, options.max_batches)):
        batch_ns.append(_timed_call(model, batch))
        total_ns += batch_ns[-1]
    batch_p50 = float(np.percentile(batch_ns, 50))
    throughput_ok = batch_p50 >= resolution
    return {**base,
            "latency_ms_p50": None if p50 is None else _ms_or_none(p50, resolution),
            "latency_ms_p95": None if p95 is None else _ms_or_none(p95, resolution),
            "latency_below_resolution": p50 is not None and p50 < resolution,
            "latency_calls": options.latency_samples,
            "throughput_per_s": len(batch) * len(batch_ns) / (total_ns / 1e9) if throughput_ok else None,
            "throughput_below_resolution": not throughput_ok,
            "throughput_batch_size": options.batch_size, "throughput_batches": len(batch_ns),
            "batch_ms_p50": _ms_or_none(batch_p50, resolution),
            "batch_ms_p95": _ms_or_none(float(np.percentile(batch_ns, 95)), resolution)}


def timing_version(record: dict[str, Any]) -> int:
    """A run's timing method (run.json `timing.version`); 1 for files written before it was recorded."""
    return int((record.get("timing") or {}).get("version", 1))


def latency_text(timing: dict[str, Any], key: str = "latency_ms_p50", digits: int = 3) -> str:
    """A latency (ms) for a table: "< timer resolution" when it was below it, "n/a" when absent,
    else the number (3 significant digits below 1 ms, so a fast model does not read as 0.000)."""
    value = timing.get(key)
    if value is None:
        return BELOW_RESOLUTION if timing.get(BELOW_FLAGS.get(key, "")) else "n/a"
    return f"{value:.3g}" if value < 1 else f"{value:.{digits}f}"


def throughput_text(timing: dict[str, Any]) -> str:
    """Samples per second for a table, "< timer resolution" or "n/a" like `latency_text`."""
    value = timing.get("throughput_per_s")
    if value is None:
        return BELOW_RESOLUTION if timing.get(BELOW_FLAGS["throughput_per_s"]) else "n/a"
    return f"{value:,.0f}"
