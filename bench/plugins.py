"""Plug-ins: the packages that bring models, extra CLI verbs and extra comparison tables.

The core names plug-ins only as "module:attribute" strings: the built-in ones in `PLUGINS`, more in
the environment variable `MEDREC_PLUGINS` (comma-separated, e.g. `MEDREC_PLUGINS=mypkg.plugin:PLUGIN`),
so a package outside this repository registers a model without touching `bench`. Each string names
a `Plugin` record; a plug-in module must be cheap to import (strings only, no torch or transformers:
`bench ls` imports every plug-in module and nothing else of it).

    PLUGIN = Plugin(
        name="mypkg",
        models=(ModelEntry("toy", "mypkg.toy:Toy", "a toy model"),),
        verbs=(Verb("toy-stats", "mypkg.cli:toy_stats"),),           # a function or a typer.Typer
        tables=(Table("toy-table", "mypkg.tables:toy_table"),),      # (runs, fmt) -> str | renderable | None
    )

A broken entry (no such module, no such attribute, not a `Plugin`) is a one-line UserError naming it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from bench.errors import UserError

PLUGINS: tuple[str, ...] = ("baselines.plugin:PLUGIN", "leader.plugin:PLUGIN")
ENV_VAR = "MEDREC_PLUGINS"


@dataclass(frozen=True)
class ModelEntry:
    """A model: its registry name, "module:Class" (imported only when used), a one-line summary, the
    paper it comes from, and the model it is a student of ("" for none: the class's `teacher`
    TeacherSpec says the same, tested; kept here too so that old runs, which do not name their
    teacher, can be paired with it without importing the model). `ceiling`: the model is a dataset's
    known ceiling (a generated cohort's oracle); `bench compare` shows every PRAUC as a share of it."""

    name: str
    target: str
    summary: str
    paper: str = ""
    teacher: str = ""
    ceiling: bool = False


@dataclass(frozen=True)
class Verb:
    """An extra `bench` verb: "module:function" (a Typer command function, registered as NAME) or
    "module:app" (a `typer.Typer`, added as a group of sub-verbs)."""

    name: str
    target: str


@dataclass(frozen=True)
class Table:
    """An extra table of `bench compare`: "module:function"(runs, fmt) -> str | rich renderable | None
    (None or "" when the runs hold nothing for it). `runs`: run records as `bench compare` shows them
    (one per model and dataset, reference rows labelled); `fmt`: table | md | csv | latex."""

    name: str
    target: str


@dataclass(frozen=True)
class Plugin:
    """What one plug-in package brings."""

    name: str
    models: tuple[ModelEntry, ...] = ()
    verbs: tuple[Verb, ...] = ()
    tables: tuple[Table, ...] = ()


def import_target(target: str) -> Any:
    """Import "package.module:attr"."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def import_entry(kind: str, name: str, target: str) -> Any:
    """A plug-in entry's object ("module:attr"); a one-line UserError naming the entry when it cannot
    be imported (a missing module or attribute, or an error raised while importing)."""
    try:
        return import_target(target)
    except Exception as exc:  # noqa: BLE001 - any failure of a plug-in's code is reported, not a traceback
        raise UserError(f"{kind} {name!r} ({target}): cannot import ({type(exc).__name__}: {exc})") from None


def plugin_targets() -> tuple[str, ...]:
    """The built-in plug-ins, then those of $MEDREC_PLUGINS (empty pieces and repeats ignored)."""
    extra = dict.fromkeys(p.strip() for p in os.environ.get(ENV_VAR, "").split(",") if p.strip())
    return PLUGINS + tuple(p for p in extra if p not in PLUGINS)


def load_plugin(target: str) -> Plugin:
    """The `Plugin` named by "module:attr"; UserError (one line, naming it) when it cannot be loaded."""
    where = "" if target in PLUGINS else f" (from ${ENV_VAR})"
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"plug-in {target!r}{where}: expected 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - an import error, or any error of the plug-in's own code
        what = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
        raise UserError(f"plug-in {target!r}{where}: cannot import {module_name}: {what}") from None
    plugin = getattr(module, attr, None)
    if not isinstance(plugin, Plugin):
        found = "nothing" if plugin is None else type(plugin).__name__
        raise UserError(f"plug-in {target!r}{where}: {module_name}.{attr} is {found}, not a bench.plugins.Plugin")
    return plugin


@cache
def _load(targets: tuple[str, ...]) -> tuple[Plugin, ...]:
    loaded = tuple(load_plugin(t) for t in targets)
    for kind in ("model", "verb", "table"):
        owners: dict[str, str] = {}
        for plugin in loaded:
            for entry in {"model": plugin.models, "verb": plugin.verbs, "table": plugin.tables}[kind]:
                if entry.name in owners:
                    raise UserError(f"plug-in {plugin.name}: {kind} {entry.name!r} is already registered "
                                    f"by plug-in {owners[entry.name]}")
                owners[entry.name] = plugin.name
    return loaded


def plugins() -> tuple[Plugin, ...]:
    """Every plug-in (built-in and $MEDREC_PLUGINS), loaded once per distinct list."""
    return _load(plugin_targets())


def extra_tables(runs: list[dict[str, Any]], fmt: str) -> list[Any]:
    """The plug-ins' comparison tables for `runs`, in registration order, empty ones left out."""
    out = []
    for plugin in plugins():
        for table in plugin.tables:
            render: Callable[[list[dict[str, Any]], str], Any] = import_entry(
                f"plug-in {plugin.name}: table", table.name, table.target)
            result = render(runs, fmt)
            if result:
                out.append(result)
    return out
