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
