"""`plain-llm`: a generating LLM reads LEADER's patient prompt and writes the medication classes.

The LLM baseline of LEADER (arXiv 2402.02803, docs/leader.md#plain-llm-baseline): the same prompt as the
teacher (leader/prompts.py), wrapped in the model's chat template with a request for a
comma-separated list of ATC3 class names; greedy decoding; each written name is mapped to an ATC3
class by exact or fuzzy matching (leader/drug_names.py). Predictions are hard 0/1 decisions:
PRAUC is undefined (null in run.json, n/a in `bench compare`). The share of written names that match
no drug, the out-of-corpus rate, is recorded as `prediction_notes.out_of_corpus_rate`.

Zero-shot: `fit` trains nothing (the paper's LLM baselines are prompted, not fine-tuned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from bench.config import require
from bench.data import Sample
from bench.model_base import BaseRecommender
from bench.progress import Progress
from bench.protocol import FitReport, Resources
from leader.drug_names import NameMatcher, out_of_corpus_rate
from leader.base_models import load_causal_lm, load_tokenizer
from leader.llm_inputs import length_sorted
from leader.prompts import chat_messages, fit_prompts


@dataclass(frozen=True)
class PlainLLMConfig:
    """base_model: smollm2-135m (default), tiny-llama (tests) or a local folder. max_tokens: prompt
    budget (oldest history dropped first); max_new_tokens: answer length (a list of ~12 class names
    of ~5 tokens fits in 96); match_cutoff: difflib ratio for a fuzzy name match."""

    base_model: str = "smollm2-135m"
    max_tokens: int = 384
    max_history: int = 3
    max_new_tokens: int = 96
    batch_size: int = 8
    match_cutoff: float = 0.85
    chat_template: Literal["auto", "off"] = "auto"

    def __post_init__(self) -> None:
        checks = {"max_tokens >= 8": self.max_tokens >= 8, "max_history >= 0": self.max_history >= 0,
                  "max_new_tokens >= 1": self.max_new_tokens >= 1, "batch_size >= 1": self.batch_size >= 1,
                  "0 < match_cutoff <= 1": 0 < self.match_cutoff <= 1,
                  "chat_template auto|off": self.chat_template in ("auto", "off")}
        require(checks, "plain-llm")


class PlainLLM(BaseRecommender):
    name: ClassVar[str] = "plain-llm"
    needs: ClassVar[frozenset[str]] = frozenset({"text"})
    Config = PlainLLMConfig
    hard_predictions: ClassVar[bool] = True
    latency_samples: ClassVar[int] = 10  # a batch-1 generation takes seconds on CPU
    smoke_options: ClassVar[dict[str, str]] = {"base_model": "tiny-llama", "max_new_tokens": "8", "max_tokens": "256"}

    def __init__(self, config: PlainLLMConfig, resources: Resources):
        super().__init__(config, resources)
        if resources.titles is None:
            raise ValueError("plain-llm needs code titles (resources built with 'text')")
        self.tokenizer = load_tokenizer(config.base_model)
        self.tokenizer.padding_side = "left"  # generation continues every row from its last token
        self.llm = load_causal_lm(config.base_model)
        drugs = resources.vocabs["drug"]
        self.matcher = NameMatcher({code: resources.titles["drug"].get(code, code) for code in drugs.tokens},
                                   cutoff=config.match_cutoff)
        self.last_answers: list[str] = []
        self._counts: list[tuple[int, int]] = []

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int, progress: Progress) -> FitReport:
        return FitReport(notes={"zero_shot": True})

    def _chat_text(self, prompt: str) -> str:
        if self.config.chat_template == "auto" and self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(chat_messages(prompt), tokenize=False, add_generation_prompt=True)
        return prompt

    @torch.no_grad()
    def generate(self, samples: Sequence[Sample]) -> list[str]:
        """The answer text for each sample (greedy), rows aligned with `samples`."""
        c = self.config
        prompts = [self._chat_text(p.text) for p in
                   fit_prompts(samples, self.resources.titles, self.tokenizer, c.max_tokens, c.max_history)]
        answers = [""] * len(samples)
        order = length_sorted(prompts)
        for start in range(0, len(order), c.batch_size):
            rows = order[start:start + c.batch_size]
            batch = self.tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True,
                                   add_special_tokens=False)
            out = self.llm.generate(**batch, max_new_tokens=c.max_new_tokens, do_sample=False,
                                    pad_token_id=self.tokenizer.pad_token_id)
            texts = self.tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, text in zip(rows, texts):
                answers[i] = text
        return answers

    def predict_proba(self, samples: Sequence[Sample]) -> np.ndarray:
        """float32 0/1 [n, n_drugs]: 1 for every class the answer names."""
        drugs = self.resources.vocabs["drug"]
        out = np.zeros((len(samples), len(drugs)), dtype=np.float32)
        self.last_answers = self.generate(samples)
        self._counts = []
        for row, text in enumerate(self.last_answers):
            codes, written, unmatched = self.matcher.parse(text)
            out[row, drugs.encode(codes)] = 1.0
            self._counts.append((written, unmatched))
        return out

    def prediction_notes(self) -> dict[str, object]:
        """About the latest `predict_proba` call: out-of-corpus rate, names written, empty answers."""
        written = sum(w for w, _ in self._counts)
        return {"out_of_corpus_rate": out_of_corpus_rate(self._counts), "names_written": written,
                "names_per_answer": written / len(self._counts) if self._counts else None,
                "empty_answers": sum(1 for w, _ in self._counts if w == 0),
                "example_answer": self.last_answers[0][:300] if self.last_answers else None}

    def state(self) -> dict[str, np.ndarray]:
        return {}  # nothing trained: the base model is named in the config

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        pass

    def n_params(self) -> int:
        return int(sum(p.numel() for p in self.llm.parameters()))
