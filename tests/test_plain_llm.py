"""The plain-LLM baseline (leader/plain_llm.py): parsing generated text into ATC3 classes
(leader/drug_names.py) on fixed texts, and the model end to end with the tiny random LLaMA."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data import make_samples
from bench.loading import build_resources
from bench.progress import Progress
from bench.splits import split_patients
from leader.drug_names import NameMatcher, normalise, out_of_corpus_rate, split_names
from leader.plain_llm import PlainLLM

NAMES = {
    "B01A": "antithrombotic agents",
    "C07A": "beta blocking agents",
    "N02B": "other analgesics and antipyretics",
    "C01B": "antiarrhythmics, class i and iii",
    "A10A": "insulins and analogues",
    "A11D": "vitamin b1, plain and in combination with vitamin b6 and b12",
    "C09A": "ace inhibitors, plain",
}
MATCHER = NameMatcher(NAMES)



# --- splitting and normalising --------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("1. Antithrombotic agents\n2. Beta blocking agents.\n3) Insulins", ["Antithrombotic agents",
                                                                        "Beta blocking agents", "Insulins"]),
    ("- heparin\n* aspirin\n\u2022 \"insulin\"", ["heparin", "aspirin", "insulin"]),
    ("aspirin and heparin; insulin, metformin.", ["aspirin", "heparin", "insulin", "metformin"]),
    ("B01A, C07A", ["B01A", "C07A"]),
    ("vitamin b12. Then more", ["vitamin b12. Then more"]),   # "12. " inside a word is no list number
    ("  ,, ;\n", []),
    ("", []),
])
def test_split_names(text, expected):
    assert split_names(text) == expected


def test_normalise():
    assert normalise("Beta-blocking agents.") == "beta blocking agents"
    assert normalise("  ACE inhibitors,   PLAIN ") == "ace inhibitors plain"
    assert normalise("Drugs for peptic ulcer (GORD)") == "drugs for peptic ulcer (gord)"
    assert normalise("...") == ""


# --- matching ---------------------------------------------------------------------------------------

def test_parse_numbered_list_with_codes_and_periods():
    codes, written, unmatched = MATCHER.parse("1. Antithrombotic agents.\n2. c07a\n3. B01A")
    assert codes == ["B01A", "C07A"] and written == 3 and unmatched == 0  # a repeat is kept once


def test_parse_keeps_class_names_that_contain_commas_and_and():
    text = ("Other analgesics and antipyretics, antiarrhythmics, class I and III, insulins and analogues "
            "and vitamin B1, plain and in combination with vitamin B6 and B12; ACE inhibitors, plain")
    codes, written, unmatched = MATCHER.parse(text)
    assert codes == ["N02B", "C01B", "A10A", "A11D", "C09A"]
    assert (written, unmatched) == (5, 0)


def test_parse_fuzzy_near_miss_and_out_of_corpus_names():
    codes, written, unmatched = MATCHER.parse("antithrombotc agents, beta-blocking agent, aspirin and chicken soup")
    assert codes == ["B01A", "C07A"]
    assert (written, unmatched) == (4, 2)  # aspirin and chicken soup match no class
    # a misspelt name does not swallow its neighbour, and a misspelt name with "and" still matches
    assert MATCHER.parse("antithrombotc agents, foo") == (["B01A"], 2, 1)
    assert MATCHER.parse("other analgesic and antipyretics") == (["N02B"], 1, 0)
    assert MATCHER.match("antithrombotc agents") == "B01A"
    assert NameMatcher(NAMES, cutoff=1.0).match("antithrombotc agents") is None  # exact only
    assert MATCHER.match("") is None and MATCHER.match("paracetamol") is None


def test_parse_empty_answer():
    assert MATCHER.parse("") == ([], 0, 0)
    assert MATCHER.parse("  \n ") == ([], 0, 0)


def test_out_of_corpus_rate_is_pooled_over_answers():
    # pooled: 3 unmatched of 6 written (the mean of the per-answer rates would be 0.625)
    assert out_of_corpus_rate([(4, 1), (0, 0), (2, 2)]) == pytest.approx(0.5)
    assert out_of_corpus_rate([]) is None
    assert out_of_corpus_rate([(0, 0)]) is None


# --- the model ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(small_bundle):
    split = split_patients(small_bundle.patients, "random", seed=0)
    resources = build_resources(small_bundle, split.train, PlainLLM.needs)
    return {"resources": resources, "test": make_samples(split.test, "last")[:5],
            "train": make_samples(split.train, "every")[:5]}


@pytest.fixture(scope="module")
def model(data):
    return PlainLLM.from_options(dict(PlainLLM.smoke_options), data["resources"])


def test_plain_llm_end_to_end_with_tiny_llama(model, data):
    assert model.hard_predictions
    report = model.fit(data["train"], [], seed=0, progress=Progress())
    assert report.notes == {"zero_shot": True}
    scores = model.predict_proba(data["test"])
    assert scores.shape == (5, data["resources"].n_drugs) and scores.dtype == np.float32
    assert set(np.unique(scores)) <= {0.0, 1.0}
    notes = model.prediction_notes()
    assert "out_of_corpus_rate" in notes and len(model.last_answers) == 5
    rate = notes["out_of_corpus_rate"]
    assert rate is None or 0.0 <= rate <= 1.0
    assert model.predict_proba([]).shape == (0, data["resources"].n_drugs)


def test_answers_are_mapped_to_vocabulary_columns(model, data, monkeypatch):
    drugs = data["resources"].vocabs["drug"]
    titles = data["resources"].titles["drug"]
    first, second = drugs.tokens[:2]
    answers = [f"1. {titles[first].capitalize()}.\n2. {second}\n3. aspirin", ""]
    monkeypatch.setattr(model, "generate", lambda samples: answers[:len(samples)])
    scores = model.predict_proba(data["test"][:2])
    assert np.flatnonzero(scores[0]).tolist() == sorted(drugs.encode([first, second]))
    assert not scores[1].any()
    notes = model.prediction_notes()
    assert notes["out_of_corpus_rate"] == pytest.approx(1 / 3)
    assert notes["names_written"] == 3 and notes["empty_answers"] == 1


def test_cli_run_records_null_prauc_and_out_of_corpus_rate(tmp_path):
    runner = CliRunner()
    out = runner.invoke(app, ["run", "--model", "plain-llm", "--dataset", "synthetic-small", "--set",
                              "base_model=tiny-llama", "--set", "max_new_tokens=8", "--threads", "1",
                              "--results-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    [run_json] = tmp_path.glob("synthetic-small/plain-llm/*/run.json")
    record = json.loads(run_json.read_text())
    for group in ("all", "single_visit", "multi_visit"):
        assert record["metrics"][group]["prauc"]["mean"] is None
    assert record["metrics"]["all"]["jaccard"]["mean"] is not None
    assert "out_of_corpus_rate" in record["prediction_notes"]

    shown = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--format", "md"])
    assert shown.exit_code == 0, shown.output
    header, _, row = [line for line in shown.output.splitlines() if line.startswith("|")][:3]
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["model"] == "plain-llm" and cells["PRAUC"] == "n/a"
