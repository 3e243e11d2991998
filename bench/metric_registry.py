"""The metric registry: every reported metric, declared once (GAMENet / SafeDrug definitions).

An entry says what the metric is called (run.json key, column label), which way is better, what it
reads, how it is computed per sample and how per-sample values become one number. Everything that
shows or tests metrics reads this registry: evaluation and run.json (bench.metrics), `bench compare`
columns and best-value marking, the paired bootstrap and its table, `bench rarity`, the plots' axis
labels, `bench run`'s summary and `bench ls metrics`. Adding a metric is one `Metric(...)` in
`METRICS` and its test.

Shapes: ``n`` samples (visits), ``d`` drugs. Per sample, with T the target set and P the predicted set:

* jaccard = |P & T| / |P | T|, 0/0 -> 0
* f1 = 2 p r / (p + r) with p = |P & T| / |P| (0 if P empty), r = |P & T| / |T| (0 if T empty);
  0 when p + r = 0
* prauc = sklearn ``average_precision_score(y_true_row, score_row)`` (step-wise, one threshold per
  distinct score value); 0.0 for a row without positives
* ddi_rate = interacting unordered pairs of P / unordered pairs of P, pooled over samples (0 when
  there are no pairs at all); ddi_rate_true the same on T
* avg_drugs = |P|, pooled per visit (``med_cnt / visit_cnt`` as in the reference code)
* ddi_coverage = unordered pairs of P whose two drugs the DDI graph knows (its nodes, with or without an
  edge: bench.prep.ddi_nodes) / unordered pairs of P, pooled (null when there are no pairs at all): the
  share of pairs the DDI rate can judge; ddi_coverage_true the same on T. A pair outside the graph never
  interacts, so the DDI rate is a lower bound when the coverage is below 1

Aggregation: a metric without ``parts`` is the mean of its per-sample values (under the `every`
protocol: per patient first, then over patients). A metric with ``parts`` (numerator, denominator) is
pooled: sum of numerators / sum of denominators over the selected units (``empty`` when the
denominators sum to 0); a patient's parts are the sums over its visits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, get_args

import numpy as np

__all__ = ["Inputs", "Metric", "METRICS", "model_metrics", "target_metrics", "caveat_metrics",
           "average_precision_rows"]

Need = Literal["sets", "scores", "ddi", "ddi_nodes"]
About = Literal["predictions", "targets"]
PerSample = Callable[["Inputs"], "np.ndarray | tuple[np.ndarray, np.ndarray]"]


@dataclass(frozen=True)
class Inputs:
    """Validated inputs of one evaluation and the per-sample counts metrics share.

    y_true, y_pred: bool [n, d]; scores: float [n, d] in [0, 1] or None (hard predictions);
    ddi_adj: bool [d, d], symmetric, False diagonal; ddi_known: bool [d], the drugs the DDI graph knows,
    or None when not known (then metrics that need "ddi_nodes" are omitted). Every property is float [n].
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    scores: np.ndarray | None
    ddi_adj: np.ndarray
    ddi_known: np.ndarray | None = None

    @cached_property
    def hits(self) -> np.ndarray:
        """|P & T|."""
        return (self.y_true & self.y_pred).sum(axis=1).astype(float)

    @cached_property
    def union(self) -> np.ndarray:
        """|P | T|."""
        return (self.y_true | self.y_pred).sum(axis=1).astype(float)

    @cached_property
    def n_pred(self) -> np.ndarray:
        """|P|."""
        return self.y_pred.sum(axis=1).astype(float)

    @cached_property
    def n_true(self) -> np.ndarray:
        """|T|."""
        return self.y_true.sum(axis=1).astype(float)

    @cached_property
    def precision(self) -> np.ndarray:
        """|P & T| / |P|, 0 when P is empty."""
        return ratio(self.hits, self.n_pred)

    @cached_property
    def recall(self) -> np.ndarray:
        """|P & T| / |T|, 0 when T is empty."""
        return ratio(self.hits, self.n_true)

    @cached_property
    def adjacency(self) -> np.ndarray:
        """The DDI graph as float [d, d]."""
        return self.ddi_adj.astype(float)

    def pairs(self, sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(interacting unordered pairs, all unordered pairs) of each row of bool [n, d] `sets`, float [n] each."""
        x = sets.astype(float)
        k = x.sum(axis=1)
        return ((x @ self.adjacency) * x).sum(axis=1) / 2.0, k * (k - 1) / 2.0  # exact in float64

    def judged_pairs(self, sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(unordered pairs of drugs the DDI graph knows, all unordered pairs) of each row of bool [n, d]
        `sets`, float [n] each (requires ddi_known)."""
        assert self.ddi_known is not None
        k = sets.sum(axis=1).astype(float)
        j = (sets & self.ddi_known).sum(axis=1).astype(float)
        return j * (j - 1) / 2.0, k * (k - 1) / 2.0


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise for float [n] arrays, 0 where den == 0."""
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def average_precision_rows(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row-wise sklearn ``average_precision_score``; bool [n, d], float [n, d] -> float [n].

    Rows are sorted by descending score; precision is read at the last position
    of each run of tied scores (one threshold per distinct value), and each
    positive contributes ``precision_at_its_threshold / n_pos``, which equals
    sum_k (R_k - R_{k-1}) P_k.  Rows with no positive give 0.0.
    """
    n, d = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    s = np.take_along_axis(scores, order, axis=1)
    t = np.take_along_axis(y_true, order, axis=1).astype(float)
    precision = np.cumsum(t, axis=1) / np.arange(1, d + 1)
    is_end = np.ones((n, d), dtype=bool)
    is_end[:, :-1] = s[:, :-1] != s[:, 1:]
    # index of the end of the tie run containing each position: min{j >= i : is_end[j]}
    end_at = np.where(is_end, np.arange(d), d)
    end_idx = np.minimum.accumulate(end_at[:, ::-1], axis=1)[:, ::-1]
    p_at_threshold = np.take_along_axis(precision, end_idx, axis=1)
    n_pos = t.sum(axis=1)
    num = (t * p_at_threshold).sum(axis=1)
    return np.divide(num, n_pos, out=np.zeros(n), where=n_pos > 0)


@dataclass(frozen=True)
class Metric:
    """One reported metric.

    name: run.json key. label: column header (`short`, if given, in per-group columns: "Jac single").
    higher_is_better: direction, None for a descriptive metric (never marked best).
    needs: what it reads besides the targets: "sets" (predicted sets), "scores" (probabilities: n/a,
        None, for a hard-prediction model), "ddi" (the DDI graph).
    per_sample: Inputs -> float [n] per-sample values (mean metric), or (numerator [n], denominator [n])
        when `parts` names them (pooled metric); stored under those names by per_sample_metrics.
    empty: a pooled metric's value when its denominators sum to 0 (the DDI rate with no pairs: 0).
    digits: decimals in tables. groups: the groups `bench compare` shows it for ("all" first);
        every metric is computed and stored for every group.
    about: "targets" for a property of the test set, not of the model (the ground truth's DDI rate):
        stored and printed, never a column, best value or paired test.
    min_drugs_to_rank: best-value marking only ranks models predicting at least this many drugs per
        visit (a model predicting nothing has no interactions).
    caveat: says how far another metric can be trusted rather than how good a model is (the share of
        pairs the DDI graph can judge): stored, a `bench compare` column only when some run's value is
        below 1, never ranked, paired-tested or in the group and rarity tables.
    """

    name: str
    label: str
    higher_is_better: bool | None
    needs: tuple[Need, ...]
    description: str
    per_sample: PerSample
    parts: tuple[str, str] | None = None
    empty: float = math.nan
    digits: int = 4
    groups: tuple[str, ...] = ("all",)
    short: str = ""
    about: About = "predictions"
    min_drugs_to_rank: float = 0.0
    caveat: bool = False

    def __post_init__(self) -> None:
        if not self.needs or not set(self.needs) <= set(get_args(Need)):
            raise ValueError(f"metric {self.name}: needs must be some of {get_args(Need)}, got {self.needs}")
        if self.about not in get_args(About):
            raise ValueError(f"metric {self.name}: about must be one of {get_args(About)}, got {self.about!r}")
        if not self.groups or self.groups[0] != "all":
            raise ValueError(f"metric {self.name}: groups must start with 'all', got {self.groups}")
        if self.parts is not None and (len(self.parts) != 2 or self.parts[0] == self.parts[1]):
            raise ValueError(f"metric {self.name}: parts must be two names, (numerator, denominator)")

    @property
    def better(self) -> Literal["high", "low"] | None:
        """"high", "low" or None (descriptive)."""
        return None if self.higher_is_better is None else ("high" if self.higher_is_better else "low")

    @property
    def direction(self) -> str:
        """"higher is better", "lower is better" or "descriptive"."""
        return {"high": "higher is better", "low": "lower is better", None: "descriptive"}[self.better]

    @property
    def aggregation(self) -> str:
        """How units become one number, in words."""
        return "mean" if self.parts is None else f"pooled {self.parts[0]} / {self.parts[1]}"


def _jaccard(x: Inputs) -> np.ndarray:
    """float [n]: |P & T| / |P | T| (0/0 -> 0)."""
    return ratio(x.hits, x.union)


def _f1(x: Inputs) -> np.ndarray:
    """float [n]: set F1 from set precision and recall, 0 when both are 0."""
    return ratio(2.0 * x.precision * x.recall, x.precision + x.recall)


def _prauc(x: Inputs) -> np.ndarray:
    """float [n]: average precision of the scores (requires scores)."""
    assert x.scores is not None
    return average_precision_rows(x.y_true, x.scores)


def _drugs(x: Inputs) -> tuple[np.ndarray, np.ndarray]:
    """(|P|, 1 visit) per sample, float [n] each."""
    return x.n_pred, np.ones(len(x.n_pred))


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("jaccard", "Jaccard", True, ("sets",), "mean |P&T|/|P|T| (0/0 -> 0)", _jaccard,
           groups=("all", "single_visit", "multi_visit"), short="Jac"),
    Metric("f1", "F1", True, ("sets",), "mean set F1 from set precision and recall", _f1),
    Metric("prauc", "PRAUC", True, ("scores",), "mean average precision of scores (sklearn)", _prauc,
           groups=("all", "single_visit", "multi_visit")),
    Metric("ddi_rate", "DDI", False, ("sets", "ddi"), "pooled interacting pairs / pairs, predictions",
           lambda x: x.pairs(x.y_pred), parts=("ddi_pairs", "all_pairs"), empty=0.0, min_drugs_to_rank=1.0),
    Metric("ddi_rate_true", "ground-truth DDI rate", None, ("ddi",), "pooled DDI rate of the ground truth",
           lambda x: x.pairs(x.y_true), parts=("ddi_pairs_true", "all_pairs_true"), empty=0.0, about="targets"),
    Metric("avg_drugs", "#drugs", None, ("sets",), "mean number of predicted drugs per visit", _drugs,
           parts=("avg_drugs", "n_visits"), digits=2),
    # the denominators are the DDI rates' "all_pairs" / "all_pairs_true": the same numbers
    Metric("ddi_coverage", "DDI judged", None, ("sets", "ddi_nodes"),
           "pooled pairs of drugs known to the DDI graph / pairs, predictions", lambda x: x.judged_pairs(x.y_pred),
           parts=("judged_pairs", "all_pairs"), digits=3, caveat=True),
    Metric("ddi_coverage_true", "ground-truth DDI judged", None, ("ddi_nodes",),
           "pooled pairs of drugs known to the DDI graph / pairs, ground truth", lambda x: x.judged_pairs(x.y_true),
           parts=("judged_pairs_true", "all_pairs_true"), digits=3, about="targets"),
)}


def model_metrics() -> list[Metric]:
    """The metrics of a model's predictions, in registry order: table columns, paired tests, rarity."""
    return [m for m in METRICS.values() if m.about == "predictions" and not m.caveat]


def caveat_metrics() -> list[Metric]:
    """The metrics of a model's predictions that qualify other metrics (`Metric.caveat`)."""
    return [m for m in METRICS.values() if m.about == "predictions" and m.caveat]


def target_metrics() -> list[Metric]:
    """The metrics of the test set itself (the ground truth's DDI rate)."""
    return [m for m in METRICS.values() if m.about == "targets"]
