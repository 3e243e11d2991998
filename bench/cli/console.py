"""Console helpers: user mistakes become one line on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from bench.errors import UserError

EXIT_USER_ERROR = 2
_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    """Rich console for results; off a terminal (a pipe, a log) wide enough not to squeeze tables."""
    return Console(width=None if sys.stdout.isatty() else 160)


def print_warnings(lines: list[str] | None) -> None:
    """One `warning: ...` line per entry, on stderr (e.g. a bundle's meta["warnings"])."""
    for line in lines or ():
        _stderr.print(f"[yellow]warning:[/] {escape(line)}", markup=True)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except UserError as exc:
        _stderr.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)  # `[fetch]` in a message stays
        raise typer.Exit(EXIT_USER_ERROR) from None
