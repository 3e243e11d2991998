"""Benchmark helpers: `speed_note` prints a line (shown with -s) and repeats it in a "speed checks" section
at the end of the run, so ratios and throughputs are visible even under -q without -s."""

from __future__ import annotations

import os

import pytest

# One torch thread by default: on a shared machine several threads wait on each other whenever one is
# descheduled (2 threads measured up to 7x slower than 1 under load); MEDREC_BENCH_THREADS changes it.
THREADS = int(os.environ.get("MEDREC_BENCH_THREADS", "1"))

_NOTES: list[str] = []


@pytest.fixture
def speed_note():
    def note(line: str) -> None:
        print("\n" + line)
        _NOTES.append(line)

    return note


@pytest.fixture(scope="module")
def torch_threads():
    """THREADS torch threads for a module's benchmarks (`pytestmark = pytest.mark.usefixtures(...)`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _NOTES:
        terminalreporter.section("speed checks")
        for line in _NOTES:
            terminalreporter.write_line(line)
