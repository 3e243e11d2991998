"""Writing: gzip CSV. Each file is one standard gzip member, compressed in parallel like pigz: the CSV text is
cut into blocks, each block is deflated on a worker thread (zlib releases the GIL) and ends with a sync
flush, so the blocks concatenate into one valid deflate stream; the main thread writes them in order and
keeps the CRC-32, and generates the next chunk meanwhile.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import polars as pl

from bench.io import atomic_path

GZIP_LEVEL = 1
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0: reproducible bytes
BLOCK_BYTES = 16 << 20


def _deflate_block(data: memoryview) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


class _Pipe:
    """Compression jobs on a thread pool, written to their files in submission order; at most `depth` pending."""

    def __init__(self, pool: ThreadPoolExecutor, depth: int):
        self.pool, self.depth = pool, depth
        self.pending: deque[tuple[_GzipCsv, Future[bytes]]] = deque()

    def submit(self, writer: _GzipCsv, data: memoryview) -> None:
        self.pending.append((writer, self.pool.submit(_deflate_block, data)))
        while len(self.pending) > self.depth:
            self._write_oldest()

    def _write_oldest(self) -> None:
        writer, future = self.pending.popleft()
        writer.handle.write(future.result())

    def drain(self) -> None:
        while self.pending:
            self._write_oldest()

    def cancel(self) -> None:
        for _, future in self.pending:
            future.cancel()
        self.pending.clear()


class _GzipCsv:
    def __init__(self, path: Path, stack: ExitStack, quote_style: str | None, columns: tuple[str, ...]):
        self.path = path
        self.tmp = stack.enter_context(atomic_path(path))
        self.handle = stack.enter_context(open(self.tmp, "wb"))  # noqa: SIM115 (closed by the stack)
        self.handle.write(GZIP_HEADER)
        self.quote_style = quote_style
        self.columns = columns
        self.rows = 0
        self.crc = 0
        self.size = 0
        self.header = True

    def write(self, frame: pl.DataFrame, pipe: _Pipe) -> None:
        frame = frame.select(self.columns)
        buffer = io.BytesIO()
        frame.write_csv(buffer, include_header=self.header, datetime_format="%Y-%m-%d %H:%M:%S",
                        date_format="%Y-%m-%d", quote_style=self.quote_style)  # type: ignore[arg-type]
        self.header = False
        self.rows += frame.height
        data = buffer.getbuffer()  # no copy: the views keep the buffer alive until compressed
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        for offset in range(0, len(data), BLOCK_BYTES):
            pipe.submit(self, data[offset:offset + BLOCK_BYTES])

    def finish(self, pipe: _Pipe) -> None:
        """Write what is pending, the final (empty) deflate block and the gzip trailer."""
        if self.header:  # nothing written yet: still a header line
            self.write(pl.DataFrame(schema={c: pl.String for c in self.columns}), pipe)
        pipe.drain()
        self.handle.write(zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))
        self.handle.write(struct.pack("<II", self.crc & 0xFFFFFFFF, self.size & 0xFFFFFFFF))


def write_tables(out: Path, tables: Mapping[str, tuple[str, pl.DataFrame]]) -> list[tuple[str, Path, int]]:
    """Write whole frames, {name: (path under `out`, frame)}, each as one gzip CSV with the frame's columns (a
    frame without rows still gets its header line); each file appears atomically. Returns (name, path, rows)."""
    with ExitStack() as stack:
        writers = {name: _GzipCsv(out / rel, stack, None, tuple(frame.columns)) for name, (rel, frame) in tables.items()}
        workers = max(2, os.cpu_count() or 2)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth-raw-gzip") as pool:
            pipe = _Pipe(pool, depth=2 * workers + 2)
            try:
                for name, (_, frame) in tables.items():
                    if frame.height:
                        writers[name].write(frame, pipe)
                    writers[name].finish(pipe)
            except BaseException:
                pipe.cancel()  # the temp files are then removed by their atomic_path contexts
                raise
    return [(name, out / rel, writers[name].rows) for name, (rel, _) in tables.items()]
