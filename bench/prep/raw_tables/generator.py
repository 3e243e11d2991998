"""Entry point: `generate` checks its inputs, builds the cohort, vocabularies and drug catalogue, and writes every
table through the parallel gzip writer."""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import UserError, unknown_name
from bench.prep.raw_tables.catalogue import _catalogue, _read_ndc_map, ndc_map_path
from bench.prep.raw_tables.codes import _vocabularies
from bench.prep.raw_tables.cohort import _cohort
from bench.prep.raw_tables.gzip_csv import _GzipCsv, _Pipe
from bench.prep.raw_tables.schema import FORMATS, MIMIC3_COLUMNS, MIMIC4_COLUMNS, table_files
from bench.prep.raw_tables.tables import Progress, _write_all

CHUNK_ADMISSIONS = 25_000


@dataclass(frozen=True)
class TableOutput:
    name: str
    path: Path
    rows: int
    bytes: int


@dataclass(frozen=True)
class SynthResult:
    format: str
    scale: float
    seed: int
    out: Path
    tables: tuple[TableOutput, ...]
    seconds: float


def _check_args(fmt: str, scale: float) -> None:
    if fmt not in FORMATS:
        raise unknown_name("format", fmt, FORMATS)
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise UserError(f"--scale {scale}: must be a number > 0 (1.0 = full MIMIC-IV size, 0.001 = ~300 patients)")


def _check_out(fmt: str, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    try:
        target = out / "hosp" if fmt == "mimic4" else out
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".synth-raw-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def generate(fmt: str, scale: float, out: Path, *, resources: Path | None = None, seed: int = 0,
             progress: Progress | None = None) -> SynthResult:
    """Write the raw tables of `fmt` ("mimic3" | "mimic4") at `scale` x full MIMIC-IV size into `out`.

    `resources`: the folder holding ndc2rxnorm_mapping.txt (else $MEDREC_RESOURCES). `progress(done, total)`
    is called after each chunk of the child tables.
    """
    began = time.perf_counter()
    out = Path(out)
    _check_args(fmt, scale)
    ndc_path = ndc_map_path(resources)
    _check_out(fmt, out)
    ndc_map = _read_ndc_map(str(ndc_path), ndc_path.stat().st_mtime)
    if not ndc_map:
        raise UserError(f"{ndc_path}: holds no NDC")
    cohort = _cohort(fmt, scale, np.random.default_rng([seed, 0]))
    vocab = _vocabularies(np.random.default_rng([seed, 1]))
    catalogue = _catalogue(ndc_map, ndc_path.parent, np.random.default_rng([seed, 2]))
    files = table_files(fmt)
    names = list(files)
    columns = MIMIC4_COLUMNS if fmt == "mimic4" else MIMIC3_COLUMNS
    quote = "non_numeric" if fmt == "mimic3" else None  # full MIMIC-III quotes every text field
    n_adm = len(cohort.adm_pat)
    ends = np.cumsum(cohort.k)
    starts = np.searchsorted(ends, np.arange(CHUNK_ADMISSIONS, n_adm, CHUNK_ADMISSIONS), side="left")
    bounds = np.unique(np.r_[0, ends[starts], n_adm]).tolist()
    chunks = list(zip(bounds[:-1], bounds[1:], strict=True))

    with ExitStack() as stack:
        writers = {name: _GzipCsv(out / files[name], stack, quote, columns[name]) for name in names}
        workers = max(2, os.cpu_count() or 2)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth-raw-gzip") as pool:
            pipe = _Pipe(pool, depth=2 * workers + 2)
            try:
                _write_all(fmt, cohort, vocab, catalogue, chunks, writers, pipe, seed, progress)
                for writer in writers.values():
                    writer.finish(pipe)
            except BaseException:
                pipe.cancel()  # the temp files are then removed by their atomic_path contexts
                raise
    tables = tuple(TableOutput(name, out / files[name], w.rows, (out / files[name]).stat().st_size)
                   for name, w in writers.items())
    return SynthResult(fmt, float(scale), seed, out, tables, time.perf_counter() - began)
