"""ONE test that runs every registered model through the common interface, on synthetic-small and on
the real MIMIC-III demo."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data import make_samples
from bench.errors import UserError
from bench.loading import build_resources, load_bundle
from bench.progress import Progress
from bench.protocol import FitReport, InputCache, Recommender, clear_input_cache
from bench.registry import MODELS, model_class
from bench.splits import split_patients
from tests.conftest import requires_data


@pytest.fixture(scope="module", params=["synthetic-small", "mimic3-demo"])
def bundle(request, tmp_path_factory):
    if request.param == "mimic3-demo":
        return load_bundle("mimic3-demo", data_dir=requires_data("mimic3-demo"), resources=requires_data("medkb"),
                           cache_dir=tmp_path_factory.mktemp("cache"))
    return load_bundle(request.param)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_conformance(name, bundle, tmp_path):
    cls = model_class(name)
    assert cls.name == name
    split = split_patients(bundle.patients, "random", seed=0)
    train, valid = make_samples(split.train, "every"), make_samples(split.valid, "last")
    test = make_samples(split.test, "last")
    resources = build_resources(bundle, split.train, cls.needs)
    model = cls.from_options(dict(cls.smoke_options), resources)
    assert isinstance(model, Recommender)
    if "generator" in cls.needs and bundle.generator is None:  # the oracle: generated cohorts only
        with pytest.raises(UserError, match="needs a generated cohort"):
            model.fit(train, valid, seed=0, progress=Progress())
        return

    report = model.fit(train, valid, seed=0, progress=Progress())
    assert isinstance(report, FitReport)
    scores = model.predict_proba(test)
    assert scores.shape == (len(test), len(bundle.drug_vocab)) and scores.dtype == np.float32
    assert np.isfinite(scores).all() and scores.min() >= 0.0 and scores.max() <= 1.0
    # rows depend only on their own sample, not on the batch they are in
    np.testing.assert_allclose(model.predict_proba(test[3:5]), scores[3:5], rtol=1e-5, atol=1e-6)
    assert model.predict_proba([]).shape == (0, len(bundle.drug_vocab))
    # a model that keeps per-visit encodings lets the timing clear them (bench.timing's cold path),
    # and clearing them changes no prediction
    if any(isinstance(getattr(value, "_cache", None), dict) for value in vars(model).values()):
        assert isinstance(model, InputCache)
    if clear_input_cache(model):
        np.testing.assert_array_equal(model.predict_proba(test), scores)
    assert model.n_params() >= 0

    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "config.json").is_file()
    reloaded = cls.load(tmp_path / "model", resources)
    np.testing.assert_array_equal(reloaded.predict_proba(test), scores)
