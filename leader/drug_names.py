"""Generated text -> ATC3 classes: split a list, normalise each name, match it exactly or fuzzily.

The plain-LLM baseline (LEADER, arXiv 2402.02803, docs/leader.md#plain-llm-baseline) asks an LLM to write the
medication classes; the names it writes must be mapped back to the drug vocabulary. A name that
matches no class is "out of corpus", the failure LEADER's output layer removes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# separators between written names; list numbers only where no word character precedes them, so
# "vitamin b12. " is not cut into "vitamin b" + list number "12. "
_SPLIT = re.compile(r"[,;\n]|\band\b|(?<!\w)\d+[.)]\s")
_SPLIT_KEEP = re.compile(r"([,;\n]|\band\b|(?<!\w)\d+[.)]\s)")
_JOINABLE = {",", "and"}  # separators that also occur INSIDE ATC3 names ("antiarrhythmics, class i and iii")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)])\s*")
_NON_WORD = re.compile(r"[^a-z0-9()]+")


def normalise(name: str) -> str:
    """Lower case, punctuation other than parentheses to single spaces, trimmed: 'Beta-blocking
    agents.' -> 'beta blocking agents'."""
    return _NON_WORD.sub(" ", name.lower()).strip()


def split_names(text: str) -> list[str]:
    """The names in a generated answer: split on commas, semicolons, new lines, 'and' and list
    numbers; bullets and surrounding quotes removed; empty pieces dropped."""
    return [p for p in (_clean(piece) for piece in _SPLIT.split(text)) if p]


def _clean(piece: str) -> str:
    return _BULLET.sub("", piece).strip().strip("\"'`.:").strip()


@dataclass(frozen=True)
class NameMatcher:
    """Maps a written name to an ATC3 code: the code itself ('B01A'), the exact normalised class
    name, else the closest class name with difflib's ratio >= `cutoff`.

    Many ATC3 names hold a comma or an "and" ("other analgesics and antipyretics", "antiarrhythmics,
    class i and iii"), the very separators of a written list: `parse` splits the answer, then
    rejoins neighbouring pieces across a comma or "and" when the joined text is a class name."""

    names: Mapping[str, str]  # ATC3 code -> class name (the vocabulary's titles)
    cutoff: float = 0.85

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {normalise(n): code for code, n in self.names.items()})
        object.__setattr__(self, "_codes", {code.lower(): code for code in self.names})
        # class names by the number of pieces a written list would split them into (1 + commas and "and"s)
        by_pieces: dict[int, list[str]] = {}
        for name in self.names.values():
            by_pieces.setdefault(len(split_names(name.lower())), []).append(normalise(name))
        object.__setattr__(self, "_by_pieces", by_pieces)
        object.__setattr__(self, "_max_span", max(by_pieces, default=1))

    def _exact(self, name: str) -> str | None:
        key = normalise(name)
        if key.replace(" ", "") in self._codes:
            return self._codes[key.replace(" ", "")]
        return self._by_name.get(key)

    def _fuzzy(self, name: str, candidates: list[str] | None = None) -> str | None:
        close = difflib.get_close_matches(normalise(name), list(self._by_name) if candidates is None else candidates,
                                          n=1, cutoff=self.cutoff)
        return self._by_name[close[0]] if close else None

    def match(self, name: str) -> str | None:
        """The code of one written name (not split further), or None."""
        if not normalise(name):
            return None
        return self._exact(name) or self._fuzzy(name)

    def parse(self, text: str) -> tuple[list[str], int, int]:
        """(matched ATC3 codes without repeats, in order; names written; names matching nothing).

        From each piece on, the longest run of pieces joined by commas / "and" that is exactly a class
        name (or code) wins, else the longest run that matches fuzzily a class name of as many pieces
        (so a misspelt name never swallows its neighbour: "antithrombotc agents, foo" is a match and
        an unmatched name); a piece that starts no match counts as one written name matching nothing."""
        parts = _SPLIT_KEEP.split(text)
        pieces, separators = [_clean(p) for p in parts[0::2]], [s.strip() for s in parts[1::2]]
        found: dict[str, None] = {}
        written = unmatched = 0
        i = 0
        while i < len(pieces):
            if not pieces[i]:
                i += 1
                continue
            spans = [pieces[i]]  # spans[k]: pieces i..i+k joined with their separators
            while (len(spans) < self._max_span and i + len(spans) < len(pieces)
                   and separators[i + len(spans) - 1] in _JOINABLE and pieces[i + len(spans)]):
                spans.append(f"{spans[-1]} {separators[i + len(spans) - 1]} {pieces[i + len(spans)]}")
            code, used = None, 1
            for fuzzy in (False, True):
                for k in range(len(spans) - 1, -1, -1):
                    code = (self._fuzzy(spans[k], self._by_pieces.get(k + 1, [])) if fuzzy
                            else self._exact(spans[k]))
                    if code is not None:
                        used = k + 1
                        break
                if code is not None:
                    break
            written += 1
            if code is None:
                unmatched += 1
            else:
                found[code] = None
            i += used
        return list(found), written, unmatched


def out_of_corpus_rate(counts: Iterable[tuple[int, int]]) -> float | None:
    """Share of written names that match no drug, pooled over answers of (written, unmatched);
    None when nothing was written."""
    written = unmatched = 0
    for w, u in counts:
        written, unmatched = written + w, unmatched + u
    return unmatched / written if written else None
