"""Data model, vocabularies, samples, splits and config overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest

from bench.config import apply_overrides, parse_assignments
from bench.data import DatasetBundle, Patient, Visit, Vocab, build_vocabs, make_samples, target_matrix
from bench.errors import UserError
from bench.splits import parse_ratios, split_patients


def visit(i: int, dx=("d1",), px=("p1",), rx=("A01A",)) -> Visit:
    return Visit(admission_id=i, diagnoses=tuple(dx), procedures=tuple(px), drugs=tuple(rx), profile={"insurance": "x"})


def patients(n: int) -> list[Patient]:
    return [Patient(id=i, visits=tuple(visit(10 * i + j) for j in range(1 + i % 3))) for i in range(1, n + 1)]


def test_vocab_encodes_and_multi_hot():
    vocab = Vocab(["a", "b", "c"])
    assert vocab.encode(["c", "zzz", "a"]) == [2, 0]
    np.testing.assert_array_equal(vocab.multi_hot([["a"], [], ["b", "c"]]),
                                  [[1, 0, 0], [0, 0, 0], [0, 1, 1]])
    with pytest.raises(ValueError):
        Vocab(["a", "a"])


def test_samples_last_and_every():
    p = Patient(1, (visit(1, rx=("A",)), visit(2, rx=("B",)), visit(3, rx=("C",))))
    q = Patient(2, (visit(4),))
    last = make_samples([p, q], "last")
    assert [(s.patient.id, s.index) for s in last] == [(1, 2), (2, 0)]
    assert last[0].history == p.visits[:2] and not last[0].is_single_visit and last[1].is_single_visit
    every = make_samples([p, q], "every")
    assert [(s.patient.id, s.index) for s in every] == [(1, 0), (1, 1), (1, 2), (2, 0)]
    vocab = Vocab(["A", "A01A", "B", "C"])
    np.testing.assert_array_equal(target_matrix(last, vocab), [[0, 0, 0, 1], [0, 1, 0, 0]])
    with pytest.raises(ValueError, match="protocol"):
        make_samples([p], "first")


def test_ddi_matrix_and_hash_are_stable():
    ps = patients(5)
    vocabs = build_vocabs(ps)
    make = lambda pairs: DatasetBundle("t", tuple(ps), vocabs, {}, pairs, {}, ("insurance",))
    bundle = make((("A01A", "A01A"), ("A01A", "ZZZZ")))
    assert not bundle.ddi_matrix().any()  # self pairs and out-of-vocabulary pairs are ignored
    assert make(()).hash == make(()).hash
    assert make(()).hash != make((("A01A", "B01A"),)).hash


def test_random_split_is_seeded_disjoint_and_8_1_1():
    ps = patients(100)
    a, b, c = (split_patients(ps, "random", seed) for seed in (0, 0, 1))
    assert a == b and a != c
    assert a.sizes() == {"train": 80, "valid": 10, "test": 10}
    ids = [{p.id for p in part} for part in (a.train, a.valid, a.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set().union(*ids) == set(range(1, 101))


def test_ordered_schemes():
    ps = list(reversed(patients(30)))
    leader = split_patients(ps, "leader", seed=5)
    assert [p.id for p in leader.train] == list(range(1, 25))
    assert [p.id for p in leader.test] == [28, 29, 30]
    gamenet = split_patients(ps, "gamenet")
    assert [p.id for p in gamenet.train] == list(range(1, 21))
    assert [p.id for p in gamenet.test] == list(range(21, 26))  # test comes before valid
    assert [p.id for p in gamenet.valid] == list(range(26, 31))
    assert parse_ratios("8:1:1") == pytest.approx((0.8, 0.1, 0.1))
    with pytest.raises(ValueError):
        parse_ratios("8:1")


@dataclass(frozen=True)
class _Cfg:
    lr: float = 0.1
    epochs: int = 3
    lora: bool = True
    pooling: Literal["last", "mean"] = "last"
    base_model: str | None = None


def test_overrides_are_typed():
    cfg = apply_overrides(_Cfg, parse_assignments(["lr=0.5", "epochs=7", "lora=false", "pooling=mean"]), owner="m")
    assert cfg == _Cfg(lr=0.5, epochs=7, lora=False, pooling="mean")
    assert apply_overrides(_Cfg, {"base_model": "none"}, owner="m").base_model is None
    with pytest.raises(UserError, match="unknown option 'lrr'.*valid fields: lr \\(float\\)"):
        apply_overrides(_Cfg, {"lrr": "1"}, owner="m")
    with pytest.raises(UserError, match="epochs='x'.*expects int"):
        apply_overrides(_Cfg, {"epochs": "x"}, owner="m")
    with pytest.raises(UserError, match="expects last\\|mean"):
        apply_overrides(_Cfg, {"pooling": "max"}, owner="m")
    with pytest.raises(UserError, match="key=value"):
        parse_assignments(["lr"])
