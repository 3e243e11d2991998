"""Generated text -> ATC3 classes: split a list, normalise each name, match it exactly or fuzzily.

The plain-LLM baseline (LEADER, arXiv 2402.02803, REFERENCE.md section 4) asks an LLM to write the
medication classes; the names it writes must be mapped back to the drug vocabulary. A name that
matches no class is "out of corpus", the failure LEADER's output layer removes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_SPLIT = re.compile(r"[,;\n]|\band\b|\d+[.)]\s")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)])\s*")
_NON_WORD = re.compile(r"[^a-z0-9()]+")


def normalise(name: str) -> str:
    """Lower case, punctuation other than parentheses to single spaces, trimmed: 'Beta-blocking
    agents.' -> 'beta blocking agents'."""
    return _NON_WORD.sub(" ", name.lower()).strip()


def split_names(text: str) -> list[str]:
    """The names in a generated answer: split on commas, semicolons, new lines, 'and' and list
    numbers; bullets and surrounding quotes removed; empty pieces dropped."""
    pieces = (_BULLET.sub("", piece).strip().strip("\"'`.:") for piece in _SPLIT.split(text))
    return [p for p in (piece.strip() for piece in pieces) if p]


@dataclass(frozen=True)
class NameMatcher:
    """Maps a written name to an ATC3 code: the code itself ('B01A'), the exact normalised class
    name, else the closest class name with difflib's ratio >= `cutoff`."""

    names: Mapping[str, str]  # ATC3 code -> class name (the vocabulary's titles)
    cutoff: float = 0.85

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {normalise(n): code for code, n in self.names.items()})
        object.__setattr__(self, "_codes", {code.lower(): code for code in self.names})

    def match(self, name: str) -> str | None:
        key = normalise(name)
        if not key:
            return None
        if key.replace(" ", "") in self._codes:
            return self._codes[key.replace(" ", "")]
        if key in self._by_name:
            return self._by_name[key]
        close = difflib.get_close_matches(key, list(self._by_name), n=1, cutoff=self.cutoff)
        return self._by_name[close[0]] if close else None

    def parse(self, text: str) -> tuple[list[str], int, int]:
        """(matched ATC3 codes without repeats, in order; names written; names matching nothing)."""
        names = split_names(text)
        found: dict[str, None] = {}
        unmatched = 0
        for name in names:
            code = self.match(name)
            if code is None:
                unmatched += 1
            else:
                found[code] = None
        return list(found), len(names), unmatched


def out_of_corpus_rate(counts: Iterable[tuple[int, int]]) -> float | None:
    """Share of written names that match no drug, pooled over answers of (written, unmatched);
    None when nothing was written."""
    written = unmatched = 0
    for w, u in counts:
        written, unmatched = written + w, unmatched + u
    return unmatched / written if written else None
