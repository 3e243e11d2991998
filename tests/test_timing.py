"""bench.timing: what is timed (whole batches, cold inputs), the timer resolution and how a value below
it is stored and shown. A fake clock makes the durations exact; no wall-clock assertions."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pytest

import bench.timing as timing
from bench.timing import BELOW_RESOLUTION, TimingOptions, latency_text, measure_inference, throughput_text

RESOLUTION = 100  # ns, for the fake clock


class FakeClock:
    """perf_counter_ns that moves only when a model says its work took time."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class FakeModel:
    """predict_proba costs `per_call_ns + per_sample_ns * len(samples)` on the fake clock; counts the
    input-cache clears and the samples a call found encoded by an earlier call (`warm_calls`)."""

    name, needs = "fake", frozenset()

    def __init__(self, clock: FakeClock, per_call_ns: int = 0, per_sample_ns: int = 0):
        self.clock, self.per_call_ns, self.per_sample_ns = clock, per_call_ns, per_sample_ns
        self.clears, self.cached, self.warm_calls = 0, set(), 0

    def clear_input_cache(self) -> None:
        self.clears += 1
        self.cached.clear()

    def predict_proba(self, samples: Sequence[int]) -> np.ndarray:
        self.warm_calls += sum(s in self.cached for s in samples)
        self.cached.update(samples)
        self.clock.now += self.per_call_ns + self.per_sample_ns * len(samples)
        return np.zeros((len(samples), 3), dtype=np.float32)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter_ns", fake)
    monkeypatch.setattr(timing, "timer_resolution_ns", lambda: RESOLUTION)
    return fake


def test_a_model_faster_than_the_timer_has_no_latency_number_but_a_finite_throughput(clock):
    model = FakeModel(clock, per_call_ns=0, per_sample_ns=10)   # batch 1: 10 ns < 100 ns; batch 256: 2560 ns
    options = TimingOptions(latency_samples=7, batch_size=256, min_seconds=10_000e-9)
    result = measure_inference(model, list(range(50)), options)
    assert result["latency_ms_p50"] is None and result["latency_ms_p95"] is None
    assert result["latency_below_resolution"] is True and result["timer_resolution_ns"] == RESOLUTION
    # whole batches until their summed time reaches 10 us: 4 batches of 2560 ns
    assert result["throughput_batches"] == 4 and result["throughput_below_resolution"] is False
    assert result["throughput_per_s"] == pytest.approx(256 / 2560e-9)
    assert result["batch_ms_p50"] == pytest.approx(2560e-6)
    assert result["version"] == timing.TIMING_VERSION
    assert latency_text(result) == BELOW_RESOLUTION
    assert throughput_text(result) == "100,000,000"


def test_latencies_above_the_resolution_are_kept_in_ms(clock):
    model = FakeModel(clock, per_call_ns=2_000_000)   # 2 ms per call
    result = measure_inference(model, [1, 2, 3], TimingOptions(latency_samples=5, batch_size=4, min_seconds=0.0))
    assert result["latency_ms_p50"] == pytest.approx(2.0) and result["latency_below_resolution"] is False
    assert result["throughput_batches"] == 1 and result["throughput_per_s"] == pytest.approx(4 / 2e-3)
    assert latency_text(result) == "2.000"


def test_a_batch_below_the_resolution_gives_no_throughput_number(clock):
    model = FakeModel(clock)   # no cost at all
    result = measure_inference(model, [1, 2], TimingOptions(latency_samples=3, batch_size=2, min_seconds=0.0,
                                                            min_batches=5))
    assert result["throughput_per_s"] is None and result["throughput_below_resolution"] is True
    assert result["throughput_batches"] == 5
    assert throughput_text(result) == BELOW_RESOLUTION


def test_every_timed_call_starts_with_cleared_input_caches(clock):
    model = FakeModel(clock, per_call_ns=1_000)
    options = TimingOptions(latency_samples=6, batch_size=8, min_seconds=5_000e-9)
    result = measure_inference(model, [1, 2, 3], options)
    assert model.clears == options.latency_samples + result["throughput_batches"]
    # no call finds its samples encoded by an earlier call
    assert model.warm_calls == 0


def test_old_records_without_the_new_fields_show_their_numbers():
    old = {"latency_ms_p50": 0.0010519997886149213, "throughput_per_s": 7658078.408818364}
    assert latency_text(old) == "0.00105" and throughput_text(old) == "7,658,078"
    assert latency_text({}) == "n/a" and throughput_text({"throughput_per_s": None}) == "n/a"


def test_timer_resolution_is_at_least_the_declared_one():
    declared = time.get_clock_info("perf_counter").resolution * 1e9
    assert timing.timer_resolution_ns() >= max(1, declared)


def test_a_clock_that_stands_still_stops_at_max_batches(clock):
    """A model whose calls take no time never reaches min_seconds: the loop ends at max_batches."""
    model = FakeModel(clock)
    result = measure_inference(model, [1], TimingOptions(latency_samples=1, batch_size=2, min_seconds=1.0,
                                                         max_batches=7))
    assert result["throughput_batches"] == 7 and result["throughput_per_s"] is None
