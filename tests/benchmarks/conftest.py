"""Benchmark helpers: `speed_note` prints a line (shown with -s) and repeats it in a "speed checks" section
at the end of the run, so ratios and throughputs are visible even under -q without -s."""

from __future__ import annotations

import pytest

_NOTES: list[str] = []


@pytest.fixture
def speed_note():
    def note(line: str) -> None:
        print("\n" + line)
        _NOTES.append(line)

    return note


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _NOTES:
        terminalreporter.section("speed checks")
        for line in _NOTES:
            terminalreporter.write_line(line)
