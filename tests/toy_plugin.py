"""A plug-in from outside `bench`'s own list, registered only through $MEDREC_PLUGINS
("tests.toy_plugin:PLUGIN"): a model, a verb and a comparison table, all by string (tests/test_plugins.py)."""

from __future__ import annotations

from typing import Any

import typer

from bench.plugins import ModelEntry, Plugin, Table, Verb

PLUGIN = Plugin(
    name="toy",
    models=(ModelEntry("toy-popular", "tests.toy_model:ToyPopular", "the popular baseline under another name"),),
    verbs=(Verb("toy-hello", "tests.toy_plugin:hello"),),
    tables=(Table("toy-count", "tests.toy_plugin:count_table"),),
)


def hello(name: str = typer.Option("world", help="who to greet")) -> None:
    """Greet NAME (a plug-in's own verb)."""
    typer.echo(f"hello {name} from the toy plug-in")


def count_table(runs: list[dict[str, Any]], fmt: str) -> str | None:
    """One line: how many runs `bench compare` shows (None when there are none)."""
    return f"toy table ({fmt}): {len(runs)} runs\n" if runs else None
