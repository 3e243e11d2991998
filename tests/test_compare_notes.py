"""`bench compare`'s notes: the pinned DDI graph's known filter is named under tables of runs that read
the drug-knowledge resources (MIMIC), and only there."""

from __future__ import annotations

import json

from bench.analysis.compare import PINNED_DDI_NOTE, footnotes
from tests.conftest import REPO_ROOT


def _reference_run() -> dict:
    path = sorted((REPO_ROOT / "results" / "reference" / "synthetic").glob("logreg/*/run.json"))[0]
    return json.loads(path.read_text())


def test_the_pinned_ddi_graph_is_named_only_for_runs_that_read_the_resources():
    synthetic = _reference_run()
    assert synthetic.get("resources") is None and PINNED_DDI_NOTE not in footnotes([synthetic])
    mimic = {**synthetic, "resources": {"folder": "medkb", "modified": [], "allowed": False}}
    assert PINNED_DDI_NOTE in footnotes([synthetic, mimic])
    assert "40 LEAST frequent" in PINNED_DDI_NOTE
