"""Progress reporting handed to models: rich bars on a terminal, nothing in tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn


class Progress:
    """A silent progress sink; `RichProgressReporter` draws bars. Models call `task(...)`."""

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator["Task"]:
        yield Task(None, None)


class Task:
    def __init__(self, bar: RichProgress | None, task_id: Any):
        self._bar = bar
        self._id = task_id

    def advance(self, steps: int = 1, status: str | None = None) -> None:
        """Move the bar by `steps`; `status` (e.g. "loss 0.21 | valid prauc 0.55") shows beside it."""
        if self._bar is not None:
            self._bar.update(self._id, advance=steps, **({"status": status} if status else {}))


class RichProgressReporter(Progress):
    """Rich progress bars on stderr (hidden when not a terminal)."""

    def __init__(self, console: Console | None = None):
        self._console = console or Console(stderr=True)

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TextColumn("{task.fields[status]}"),
                           console=self._console, transient=False)
        quiet = self._console.quiet
        try:
            with bar:
                task_id = bar.add_task(description, total=total, status="")
                try:
                    yield Task(bar, task_id)
                except BaseException:
                    # a failed step leaves no bar above its error: erased on a terminal, not drawn elsewhere
                    bar.live.transient = True
                    self._console.quiet = quiet or not self._console.is_terminal
                    raise
        finally:
            self._console.quiet = quiet
