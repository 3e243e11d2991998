"""Shared fixtures. Benchmarks (tests/benchmarks) run only under `pytest --benchmark-only`; saved runs
(--benchmark-autosave / --benchmark-save) go to benchmarks/ at the repository root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDREC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
BENCHMARK_STORAGE = REPO_ROOT / "benchmarks"
_PLUGIN_DEFAULT_STORAGE = "file://./.benchmarks"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config.option, "benchmark_only"):  # pytest-benchmark not installed
        return
    if not config.option.benchmark_only:
        config.option.benchmark_skip = True
    # runs before the plugin builds its session (its pytest_configure is trylast); an explicit
    # --benchmark-storage wins
    if config.option.benchmark_storage == _PLUGIN_DEFAULT_STORAGE:
        config.option.benchmark_storage = f"file://{BENCHMARK_STORAGE}"


@pytest.fixture(scope="session")
def small_bundle():
    """The `synthetic-small` dataset, built once per test session."""
    from bench.loading import load_bundle

    return load_bundle("synthetic-small")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Every model in the tests is tiny: extra torch threads only add spin time, and on a 2-core
    machine busy with anything else they make each step 5-10x slower (measured)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
