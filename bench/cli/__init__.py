"""The `bench` command line (Typer): one module per verb; plug-ins add their own verbs by registry
string (bench.plugins.Verb), imported when the app is built (their modules must be cheap to import)."""

from __future__ import annotations

import typer

from bench.cli import ablate, compare, data, ls, prepare, report, resources, run, synth_raw
from bench.cli import rarity as rarity_cli
from bench.cli.console import user_errors
from bench.errors import UserError

app = typer.Typer(help="medrec-bench: train, evaluate and compare medication recommenders.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("ls")(ls.ls)
app.command("prepare")(prepare.prepare)
app.command("run")(run.run)
app.command("compare")(compare.compare)
app.command("ablate")(ablate.ablate)
app.command("report")(report.report)
app.command("synth-raw")(synth_raw.synth_raw)
app.command("rarity")(rarity_cli.rarity)
app.add_typer(resources.app, name="resources")
app.add_typer(data.app, name="data")
CORE_VERBS = frozenset({"ls", "prepare", "run", "compare", "ablate", "report", "synth-raw", "rarity", "resources",
                        "data"})


def add_plugin_verbs(target: typer.Typer) -> UserError | None:
    """Register every plug-in's verbs on `target`; the error (not raised) when a plug-in cannot be
    loaded, so that `bench` reports it as one line when a command runs (`_check_plugins`)."""
    from bench.plugins import import_entry, plugins

    try:
        for plugin in plugins():
            for verb in plugin.verbs:
                if verb.name in CORE_VERBS:
                    raise UserError(f"plug-in {plugin.name}: verb {verb.name!r} is a core `bench` verb")
                command = import_entry(f"plug-in {plugin.name}: verb", verb.name, verb.target)
                if isinstance(command, typer.Typer):
                    target.add_typer(command, name=verb.name)
                else:
                    target.command(verb.name)(command)
    except UserError as exc:
        return exc
    return None


PLUGIN_ERROR = add_plugin_verbs(app)


@app.callback()
def _check_plugins() -> None:
    """Before any command: a plug-in that could not be loaded is a one-line error."""
    if PLUGIN_ERROR is not None:
        with user_errors():
            raise PLUGIN_ERROR


def main() -> None:
    app()
