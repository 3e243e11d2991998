"""Small vectorised helpers: counts, ranks, weighted choices, unique ids, and epoch seconds -> polars dates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from bench.prep.raw_tables.rates import DAY

def _nb(rng: np.random.Generator, mean: float, dispersion: float, size: int) -> np.ndarray:
    """Negative binomial counts with the given mean (over-dispersed for small `dispersion`)."""
    if mean <= 0:
        return np.zeros(size, dtype=np.int64)
    return rng.negative_binomial(dispersion, dispersion / (dispersion + mean), size).astype(np.int64)


def _rank_in_group(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within runs of equal values of a grouped (sorted) array."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return np.arange(n, dtype=np.int64) - np.repeat(starts, np.diff(np.r_[starts, n]))


def _choice(rng: np.random.Generator, table: Sequence[tuple[str | None, float]], size: int) -> pl.Series:
    values = pl.Series([v for v, _ in table], dtype=pl.String)
    weights = np.array([w for _, w in table], dtype=np.float64)
    return values.gather(rng.choice(len(values), size, p=weights / weights.sum()))


def _unique_ids(rng: np.random.Generator, n: int, low: int, span: int, *, sort: bool) -> np.ndarray:
    ids = low + rng.choice(max(span, 2 * n), n, replace=False).astype(np.int64)
    return np.sort(ids) if sort else ids


def _datetime(seconds: np.ndarray, null: np.ndarray | None = None) -> pl.Series:
    series = pl.Series(np.asarray(seconds, dtype=np.int64) * 1000).cast(pl.Datetime("ms"))
    return _with_nulls(series, null)


def _date(seconds: np.ndarray, null: np.ndarray | None = None) -> pl.Series:
    series = pl.Series(np.floor_divide(np.asarray(seconds, dtype=np.int64), DAY).astype(np.int32)).cast(pl.Date)
    return _with_nulls(series, null)


def _with_nulls(series: pl.Series, null: np.ndarray | None) -> pl.Series:
    if null is None or not null.any():
        return series
    return pl.select(pl.when(pl.lit(pl.Series(null))).then(None).otherwise(pl.lit(series))).to_series()


def _year_start(years: np.ndarray) -> np.ndarray:
    return (np.asarray(years, dtype=np.int64) - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)


def _minute(seconds: np.ndarray) -> np.ndarray:
    return (np.asarray(seconds, dtype=np.int64) // 60) * 60
