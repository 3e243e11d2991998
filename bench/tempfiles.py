"""Temporary files and folders that name their writer, so the next writer can clear what a killed one left.

Every atomic write of the project (a temp file or folder beside the target, then a rename) names its
temporary `.<target>.tmp-<host>-<pid>-<random>`. `remove_stale` deletes the temporaries of a folder
whose writer ran on this host, is no longer alive, and that have not changed for STALE_AFTER seconds
(a margin against a reused pid or a clock step). Temporaries of other hosts (a shared disk) are left
alone: their pid means nothing here.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

STALE_AFTER = 300.0  # seconds without change before a dead writer's temporary is removed
HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
_WRITER = re.compile(r"\.tmp-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[^/]*$")


def temp_prefix(name: str) -> str:
    """`.<name>.tmp-<host>-<pid>-`: the start of this process's temporaries for `name`."""
    return f".{name}.tmp-{HOST}-{os.getpid()}-"


def make_temp_dir(parent: Path, name: str) -> Path:
    """A new empty temporary folder for `parent / name` (created in `parent`)."""
    return Path(tempfile.mkdtemp(prefix=temp_prefix(name), dir=parent))


def make_temp_file(parent: Path, name: str) -> Path:
    """A new empty temporary file for `parent / name` (created in `parent`, mode 0600)."""
    fd, path = tempfile.mkstemp(prefix=temp_prefix(name), suffix=".tmp", dir=parent)
    os.close(fd)
    return Path(path)


def writer_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to someone else
        return True
    return True


def _remove(path: Path, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale(parent: Path, name: str | None = None) -> list[Path]:
    """Delete the temporaries in `parent` (of `name` only, or of any name) whose writer on this host is
    gone and that are older than STALE_AFTER seconds; returns what was removed. Never raises."""
    start = f".{name}.tmp-" if name is not None else "."
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _WRITER.search(entry.name) if entry.name.startswith(start) else None
        if match is None or match["host"] != HOST:
            continue
        pid = int(match["pid"])
        try:
            if pid == os.getpid() or writer_alive(pid) or now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER:
                continue
            _remove(Path(entry.path), entry.is_dir(follow_symlinks=False))
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed
