"""The `bench` command line (Typer): one module per verb."""

from __future__ import annotations

import typer

from bench.cli import ablate, compare, data, ls, prepare, report, resources, run, synth_raw
from bench.cli import probe as probe_cli
from bench.cli import prompts as prompts_cli
from bench.cli import rarity as rarity_cli

app = typer.Typer(help="medrec-bench: train, evaluate and compare medication recommenders.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("ls")(ls.ls)
app.command("prepare")(prepare.prepare)
app.command("run")(run.run)
app.command("compare")(compare.compare)
app.command("ablate")(ablate.ablate)
app.command("report")(report.report)
app.command("synth-raw")(synth_raw.synth_raw)
app.command("prompts")(prompts_cli.prompts)
app.command("rarity")(rarity_cli.rarity)
app.command("teacher-probe")(probe_cli.teacher_probe)
app.add_typer(resources.app, name="resources")
app.add_typer(data.app, name="data")


def main() -> None:
    app()
