"""Locate and open raw MIMIC tables lazily with polars, with one-line errors naming file and column.

MIMIC-III: `<dir>/NAME.csv` or `.csv.gz`, headers upper case (full) or lower case (demo).
MIMIC-IV: `<dir>/hosp/name.csv.gz` (the folder itself may be given as `hosp/`), lower-case headers.
Every column is read as text (so NDCs keep their leading zeros) and renamed to lower case.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bench.errors import UserError


@dataclass(frozen=True)
class RawTable:
    """A located table: its file, and actual header names by lower-case name."""

    path: Path
    columns: dict[str, str]

    def scan(self, columns: Sequence[str]) -> pl.LazyFrame:
        """Lazy frame of the requested (lower-case) columns, all as strings, renamed to lower case."""
        frame = pl.scan_csv(self.path, infer_schema=False, encoding="utf8-lossy", quote_char='"')
        return frame.select([pl.col(self.columns[c]).alias(c) for c in columns])


def _read_header(path: Path) -> list[str]:
    """The header row's names; a UserError for empty, truncated or undecodable files."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            first = handle.readline()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); is the file complete?") from None
    text = first.decode("utf-8", errors="replace").strip().lstrip("\ufeff")
    if not text:
        raise UserError(f"{path}: empty file (expected a CSV header row)")
    return [name.strip().strip('"') for name in text.split(",")]


def check_gzip_complete(path: Path) -> None:
    """Read a .gz to the end once (cheap next to parsing), so a truncated download fails with a clear
    message before any work starts instead of deep inside the CSV reader."""
    if not path.name.lower().endswith(".gz"):
        return
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: truncated or corrupt gzip ({exc}); download it again") from None


def find_table(folder: Path, stem: str, required: Sequence[str], *, check_gzip: bool = True) -> RawTable:
    """Find `stem`.csv or `stem`.csv.gz (any case) in `folder` and check its required columns."""
    wanted = {f"{stem.lower()}.csv", f"{stem.lower()}.csv.gz"}
    matches = sorted(p for p in folder.iterdir() if p.name.lower() in wanted) if folder.is_dir() else []
    if not matches:
        raise UserError(f"{folder}: missing table {stem} (expected {stem}.csv or {stem}.csv.gz)")
    path = matches[-1] if len(matches) == 1 else next(p for p in matches if not p.name.lower().endswith(".gz"))
    header = _read_header(path)
    columns = {name.lower(): name for name in header}
    missing = [c for c in required if c not in columns]
    if missing:
        raise UserError(f"{path}: missing column {', '.join(missing)} "
                        f"(expected {', '.join(required)}; found {', '.join(header[:12])})")
    if check_gzip:
        check_gzip_complete(path)
    return RawTable(path, columns)


def collect(frame: pl.LazyFrame, path: Path) -> pl.DataFrame:
    """Collect a lazy query with the streaming engine; parsing errors name the file."""
    try:
        return frame.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"{path}: cannot parse as CSV ({first_line})") from None


def _ndc_text(column: pl.Expr) -> pl.Expr:
    """NDC text without blanks, quotes and a trailing `.0` (a spreadsheet export); missing -> ""."""
    return column.fill_null("").str.strip_chars().str.strip_chars('"').str.replace(r"\.0+$", "")


def ndc_needs_padding(column: pl.Expr) -> pl.Expr:
    """True where the NDC lost leading zeros (read as a number: `6494300` or `6494300.0`)."""
    text = _ndc_text(column)
    return text.str.contains(r"^\d{1,10}$") & (text != "0")


def normalise_ndc(column: pl.Expr) -> pl.Expr:
    """NDC text -> 11-digit string. Strips blanks, quotes and a trailing `.0` (a spreadsheet export),
    and left-pads all-digit values shorter than 11 with zeros (NDCs read as numbers lose their leading
    zeros). Missing values become ""."""
    text = _ndc_text(column)
    return pl.when(ndc_needs_padding(column)).then(text.str.zfill(11)).otherwise(text)
