"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input (an option, a name, a file); its message is one line."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """`unknown model 'logrg'; did you mean: logreg? (valid: logreg, popular, random)`."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    return UserError(f"unknown {kind} {name!r}{hint} (valid: {', '.join(valid)})")
