"""Batched beam search that generates a SET of drugs token by token (COGNet's inference, Wu et al.,
WWW 2022; the rules of the released code's `Beam`):

- every sample keeps `beam_size` hypotheses, each a sequence of distinct drugs; at the first step
  only one hypothesis exists (the others start at score -inf);
- a hypothesis scores the sum of its tokens' log-probabilities (no length normalisation);
- a drug already in a hypothesis cannot be chosen again (the released beam skips such candidates);
- END finishes a hypothesis; a finished hypothesis keeps its score and competes with the extensions
  of the live ones for the `beam_size` places at every later step;
- a sample stops when all its hypotheses are finished, or after `max_len` steps (its hypotheses are
  then taken as they are); the answer is the drug set of its best-scoring hypothesis.

All samples are searched together: each step asks the model for the next-token log-probabilities of
every live sample's hypotheses in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# step(rows, prefix) -> log-probabilities [R, D + 1] of the next token (the D drugs, then END) for R
# hypotheses; rows int64 [R]: the sample each hypothesis belongs to; prefix int64 [R, t]: its tokens
# so far, the start token first (drug ids, END = D for finished hypotheses, start = D + 1).
StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class BeamResult:
    """sets: bool [n, D] the best hypothesis' drugs per sample; finished: bool [n] whether that
    hypothesis ended with END (False: cut at max_len); steps: decoding steps run for the batch."""

    sets: torch.Tensor
    finished: torch.Tensor
    steps: int


@torch.no_grad()
def beam_search(step: StepFn, n_samples: int, n_drugs: int, *, beam_size: int, max_len: int) -> BeamResult:
    """The best drug set of each of `n_samples` samples (module docstring); `step` is called at most
    `max_len` times, each time on the hypotheses of the samples not yet finished."""
    k, end, start = beam_size, n_drugs, n_drugs + 1
    n_out = n_drugs + 1
    scores = torch.full((n_samples, k), float("-inf"))
    scores[:, 0] = 0.0
    tokens = torch.full((n_samples, k, 1), start, dtype=torch.int64)
    chosen = torch.zeros(n_samples, k, n_drugs, dtype=torch.bool)
    finished = torch.zeros(n_samples, k, dtype=torch.bool)
    # a finished hypothesis' only continuation: END again, at no cost
    stay = torch.full((n_out,), float("-inf"))
    stay[end] = 0.0
    steps = 0
    for _ in range(max_len):
        live = (~finished.all(dim=1)).nonzero(as_tuple=True)[0]            # samples still searching
        if len(live) == 0:
            break
        steps += 1
        rows = live.repeat_interleave(k)
        log_probs = step(rows, tokens[live].reshape(len(live) * k, -1)).reshape(len(live), k, n_out)
        repeated = torch.cat([chosen[live], torch.zeros(len(live), k, 1, dtype=torch.bool)], dim=2)
        log_probs = log_probs.masked_fill(repeated, float("-inf"))
        log_probs = torch.where(finished[live][..., None], stay, log_probs)
        candidates = (scores[live][..., None] + log_probs).reshape(len(live), k * n_out)
        best, flat = candidates.topk(k, dim=1)                              # [A, k], sorted
        parent, word = flat // n_out, flat % n_out
        keep = torch.arange(len(live))[:, None]
        new_chosen = chosen[live][keep, parent]
        is_drug = word < n_drugs
        new_chosen[keep.expand_as(word)[is_drug], torch.arange(k).expand_as(word)[is_drug], word[is_drug]] = True
        chosen[live] = new_chosen
        # a hypothesis at -inf (fewer live candidates than places) is dead: count it as finished
        finished[live] = finished[live][keep, parent] | (word == end) | torch.isinf(best)
        grown = torch.cat([tokens[live][keep, parent], word[..., None]], dim=2)
        # samples that stopped earlier keep their tokens; pad them with END to the new length
        padded = torch.full((n_samples, k, grown.shape[2]), end, dtype=torch.int64)
        padded[:, :, :-1] = tokens
        padded[live] = grown
        tokens = padded
        scores[live] = best
    top = scores.argmax(dim=1)
    every = torch.arange(n_samples)
    return BeamResult(sets=chosen[every, top], finished=finished[every, top], steps=steps)
