"""Child tables (diagnoses, procedures, prescriptions), one chunk of whole patients at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.prep.raw_tables.catalogue import _Catalogue
from bench.prep.raw_tables.codes import _draw, _Vocab
from bench.prep.raw_tables.cohort import _Cohort
from bench.prep.raw_tables.helpers import _minute, _nb, _rank_in_group
from bench.prep.raw_tables.rates import (
    DX_MAX,
    DX_RAW_PER_ADMISSION,
    PX_RAW_PER_ADMISSION,
    PX_SHARE_WITH,
    RX_PER_ADMISSION,
    RX_ROWS_PER_DRUG,
    RX_SHARE_WITH,
)

def _codes(c: _Cohort, a0: int, a1: int, vocab: _Vocab, counts: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(admission index, seq_num, index into vocab.codes) per row; codes are distinct within an admission."""
    adm = np.repeat(np.arange(a0, a1), counts)
    v10 = c.version[adm] == 10
    code = np.where(v10, vocab.n9 + _draw(rng, vocab.cdf10, len(adm)), _draw(rng, vocab.cdf9, len(adm)))
    _, keep = np.unique(adm * (len(vocab.codes) + 1) + code, return_index=True)
    keep.sort()
    adm, code = adm[keep], code[keep]
    return adm, _rank_in_group(adm) + 1, code


def _diagnoses(c: _Cohort, a0: int, a1: int, vocab: _Vocab, rng: np.random.Generator):
    counts = np.minimum(1 + _nb(rng, DX_RAW_PER_ADMISSION - 1, 3.0, a1 - a0), DX_MAX)
    return _codes(c, a0, a1, vocab, counts, rng)


def _procedures(c: _Cohort, a0: int, a1: int, vocab: _Vocab, rng: np.random.Generator):
    n = a1 - a0
    has = rng.random(n) < PX_SHARE_WITH
    counts = np.where(has, np.minimum(1 + _nb(rng, PX_RAW_PER_ADMISSION / PX_SHARE_WITH - 1, 1.2, n), 40), 0)
    adm, seq, code = _codes(c, a0, a1, vocab, counts, rng)
    chart = c.admit[adm] + (rng.random(len(adm)) * (c.disch[adm] - c.admit[adm])).astype(np.int64)
    return adm, seq, code, chart


@dataclass
class _RxChunk:
    adm: np.ndarray
    entry: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    stop_null: np.ndarray


def _prescriptions(c: _Cohort, a0: int, a1: int, cat: _Catalogue, rng: np.random.Generator) -> _RxChunk:
    n = a1 - a0
    drugs_mean = RX_PER_ADMISSION / (RX_SHARE_WITH * RX_ROWS_PER_DRUG)
    n_drugs = np.where(rng.random(n) < RX_SHARE_WITH, 1 + _nb(rng, drugs_mean - 1, 1.5, n), 0)
    slot_adm = np.repeat(np.arange(a0, a1), n_drugs)
    m = len(slot_adm)
    klass = np.searchsorted(np.cumsum(cat.class_shares), rng.random(m) * cat.class_shares.sum(), side="right")
    klass = np.minimum(klass, len(cat.classes) - 1)
    entry = np.zeros(m, dtype=np.int64)
    for i, (members, cdf) in enumerate(zip(cat.classes, cat.class_cdfs, strict=True)):
        mask = klass == i
        entry[mask] = members[_draw(rng, cdf, int(mask.sum()))]
    reps = rng.geometric(1 / RX_ROWS_PER_DRUG, m)
    adm, entry = np.repeat(slot_adm, reps), np.repeat(entry, reps)
    rows = len(adm)
    span = c.disch[adm] - c.admit[adm]
    start = _minute(c.admit[adm] + rng.random(rows) * span)
    stop = start + np.maximum(_minute(rng.lognormal(math.log(20 * 3600), 1.0, rows)), 60)
    return _RxChunk(adm, entry, start, stop, rng.random(rows) < 0.01)
