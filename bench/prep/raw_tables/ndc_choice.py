"""One NDC per ATC3 drug class, chosen so that the pinned NDC -> RXCUI -> ATC4 mapping sends it back to that
class: the smallest such NDC whose RXCUI has no ATC4 row of another class in the NDC -> ATC4 file (so a
toolkit that keeps every ATC row of an RXCUI, not only the first, still finds only that class); where every
candidate's RXCUI also has rows of other classes, the smallest candidate under the project's rule (the first
row per RXCUI, bench.prep.drug_knowledge.read_rxcui2atc4) and the class is reported as `shared`."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bench.errors import UserError
from bench.prep import drug_knowledge
from bench.prep.drug_knowledge import MedKB


@dataclass(frozen=True)
class NdcChoice:
    """ndc: ATC3 -> NDC11 for every class that can be written; shared: the classes whose NDC's RXCUI also has
    ATC4 rows of other classes; missing: the classes no NDC maps to."""

    ndc: Mapping[str, str]
    shared: tuple[str, ...]
    missing: tuple[str, ...]


def rxcui_classes(zip_path: Path) -> dict[str, frozenset[str]]:
    """RXCUI -> every ATC3 class (first 4 characters of the ATC4 codes) its rows in the NDC -> ATC4 file name."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            raw = archive.read(drug_knowledge.NDC2ATC4_MEMBER)
        frame = (pl.read_csv(raw, columns=["RXCUI", "ATC5"], infer_schema=False)
                 .select(pl.col("RXCUI").str.strip_chars(), pl.col("ATC5").str.strip_chars())
                 .filter((pl.col("RXCUI").str.len_chars() > 0) & (pl.col("ATC5").str.len_chars() >= 4))
                 .group_by("RXCUI").agg(pl.col("ATC5").str.slice(0, 4).unique()))
    except (OSError, KeyError, zipfile.BadZipFile, pl.exceptions.PolarsError) as exc:
        raise UserError(f"{zip_path}: expected a zip holding {drug_knowledge.NDC2ATC4_MEMBER} with columns RXCUI, "
                        f"ATC5 ({exc.__class__.__name__})") from None
    return {rxcui: frozenset(codes) for rxcui, codes in zip(frame["RXCUI"].to_list(), frame["ATC5"].to_list(),
                                                             strict=True)}


def choose_ndcs(classes: Iterable[str], kb: MedKB, all_classes: Mapping[str, frozenset[str]]) -> NdcChoice:
    """The NDC written for each of `classes` (module docstring); `all_classes` is `rxcui_classes` of kb's file."""
    wanted = set(classes)
    clean: dict[str, str] = {}
    any_: dict[str, str] = {}
    for ndc, atc3 in sorted(kb.ndc_to_atc3().items()):
        if atc3 not in wanted or not (len(ndc) == 11 and ndc.isdigit()):  # the map also holds a stray 'idx'
            continue
        any_.setdefault(atc3, ndc)
        if all_classes.get(kb.ndc2rxcui[ndc], frozenset({atc3})) == {atc3}:
            clean.setdefault(atc3, ndc)
    return NdcChoice(ndc={c: clean.get(c, any_.get(c, "")) for c in sorted(any_)},
                     shared=tuple(sorted(set(any_) - set(clean))), missing=tuple(sorted(wanted - set(any_))))
