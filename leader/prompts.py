"""LEADER's patient prompts (Liu et al., arXiv 2402.02803; docs/leader.md#prompts).

The template, verbatim from LEADER's released code (overview: docs/leader.md#prompts):

- main: `The patient has <VISIT_NUM> times ICU visits. \\n <HISTORY> In this visit, he has diagnosis:
  <DIAGNOSIS>; procedures: <PROCEDURE>. Then, the patient should be prescribed: `
- history line: `In <VISIT_NO> visit, the patient had diagnosis: <DIAGNOSIS>; procedures: <PROCEDURE>.
  The patient was prescribed drugs: <MEDICATION>. \\n`

Choices made here (each changes the text, so each is part of `PROMPT_VERSION`):

- Names, not codes: ICD titles and lower-case ATC3 names from the bundle's `titles`, in the order the
  visit stores its codes, joined with ", "; a code without a title is shown as the bare code.
- `VISIT_NUM` is the number of the patient's visits BEFORE the current one (`sample.index`), as the
  released code computes it (visits - 1 for the last visit); it does not shrink when history lines
  are cut by `max_history` or by the token budget.
- `VISIT_NO` of a history line is the 1-based position of that visit in the patient's sequence
  (`In 1 visit, ...` is the first admission), as in the released code; it stays unambiguous when
  only the last 3 visits are shown (e.g. lines 4, 5, 6 of a patient with 7 visits).
- At most the last `max_history` (default 3) earlier visits are shown, oldest first.
- Bug fix: the released code fills EVERY history line with the CURRENT visit's diagnoses (a typo in
  the placeholder). Here each history line shows that visit's own diagnoses, procedures and drugs.
- Token budget (`fit_prompts`): the released code truncates the token sequence at the tail, cutting
  off the current visit and the final "Then, the patient should be prescribed: ". Here the OLDEST
  history line is dropped first, one at a time; the current visit is never cut. When even the prompt
  without history is over budget it is returned whole, flagged `over_budget`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.data import Sample, Visit

PROMPT_VERSION = 1  # bump whenever the rendered text changes: the teacher's feature cache keys on it
MAX_HISTORY = 3
EOS_TOKENS = 1  # the teacher appends one EOS token to every prompt; budgets count it

HEADER = "The patient has {visit_num} times ICU visits. \n "
HISTORY_LINE = ("In {visit_no} visit, the patient had diagnosis: {diagnosis}; procedures: {procedure}. "
                "The patient was prescribed drugs: {medication}. \n")
CURRENT = (" In this visit, he has diagnosis: {diagnosis}; procedures: {procedure}. "
           "Then, the patient should be prescribed: ")

CHAT_SYSTEM = ("You are a clinical pharmacist. You recommend medication classes for a patient's current "
               "hospital visit.")
CHAT_INSTRUCTION = ("List the medication classes (ATC level-3 class names) this patient should be prescribed "
                    "in this visit, as one comma-separated list of names and nothing else.")

Titles = Mapping[str, Mapping[str, str]]


def names(codes: Sequence[str], titles: Titles, code_type: str) -> str:
    """The codes' titles joined with ", " (a code without a title stays as the bare code)."""
    table = titles.get(code_type, {})
    return ", ".join(table.get(code, code) for code in codes)


def history_line(visit: Visit, visit_no: int, titles: Titles) -> str:
    """One history line with THIS visit's diagnoses, procedures and drugs (not the current visit's)."""
    return HISTORY_LINE.format(visit_no=visit_no, diagnosis=names(visit.diagnoses, titles, "diagnosis"),
                               procedure=names(visit.procedures, titles, "procedure"),
                               medication=names(visit.drugs, titles, "drug"))


@dataclass(frozen=True)
class PromptParts:
    """A prompt in three parts: header + history lines (oldest first) + current visit."""

    header: str
    history: tuple[str, ...]
    current: str

    def text(self, n_dropped: int = 0) -> str:
        """The prompt without its `n_dropped` oldest history lines."""
        return self.header + "".join(self.history[n_dropped:]) + self.current


