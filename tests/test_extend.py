"""The README's "Add a model, a metric, a dataset", model part, followed from OUTSIDE the repository: a
package written to a temporary folder declares a plug-in, registered only by the string in
$MEDREC_PLUGINS; `bench ls`, `bench run` and `bench compare` then treat its model like any other."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# Step 1 of the README: a model class (its Config dataclass, fit, predict_proba, state/set_state).
MODEL = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bench.data import target_matrix
from bench.model_base import BaseRecommender
from bench.protocol import FitReport


@dataclass(frozen=True)
class FrequencyConfig:
    smoothing: float = 1.0  # add-k smoothing of the drug frequencies


class Frequency(BaseRecommender):
    """Every drug scored by its smoothed training frequency, the same for every patient."""

    name: ClassVar[str] = "ext-frequency"
    Config = FrequencyConfig

    def fit(self, train, valid, *, seed, progress):
        counts = target_matrix(train, self.resources.vocabs["drug"]).sum(axis=0)
        smoothing = self.config.smoothing
        self._scores = ((counts + smoothing) / (len(train) + 2 * smoothing)).astype(np.float32)
        return FitReport(notes={"n_train": len(train)})

    def predict_proba(self, samples):
        return np.tile(self._scores, (len(samples), 1))

    def state(self):
        return {"scores": self._scores}

    def set_state(self, state):
        self._scores = state["scores"]
'''

# Step 2: a plug-in that registers it by string (cheap to import: no model code at import time).
PLUGIN = '''
from bench.plugins import ModelEntry, Plugin

PLUGIN = Plugin(name="ext", models=(
    ModelEntry("ext-frequency", "ext_models.frequency:Frequency", "drug frequencies as scores"),))
'''


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the repository holding the package `ext_models` (model + plug-in)."""
    package = tmp_path / "ext_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "frequency.py").write_text(MODEL)
    (package / "plugin.py").write_text(PLUGIN)
    return tmp_path


def bench(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` run in `folder`, with the plug-in named in $MEDREC_PLUGINS (step 3)."""
    env = {**os.environ, "MEDREC_PLUGINS": "ext_models.plugin:PLUGIN", "MEDREC_CACHE": str(folder / "cache"),
           "PYTHONPATH": os.pathsep.join([str(folder), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env,
                          cwd=folder)
    assert done.returncode == 0, done.stderr
    return done


def test_a_model_from_outside_runs_end_to_end_and_is_compared(outside: Path):
    jsonschema = pytest.importorskip("jsonschema")
    results = str(outside / "results")
    assert "ext-frequency" in bench(outside, "ls", "models").stdout
    common = ["--dataset", "synthetic-small", "--seed", "0", "--results-dir", results]
    bench(outside, "run", "--model", "ext-frequency", "--set", "smoothing=0.5", *common)
    bench(outside, "run", "--model", "popular", *common)

    (path,) = (outside / "results" / "synthetic-small" / "ext-frequency").glob("*/run.json")
    record = json.loads(path.read_text())
    jsonschema.validate(record, json.loads((REPO_ROOT / "docs" / "run.schema.json").read_text()))
    assert record["model"]["config"] == {"smoothing": 0.5} and record["fit"]["notes"]["n_train"] > 0
    assert (path.parent / "model" / "weights.safetensors").is_file()

    table = bench(outside, "compare", "--results-dir", results, "--format", "csv").stdout
    rows = {row["model"]: row for row in csv.DictReader(io.StringIO(table.split("\n\n")[0]))}
    assert set(rows) == {"ext-frequency", "popular"}
    # both rank the drugs by training frequency: the same PRAUC but for ties between equally frequent drugs
    prauc = {model: float(row["prauc"]) for model, row in rows.items()}
    assert 0.3 < prauc["ext-frequency"] < 1 and abs(prauc["ext-frequency"] - prauc["popular"]) < 0.02
