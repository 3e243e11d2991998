"""Cheap integrity checks of a raw CSV table before it is parsed (plain `.csv` or `.csv.gz`).

- A file cut short: the last row must end with a line break and have as many fields as the header.
  A plain file costs one small read at its end; a `.gz` is decompressed to the end once (which also
  catches a truncated gzip stream). Lines are counted only to report an error.
- Rows in the middle are NOT checked (that would mean parsing every column of every row). Where
  polars itself refuses a row with too many fields (it does so only when it reads every column),
  `first_ragged_row` finds its line, on the error path only.
- Two copies of one table (`x.csv` and `x.csv.gz`): `same_content` compares them byte for byte
  (the `.gz` decompressed), stopping at the first difference.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path
from typing import BinaryIO

from bench.errors import UserError

BLOCK = 1 << 24   # read size of the full passes
TAIL = 1 << 16    # bytes kept from the end of a file: the last row is expected to be shorter


def is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def open_binary(path: Path) -> BinaryIO:
    """The file's (decompressed) bytes."""
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")  # type: ignore[return-value]


def parse_row(line: bytes) -> list[str]:
    """The fields of one CSV line (quoted fields may hold commas); csv.Error for an unreadable line
    (a bare carriage return in an unquoted field, say)."""
    return next(csv.reader([line.decode("utf-8", errors="replace")]), [])


_CUT = "(file cut short?); download it again"
_NO_LINE_BREAK = ("last row does not end with a line break: the file was cut short (download it again) "
                  "or saved without a final line break (add one)")


def count_lines(path: Path) -> int:
    """Number of line breaks in the (decompressed) file, read in blocks."""
    count = 0
    with open_binary(path) as handle:
        while block := handle.read(BLOCK):
            count += block.count(b"\n")
    return count


def _gzip_tail(path: Path) -> tuple[bytes, bool]:
    """A .gz read to the end: its last TAIL bytes, and whether they are all of it."""
    tail, size = b"", 0
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(BLOCK):
                size += len(block)
                tail = (tail + block)[-TAIL:] if len(block) < TAIL else block[-TAIL:]
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: truncated or corrupt gzip ({exc}); download it again") from None
    return tail, size <= TAIL


def _plain_tail(path: Path) -> tuple[bytes, bool]:
    """The last TAIL bytes of a plain file, and whether they start at the beginning of the file."""
    with path.open("rb") as handle:
        size = handle.seek(0, io.SEEK_END)
        handle.seek(max(0, size - TAIL))
        return handle.read(), size <= TAIL


def _last_row(tail: bytes) -> tuple[bytes, bool]:
    """`tail` without its trailing line breaks and blank lines, and whether the file ended with one."""
    ends = tail.endswith(b"\n")
    return (tail.rstrip(b"\r\n") if ends else tail), ends


def last_row_problem(tail: bytes, n_fields: int, whole: bool) -> str | None:
    """What is wrong with the last non-blank row in `tail` (the end of a file; `whole`: the entire
    file), or None."""
    body, ends = _last_row(tail)
    if not body:
        return None
    cut = body.rfind(b"\n")
    if cut < 0:  # one line: the header alone (whole file), or a last line longer than TAIL
        return None if whole or ends else _NO_LINE_BREAK
    line = body[cut + 1:]
    if line.count(b'"') % 2:  # a quoted field with a line break inside, or a row cut inside quotes
        return None if ends else f"last row ends inside a quoted field {_CUT}"
    try:
        fields = len(parse_row(line))
    except csv.Error as exc:
        return f"unreadable last row ({exc})"
    if fields < n_fields:
        return f"last row has {fields} of {n_fields} fields {_CUT}"
    if fields > n_fields:
        return f"last row has {fields} fields, the header {n_fields}"
    return None if ends else _NO_LINE_BREAK


def check_complete(path: Path, n_fields: int) -> None:
    """UserError naming the file and line when the table looks cut short (or its gzip is truncated)."""
    tail, whole = _gzip_tail(path) if is_gzip(path) else _plain_tail(path)
    problem = last_row_problem(tail, n_fields, whole)
    if problem:  # lines are counted on this error path only
        body, _ = _last_row(tail)
        line = count_lines(path) - tail[len(body):].count(b"\n") + 1  # the last non-blank row's line number
        raise UserError(f"{path}, line {line}: {problem}")


def first_ragged_row(path: Path, n_fields: int) -> tuple[int, int] | None:
    """(line, fields) of the first row whose field count differs from the header's, or None."""
    try:
        with open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as text:
            reader = csv.reader(text)
            next(reader, None)
            for row in reader:
                if row and len(row) != n_fields:
                    return reader.line_num, len(row)
    except (OSError, EOFError, zlib.error, csv.Error):
        return None
    return None


def same_content(a: Path, b: Path) -> bool:
    """Whether two files hold the same (decompressed) bytes; an unreadable file differs."""
    try:
        with open_binary(a) as first, open_binary(b) as second:
            while True:
                x, y = first.read(BLOCK), second.read(BLOCK)
                if x != y:
                    return False
                if not x:
                    return True
    except (OSError, EOFError, zlib.error):
        return False