def prompt_parts(sample: Sample, titles: Titles, max_history: int = MAX_HISTORY) -> PromptParts:
    """The parts of `sample`'s prompt, showing at most the last `max_history` earlier visits."""
    if max_history < 0:
        raise ValueError(f"max_history must be >= 0, got {max_history}")
    first = max(0, sample.index - max_history)
    history = tuple(history_line(sample.patient.visits[i], i + 1, titles) for i in range(first, sample.index))
    current = sample.current
    return PromptParts(
        header=HEADER.format(visit_num=sample.index),
        history=history,
        current=CURRENT.format(diagnosis=names(current.diagnoses, titles, "diagnosis"),
                               procedure=names(current.procedures, titles, "procedure")),
    )


def render_prompt(sample: Sample, titles: Titles, max_history: int = MAX_HISTORY) -> str:
    """LEADER's prompt for `sample` (no token budget)."""
    return prompt_parts(sample, titles, max_history).text()


@dataclass(frozen=True)
class FittedPrompt:
    """A prompt cut to a token budget. Token counts include the EOS the teacher appends.

    n_tokens_full: length before any history line was dropped; n_history_dropped: how many of the
    oldest shown history lines were dropped; over_budget: still longer than the budget with no history.
    """

    text: str
    n_tokens: int
    n_tokens_full: int
    n_history_dropped: int
    over_budget: bool


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    """Token counts (without special tokens) of `texts`, tokenised in one batch, duplicates once."""
    unique = list(dict.fromkeys(texts))
    if not unique:
        return []
    ids = tokenizer(unique, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    lengths = {text: len(row) for text, row in zip(unique, ids)}
    return [lengths[text] for text in texts]


def fit_prompts(samples: Sequence[Sample], titles: Titles, tokenizer, max_tokens: int,
                max_history: int = MAX_HISTORY) -> list[FittedPrompt]:
    """Prompts for `samples` within `max_tokens` tokens (EOS included), oldest history dropped first.

    Counts are exact whole-text counts (a sum over separately tokenised parts can differ, because
    BPE pre-tokenisation merges the whitespace at part boundaries). For speed, every round tokenises
    in one batch only the prompts still over budget, each one history line shorter than before:
    at most `max_history` + 1 batches, whatever the number of samples.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    parts = [prompt_parts(s, titles, max_history) for s in samples]
    dropped = [0] * len(parts)
    lengths = [0] * len(parts)
    full = [0] * len(parts)
    pending = list(range(len(parts)))
    first_round = True
    while pending:
        counts = count_tokens(tokenizer, [parts[i].text(dropped[i]) for i in pending])
        still = []
        for i, n in zip(pending, counts):
            lengths[i] = n + EOS_TOKENS
            if first_round:
                full[i] = lengths[i]
            if lengths[i] > max_tokens and dropped[i] < len(parts[i].history):
                dropped[i] += 1
                still.append(i)
        pending, first_round = still, False
    return [FittedPrompt(text=p.text(d), n_tokens=n, n_tokens_full=f, n_history_dropped=d, over_budget=n > max_tokens)
            for p, d, n, f in zip(parts, dropped, lengths, full)]


def fit_prompt(sample: Sample, titles: Titles, tokenizer, max_tokens: int,
               max_history: int = MAX_HISTORY) -> FittedPrompt:
    """`fit_prompts` for one sample (for many, call `fit_prompts`: it batches the tokeniser)."""
    return fit_prompts([sample], titles, tokenizer, max_tokens, max_history)[0]


def chat_messages(prompt_text: str) -> list[dict[str, str]]:
    """Chat messages for the plain-LLM baseline: the patient prompt and a request for ATC3 class names."""
    return [{"role": "system", "content": CHAT_SYSTEM},
            {"role": "user", "content": f"{prompt_text.rstrip()}\n\n{CHAT_INSTRUCTION}"}]
