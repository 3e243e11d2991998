"""Downloads checked against pinned sha256 digests, shared by `bench resources fetch` and `bench data fetch`.

A `Transport` turns a URL into bytes or a `Stream` of chunks (tests replace it); `download_verified`
writes what it gets to a temp file beside the target, hashing as it goes, and renames it into place
only when the digest is the pinned one, so a target is never half written nor replaced by wrong bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.errors import UserError
from bench.io import atomic_path, file_sha256

CHUNK = 1 << 16


class DownloadError(UserError):
    """A URL that could not be read (network, HTTP status); one line naming the URL and the reason."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: download failed ({reason})")
        self.url, self.reason = url, reason


@dataclass(frozen=True)
class Stream:
    """A download under way: its announced size (None when the server does not say) and its chunks."""

    size: int | None
    chunks: Iterable[bytes]


class Transport(Protocol):
    """Fetches a URL as bytes or a Stream; raises DownloadError (one line) when it cannot."""

    def __call__(self, url: str) -> bytes | Stream: ...


def one_line(exc: object) -> str:
    """An exception's message on one line (its class name when it has none)."""
    return " ".join(str(exc).split()) or exc.__class__.__name__


def urllib_transport(url: str, timeout: float = 60.0) -> Stream:
    """The default transport: urllib.request with a timeout, streamed in chunks; failures as DownloadError."""
    import http.client
    import urllib.error
    import urllib.request

    failures = (urllib.error.URLError, http.client.HTTPException, OSError)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(url, f"HTTP {exc.code} {exc.reason}") from None
    except failures as exc:
        raise DownloadError(url, one_line(getattr(exc, "reason", None) or exc)) from None
    length = response.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None

    def chunks() -> Iterator[bytes]:
        got = 0
        try:
            with response:
                while block := response.read(CHUNK):
                    got += len(block)
                    yield block
        except failures as exc:
            raise DownloadError(url, f"interrupted: {one_line(getattr(exc, 'reason', None) or exc)}") from None
        if size is not None and got < size:  # the server hung up early (http.client does not always raise)
            raise DownloadError(url, f"interrupted after {got:,} of {size:,} bytes")

    return Stream(size, chunks())


def as_stream(got: bytes | Stream) -> Stream:
    """A transport's answer as a Stream (plain bytes become one chunk)."""
    return Stream(len(got), (got,)) if isinstance(got, bytes) else got


def is_valid(path: Path, sha256: str) -> bool:
    """True when `path` is a file whose sha256 is `sha256`."""
    return path.is_file() and file_sha256(path) == sha256


def download_verified(url: str, target: Path, sha256: str, transport: Transport,
                      started: Callable[[int | None], None] = lambda size: None,
                      advance: Callable[[int], None] = lambda n: None) -> int:
    """Download `url` into `target` only if its sha256 is `sha256`; returns the number of bytes.

    `started(size)` is called once the transport answers (size None when unknown), `advance(n)` after
    each chunk written. On a mismatch, nothing is written (the temp file is removed) and the one-line
    error names the URL and both digests; an existing `target` is left as it was.
    """
    stream = as_stream(transport(url))
    started(stream.size)
    digest, written = hashlib.sha256(), 0
    try:
        with atomic_path(target) as tmp:
            with tmp.open("wb") as handle:
                for block in stream.chunks:  # network failures: DownloadError (a UserError, not an OSError)
                    handle.write(block)
                    digest.update(block)
                    written += len(block)
                    advance(len(block))
            got = digest.hexdigest()
            if got != sha256:
                raise UserError(f"{url}: sha256 mismatch for {target.name}, expected {sha256}, got {got}; "
                                "nothing written")
    except OSError as exc:  # the folder cannot be created or written (permissions, a full disk)
        raise UserError(f"{target}: cannot write ({one_line(exc)}); nothing written") from None
    return written
