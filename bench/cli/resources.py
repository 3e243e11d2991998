"""`bench resources verify|fetch|build-ddi`: check, download and rebuild the drug-knowledge files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from bench.cli.console import stdout_console, user_errors
from bench.prep.downloads import Transport, urllib_transport
from bench.errors import UserError
from bench.prep.ddi_nodes import NODES_FILE, edge_classes, write_nodes
from bench.prep.drug_knowledge import ENV_VAR, default_resources, locate_resources
from bench.prep.drug_knowledge_files import (ALLOW_MODIFIED, BAD, DIFFERS, MISSING, OK, Keep, build_ddi, differs_summary,
                                  failure_summary, fetch_all, verify_folder, write_ddi_pairs)

app = typer.Typer(help="Drug-knowledge resources: verify, fetch, rebuild DDI pairs.", no_args_is_help=True)

# The network layer of `fetch`: tests replace it (monkeypatch) with a fake serving fixture bytes.
transport: Transport = urllib_transport

_STYLE = {OK: "green", DIFFERS: "yellow", MISSING: "red", BAD: "bold red",
          "downloaded": "green", "skipped": "green", "present": "green", "kept": "yellow", "manual": "yellow"}


def _table(title: str, columns: tuple[str, str, str], rows: list[tuple[str, str, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for name, status, detail in rows:
        style = _STYLE.get(status, "")
        table.add_row(name, f"[{style}]{status}[/]" if style else status, detail)
    return table


_VERIFY_HELP = (
    "Check every known resource file: present, parses (with the medkb readers), pinned sha256.\n\n"
    "A missing required file, a file that does not parse, or a checksum that differs from the pinned version "
    "fails with exit code 2 (a truncated or edited file changes every figure computed with it; `bench run` "
    "refuses such a folder unless --allow-modified-resources). drug-atc.csv is optional.\n\n"
    "Example: bench resources verify ~/medkb")
_FETCH_HELP = (
    "Download the files that have a public raw source, from their pinned repository commits.\n\n"
    "Each download is checked against its pinned sha256 before it replaces anything. Files already present with "
    "the pinned checksum are skipped; present files that differ are kept unless --force. ddi_pairs_atc3.csv and "
    "atc3_smiles.json have no raw public source: the command says what to do.\n\n"
    "Without --to, the files go where `bench run` looks for them: $MEDREC_RESOURCES, else <data home>/medkb.\n\n"
    "Example: bench resources fetch --to ~/medkb && bench resources verify ~/medkb")
_BUILD_HELP = (
    "Rebuild ddi_pairs_atc3.csv from raw TWOSIDES (drug-DDI.csv) and drug-atc.csv.\n\n"
    "Side-effect types are ranked by their number of TWOSIDES rows. GAMENet meant to keep the 40 most severe "
    "types but sorted by frequency and kept the 40 LEAST frequent (GAMENet issue #18): --keep rarest --top 40 "
    "(the default) reproduces that, --keep most-frequent keeps the most frequent. Rows of the kept types map both "
    "drugs to their ATC3 classes (all combinations); the output is the sorted unordered pairs, without duplicates "
    "or self pairs. ddi_nodes_atc3.csv beside it lists the graph's classes: those of every compound in the "
    "TWOSIDES table, with or without a kept pair (what the DDI coverage metric counts as known).\n\n"
    "Example: bench resources build-ddi --twosides drug-DDI.csv --drug-atc medkb/drug-atc.csv "
    "--out medkb/ddi_pairs_atc3.csv")


@app.command("verify", help=_VERIFY_HELP)
def verify(
    folder: Path = typer.Argument(None, metavar="DIR", help=f"resources folder (default: ${ENV_VAR}, else <data home>/medkb)",
                                 show_default=False),
) -> None:
    """Check a resources folder; the help text is _VERIFY_HELP."""
    with user_errors():
        folder = locate_resources(folder)
        findings = verify_folder(folder)
        rows = [(f.name, f.status if f.required or f.status != MISSING else "missing (optional)", f.detail)
                for f in findings]
        stdout_console().print(_table(f"resources in {folder}", ("file", "status", "detail"), rows))
        problem = failure_summary(folder, findings)
        if problem:
            raise UserError(problem)
        differs = differs_summary(folder, findings)
        if differs:
            raise UserError(f"{differs}; `bench run` refuses it unless {ALLOW_MODIFIED}")


@app.command("fetch", help=_FETCH_HELP)
def fetch(
    to: Path = typer.Option(None, "--to", help="folder to download into, created if needed (default: "
                            f"${ENV_VAR}, else <data home>/medkb; see `bench data where`)", show_default=False),
    force: bool = typer.Option(False, "--force", help="download again even when a file is already present"),
) -> None:
    """Download the pinned files; the help text is _FETCH_HELP."""
    with user_errors():
        to = to if to is not None else default_resources()
        results = fetch_all(to, transport, force)
    manual = [r for r in results if r.action == "manual"]
    rows = [(r.name, r.action, "see below" if r.action == "manual" else r.detail) for r in results]
    console = stdout_console()
    console.print(_table(f"resources in {to}", ("file", "action", "detail"), rows))
    for result in manual:
        console.print(f"[yellow]{result.name}[/]: {result.detail}", highlight=False)
    console.print(f"then: bench resources verify {to}", highlight=False)


@app.command("build-ddi", help=_BUILD_HELP)
def build_ddi_command(
    twosides: Path = typer.Option(..., "--twosides", help="raw TWOSIDES drug-DDI.csv (SNAP Decagon)"),
    drug_atc: Path = typer.Option(..., "--drug-atc", help="GAMENet's drug-atc.csv (STITCH CID -> ATC codes)"),
    keep: Keep = typer.Option(Keep.RAREST, "--keep", help="keep the rarest (GAMENet) or most frequent side-effect types"),
    top: int = typer.Option(40, "--top", min=1, help="how many side-effect types to keep"),
    out: Path = typer.Option(Path("ddi_pairs_atc3.csv"), "--out", help="output CSV (atc3_a,atc3_b)"),
) -> None:
    """Rebuild the DDI pairs (see bench.prep.drug_knowledge_files.build_ddi); the help text is _BUILD_HELP."""
    with user_errors():
        for option, path in (("--twosides", twosides), ("--drug-atc", drug_atc)):
            if not path.is_file():
                raise UserError(f"{option} {path}: no such file")
        built = build_ddi(twosides, drug_atc, keep, top)
        write_ddi_pairs(out, built.pairs)
        nodes_out = out.with_name(NODES_FILE)
        write_nodes(nodes_out, built.nodes | edge_classes(built.pairs))
    console = stdout_console()
    console.print(f"kept {len(built.kept_types)} of {built.side_effect_types:,} side-effect types ({keep.value}), "
                  f"{built.rows_kept:,} TWOSIDES rows -> {len(built.pairs):,} ATC3 pairs in {out}; "
                  f"{len(built.nodes | edge_classes(built.pairs)):,} ATC3 classes in {nodes_out}", highlight=False)
    if not built.pairs:
        console.print(f"[yellow]warning:[/] no pair: do the STITCH ids of {twosides.name} (e.g. CID000002173) "
                      f"appear in {drug_atc.name}?", highlight=False)
