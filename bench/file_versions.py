"""Version stamps of the files bench writes and reads back: a run's run.json and a saved model's config.json.

Each file carries an integer `schema_version` (its layout) and the writing package's version. Policy:
a reader takes every version from 1 up to its own (a field added later is optional, so an older file
still loads); a newer version, or a value that is no version at all, is a one-line error naming the
file and the version found. A saved model's config.json written before it was stamped has no
`schema_version` and loads as before.
"""

from __future__ import annotations

from bench import __version__

FIRST_VERSION = 1


def package_version() -> str:
    """The medrec-bench version of the code that is running (stamped into the files it writes)."""
    return __version__


def version_problem(found: object, current: int, what: str) -> str | None:
    """Why a `what` file stamped `schema_version` `found` cannot be read by this package, whose newest
    layout is `current`; None when it can (FIRST_VERSION <= found <= current)."""
    if isinstance(found, bool) or not isinstance(found, int) or found < FIRST_VERSION:
        return f"{what} schema_version {found!r} is not a known version (an integer from {FIRST_VERSION} to {current})"
    if found > current:
        return (f"{what} schema_version {found} is newer than medrec-bench {__version__} reads "
                f"(up to {current}); update medrec-bench to read it")
    return None
