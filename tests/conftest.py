"""Shared fixtures. Benchmarks (tests/benchmarks) run only under `pytest --benchmark-only`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDREC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "benchmark_only") and not config.option.benchmark_only:
        config.option.benchmark_skip = True


@pytest.fixture(scope="session")
def small_bundle():
    """The `synthetic-small` dataset, built once per test session."""
    from bench.loading import load_bundle

    return load_bundle("synthetic-small")
