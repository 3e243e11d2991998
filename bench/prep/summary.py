"""Descriptive statistics of a prepared bundle (what `bench prepare` prints)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.data import CODE_TYPES, DatasetBundle

CHUNK = 50_000


def ground_truth_pairs(bundle: DatasetBundle) -> tuple[float, float, float]:
    """(interacting pairs, pairs the DDI graph can judge, all pairs) among each visit's drugs, summed over
    every visit (in chunks); a pair is judged when the graph knows both drugs (DatasetBundle.ddi_known)."""
    adj = bundle.ddi_matrix().astype(np.float32)
    known = bundle.ddi_known().astype(np.float32)
    visits = [v.drugs for p in bundle.patients for v in p.visits]
    interacting = judged = pairs = 0.0
    for start in range(0, len(visits), CHUNK):
        hot = bundle.drug_vocab.multi_hot(visits[start:start + CHUNK])
        interacting += float(((hot @ adj) * hot).sum()) / 2
        k, j = hot.sum(axis=1), hot @ known
        pairs += float((k * (k - 1) / 2).sum())
        judged += float((j * (j - 1) / 2).sum())
    return interacting, judged, pairs


def bundle_summary(bundle: DatasetBundle) -> dict[str, Any]:
    """Patients, visits, vocabulary sizes, codes per visit, single-visit share, drug classes the DDI graph
    knows (bench.prep.ddi_nodes), ground-truth DDI rate and the share of its pairs the graph can judge
    (null without pairs),
    and, for prepared MIMIC data, NDC mapping coverage (distinct codes and rows)."""
    visits = [v for p in bundle.patients for v in p.visits]
    n_visits = max(len(visits), 1)
    interacting, judged, pairs = ground_truth_pairs(bundle)
    summary: dict[str, Any] = {
        "patients": len(bundle.patients),
        "visits": len(visits),
        "codes": {t: len(bundle.vocabs[t]) for t in CODE_TYPES},
        "avg_codes_per_visit": {t: sum(len(v.codes(t)) for v in visits) / n_visits for t in CODE_TYPES},
        "single_visit_share": sum(len(p.visits) == 1 for p in bundle.patients) / max(len(bundle.patients), 1),
        "ddi_pairs_in_vocab": int(bundle.ddi_matrix().sum() // 2),
        "drugs_in_ddi_graph": int(bundle.ddi_known().sum()),
        "ddi_rate_ground_truth": interacting / pairs if pairs else 0.0,
        "ddi_coverage_ground_truth": judged / pairs if pairs else None,
    }
    counts = bundle.meta.get("counts", {})
    if counts.get("ndc_distinct"):
        summary["ndc_coverage_distinct"] = counts["ndc_distinct_mapped"] / counts["ndc_distinct"]
        summary["ndc_coverage_rows"] = counts["ndc_rows_mapped"] / max(counts["ndc_rows"], 1)
    return summary
