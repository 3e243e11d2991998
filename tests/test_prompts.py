"""LEADER's prompts (leader/prompts.py, docs/leader.md#prompts) and `bench prompts`, on hand-made patients."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data import Patient, Sample, Visit
from leader.prompts import (PROMPT_VERSION, chat_messages, count_tokens, fit_prompt, fit_prompts, prompt_parts,
                            render_prompt)

TITLES = {
    "diagnosis": {"d1": "Fever", "d2": "Cough", "d3": "Sepsis", "d4": "Anemia"},
    "procedure": {"p1": "Chest x-ray", "p2": "Intubation"},
    "drug": {"N02B": "other analgesics and antipyretics", "J01D": "other beta-lactam antibacterials",
             "B01A": "antithrombotic agents"},
}


def visit(i: int, diagnoses, procedures, drugs) -> Visit:
    return Visit(admission_id=100 + i, diagnoses=tuple(diagnoses), procedures=tuple(procedures), drugs=tuple(drugs))


THREE = Patient(1, (visit(0, ["d1"], ["p1"], ["N02B"]),
                    visit(1, ["d2", "d9"], ["p2"], ["J01D", "B01A"]),   # d9 has no title: shown as the code
                    visit(2, ["d3", "d4"], ["p1", "p2"], ["B01A"])))
SIX = Patient(2, tuple(visit(i, [f"d{i % 4 + 1}"], ["p1"], ["N02B"]) for i in range(6)))


@pytest.fixture(scope="module")
def tokenizer():
    from leader.base_models import load_tokenizer

    return load_tokenizer("tiny-llama")


def test_three_visit_prompt_exact_text_with_each_visits_own_codes():
    expected = (
        "The patient has 2 times ICU visits. \n "
        "In 1 visit, the patient had diagnosis: Fever; procedures: Chest x-ray. "
        "The patient was prescribed drugs: other analgesics and antipyretics. \n"
        "In 2 visit, the patient had diagnosis: Cough, d9; procedures: Intubation. "
        "The patient was prescribed drugs: other beta-lactam antibacterials, antithrombotic agents. \n"
        " In this visit, he has diagnosis: Sepsis, Anemia; procedures: Chest x-ray, Intubation. "
        "Then, the patient should be prescribed: "
    )
    text = render_prompt(Sample(THREE, 2), TITLES)
    assert text == expected
    # the released code's bug: the current visit's diagnoses in every history line
    assert text.count("Sepsis") == 1


def test_single_visit_prompt_has_no_history():
    patient = Patient(3, (visit(0, ["d1", "d2"], ["p1"], ["N02B"]),))
    assert render_prompt(Sample(patient, 0), TITLES) == (
        "The patient has 0 times ICU visits. \n  In this visit, he has diagnosis: Fever, Cough; "
        "procedures: Chest x-ray. Then, the patient should be prescribed: ")


def test_at_most_the_last_three_history_visits():
    parts = prompt_parts(Sample(SIX, 5), TITLES)
    assert parts.header.startswith("The patient has 5 times ICU visits.")
    assert [line.split(",")[0] for line in parts.history] == ["In 3 visit", "In 4 visit", "In 5 visit"]
    assert len(prompt_parts(Sample(SIX, 5), TITLES, max_history=1).history) == 1
    assert prompt_parts(Sample(SIX, 1), TITLES).history[0].startswith("In 1 visit")


def test_budget_drops_oldest_history_first_never_the_current_visit(tokenizer):
    sample = Sample(SIX, 5)
    parts = prompt_parts(sample, TITLES)
    lengths = [n + 1 for n in count_tokens(tokenizer, [parts.text(k) for k in range(4)])]  # + EOS
    assert lengths == sorted(lengths, reverse=True)

    whole = fit_prompt(sample, TITLES, tokenizer, max_tokens=lengths[0])
    assert (whole.n_history_dropped, whole.n_tokens, whole.over_budget) == (0, lengths[0], False)

    one = fit_prompt(sample, TITLES, tokenizer, max_tokens=lengths[0] - 1)
    assert one.n_history_dropped == 1 and one.n_tokens == lengths[1] and one.n_tokens_full == lengths[0]
    assert "In 3 visit" not in one.text and "In 4 visit" in one.text and "In 5 visit" in one.text
    assert one.text.endswith(parts.current) and not one.over_budget

    bare = fit_prompt(sample, TITLES, tokenizer, max_tokens=lengths[3])
    assert bare.n_history_dropped == 3 and bare.text == parts.header + parts.current and not bare.over_budget


def test_over_budget_reported_when_even_the_bare_prompt_is_too_long(tokenizer):
    sample = Sample(SIX, 5)
    parts = prompt_parts(sample, TITLES)
    fitted = fit_prompt(sample, TITLES, tokenizer, max_tokens=5)
    assert fitted.over_budget and fitted.n_history_dropped == 3
    assert fitted.text == parts.header + parts.current  # the current visit is kept whole
    assert fitted.n_tokens == count_tokens(tokenizer, [fitted.text])[0] + 1


def test_batch_fit_matches_one_by_one(tokenizer):
    samples = [Sample(THREE, i) for i in range(3)] + [Sample(SIX, i) for i in range(6)]
    batch = fit_prompts(samples, TITLES, tokenizer, max_tokens=60)
    assert batch == [fit_prompt(s, TITLES, tokenizer, max_tokens=60) for s in samples]
    assert all(f.n_tokens == count_tokens(tokenizer, [f.text])[0] + 1 for f in batch)


def test_chat_messages_and_version():
    messages = chat_messages("The patient has 0 times ICU visits.")
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "The patient has 0 times ICU visits." in user and "comma-separated" in user
    assert PROMPT_VERSION


def test_cli_prints_prompts_and_statistics():
    out = CliRunner().invoke(app, ["prompts", "--dataset", "synthetic-small", "--tokenizer", "tiny-llama", "--n", "2"])
    assert out.exit_code == 0, out.output
    assert out.output.count("The patient has ") == 2
    assert "In 1 visit, the patient had diagnosis" in out.output  # a multi-visit patient is shown
    for row in ("mean tokens", "p95 tokens", "max tokens", "over budget", "history lines dropped"):
        assert row in out.output


def test_cli_bad_tokenizer_is_one_line_error():
    out = CliRunner().invoke(app, ["prompts", "--dataset", "synthetic-small", "--tokenizer", "/no/such"])
    assert out.exit_code == 2
    assert "/no/such" in out.output and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1
