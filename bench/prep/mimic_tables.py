"""Locate and open raw MIMIC tables lazily with polars, with one-line errors naming file and column.

MIMIC-III: `<dir>/NAME.csv` or `.csv.gz`, headers upper case (full) or lower case (demo).
MIMIC-IV: `<dir>/hosp/name.csv.gz` (the folder itself may be given as `hosp/`), lower-case headers.
Every column is read as text (so NDCs keep their leading zeros) and renamed to lower case.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bench.prep.csv_checks import (check_complete, first_ragged_row, is_gzip, open_binary, parse_row,
                              same_content)
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
        with open_binary(path) as handle:
            first = handle.readline()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); is the file complete?") from None
    text = first.decode("utf-8", errors="replace").strip().lstrip("\ufeff")
    if not text:
        raise UserError(f"{path}: empty file (expected a CSV header row)")
    try:
        names = parse_row(text.encode("utf-8"))
    except csv.Error as exc:
        raise UserError(f"{path}, line 1: unreadable header row ({exc})") from None
    return [name.strip().strip('"') for name in names]


def _one_of(folder: Path, matches: list[Path]) -> Path:
    """The file to read when a table is there more than once (`x.csv` and `x.csv.gz`): the plain one
    when every copy holds the same rows, else a UserError naming them all."""
    if len(matches) == 1:
        return matches[0]
    names = [p.name for p in matches]
    listed = f"both {names[0]} and {names[1]}" if len(names) == 2 else f"{', '.join(names[:-1])} and {names[-1]}"
    if not all(same_content(matches[0], other) for other in matches[1:]):
        raise UserError(f"{folder}: {listed} present and they differ; keep one")
    return next((p for p in matches if not is_gzip(p)), matches[0])


def find_table(folder: Path, stem: str, required: Sequence[str], *, check_rows: bool = True) -> RawTable:
    """Find `stem`.csv or `stem`.csv.gz (any case) in `folder`, check its required columns and (unless
    `check_rows` is False) that it is complete: gzip stream whole, last row neither cut nor ragged (rows in the middle are not checked)."""
    wanted = {f"{stem.lower()}.csv", f"{stem.lower()}.csv.gz"}
    matches = sorted(p for p in folder.iterdir() if p.name.lower() in wanted) if folder.is_dir() else []
    if not matches:
        raise UserError(f"{folder}: missing table {stem} (expected {stem}.csv or {stem}.csv.gz)")
    path = _one_of(folder, matches)
    header = _read_header(path)
    columns = {name.lower(): name for name in header}
    missing = [c for c in required if c not in columns]
    if missing:
        raise UserError(f"{path}: missing column {', '.join(missing)} "
                        f"(expected {', '.join(required)}; found {', '.join(header[:12])})")
    if check_rows:
        check_complete(path, len(header))
    return RawTable(path, columns)


def collect(frame: pl.LazyFrame, path: Path) -> pl.DataFrame:
    """Collect a lazy query with the streaming engine; parsing errors name the file (and the line of
    a row with more fields than the header)."""
    try:
        return frame.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        if "more fields" in first_line:
            n_fields = len(_read_header(path))
            ragged = first_ragged_row(path, n_fields)
            if ragged:
                raise UserError(f"{path}, line {ragged[0]}: row has {ragged[1]} fields, the header "
                                f"{n_fields}") from None
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


def detect_release(data_dir: Path) -> tuple[str, Path, str] | None:
    """("mimic3" | "mimic4", diagnoses file, telling column) when the folder's diagnoses table says
    which MIMIC release it is: MIMIC-III has `icd9_code`, MIMIC-IV `icd_code` with `icd_version`
    (under hosp/ or in the folder itself); None when there is no such table or it says neither."""
    for folder in (data_dir / "hosp", data_dir):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.lower() not in ("diagnoses_icd.csv", "diagnoses_icd.csv.gz"):
                continue
            try:
                header = {name.lower() for name in _read_header(path)}
            except UserError:
                return None
            if "icd9_code" in header:
                return "mimic3", path, "icd9_code"
            if {"icd_code", "icd_version"} <= header:
                return "mimic4", path, "icd_version"
    return None
