"""`bench data fetch|where`: download the open PhysioNet demos into the data home, and show what is there."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)
from rich.table import Table

from bench.cli.console import stdout_console, user_errors
from bench.prep.data_fetch import (ENV_VAR, FetchProgress, data_home, fetch_dataset, fetchable, fetchable_manifest,
                              folder_status)
from bench.prep.downloads import Transport, urllib_transport
from bench.prep.drug_knowledge import ENV_VAR as RESOURCES_VAR
from bench.prep.drug_knowledge import REQUIRED, default_resources

app = typer.Typer(help="Raw data: fetch the open MIMIC demos, show where data lives.", no_args_is_help=True)

# The network layer of `fetch`: tests replace it (monkeypatch) with a local server or a fake.
transport: Transport = urllib_transport

_FETCH_HELP = (
    "Download an open PhysioNet demo (mimic3-demo, mimic4-demo: ODbL, no credentials) file by file.\n\n"
    "Only the tables the loader reads (and the license) are fetched, each checked against the sha256 pinned in "
    "datasets/NAME.toml: a file already present with that checksum is skipped, any other is downloaded to a temp "
    f"file, checked, then renamed into place. The default folder is <data home>/NAME (${ENV_VAR}, else "
    "<cache>/data), which `bench run --dataset NAME` reads when --data-dir is omitted.\n\n"
    "Offline: download the files from the dataset's PhysioNet page into DIR, then `bench data fetch NAME --to DIR` "
    "checks them without the network.\n\n"
    "Example: bench data fetch mimic3-demo && bench run --model logreg --dataset mimic3-demo")


class _Bars(FetchProgress):
    """One rich bar per file, in bytes, on stderr (the Progress is disabled off a terminal)."""

    def __init__(self, bar: Progress) -> None:
        self._bar = bar
        self._task: TaskID | None = None

    def file(self, path: str, size: int | None) -> None:
        self._task = self._bar.add_task(path, total=size)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._bar.update(self._task, advance=n)

    def done(self, path: str, action: str) -> None:
        if self._task is not None:
            self._bar.update(self._task, total=self._bar.tasks[-1].completed, description=f"{path} ({action})")
            self._task = None


@app.command("fetch", help=_FETCH_HELP)
def fetch(
    name: str = typer.Argument(..., metavar="NAME", help="mimic3-demo or mimic4-demo"),
    to: Path = typer.Option(None, "--to", help=f"folder to fill (default: <data home>/NAME; ${ENV_VAR})",
                            show_default=False),
    force: bool = typer.Option(False, "--force", help="download again even the files already present and valid"),
) -> None:
    """Fetch one demo; the help text is _FETCH_HELP."""
    with user_errors():
        found = fetchable_manifest(name)
        folder = to if to is not None else data_home() / name
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn())
        console = Console(stderr=True)  # bars on a terminal only: logs get the table below
        with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
            done = fetch_dataset(found, folder, transport, force, _Bars(bar))
    table = Table()
    for column in ("file", "action", "bytes"):
        table.add_column(column, overflow="fold")
    for item in done:
        style = "green" if item.action != "replaced" else "yellow"
        table.add_row(item.path, f"[{style}]{item.action}[/]", f"{item.size:,}")
    out = stdout_console()
    out.print(f"{name} in {folder}", highlight=False, soft_wrap=True)
    out.print(table)
    out.print(f"every file has its pinned sha256; next: bench run --model logreg --dataset {name}"
              + (f" --data-dir {folder}" if to is not None else ""), highlight=False, soft_wrap=True)


@app.command("where")
def where() -> None:
    """Print the data home (one setting: $MEDREC_DATA, else <cache>/data) and what is in it."""
    with user_errors():
        home = data_home()
        source = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else f"default; set ${ENV_VAR} to move it"
        table = Table()
        for column in ("data", "folder", "status"):
            table.add_column(column, overflow="fold")
        for name, found in sorted(fetchable().items()):
            table.add_row(name, str(home / name), folder_status(home / name, found.files))
        kb = default_resources()
        missing = [f for f in REQUIRED if not (kb / f).is_file()]
        status = ("not there" if not kb.is_dir() else f"missing {', '.join(missing)}" if missing
                  else "complete (`bench resources verify` checks it)")
        origin = f" (${RESOURCES_VAR})" if os.environ.get(RESOURCES_VAR) else ""
        table.add_row("medkb" + origin, str(kb), status)
    console = stdout_console()
    console.print(f"data home: {home} ({source})", highlight=False, soft_wrap=True)
    console.print(table)
