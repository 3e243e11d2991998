"""Mini-batched training with early stopping on validation PRAUC, shared by the torch models.

The originals update once per visit; here every model trains on shuffled mini-batches of samples
(seeded), evaluates the validation split after each epoch, keeps the best weights and stops after
`patience` epochs without improvement. A model that predicts sets, not scores, stops on validation
Jaccard instead (`valid_metric="jaccard"`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch

from bench.config import TrainingConfig
from bench.data import Sample, Vocab, target_matrix
from bench.metric_registry import ratio
from bench.metrics import average_precision_rows
from bench.progress import Progress
from bench.protocol import FitReport


def seed_everything(seed: int) -> None:
    """Seed torch and numpy's legacy global generator (used by some third-party code)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def valid_prauc(predict: Callable[[Sequence[Sample]], np.ndarray], valid: Sequence[Sample],
                drug_vocab: Vocab) -> float:
    """Mean per-sample average precision on the validation samples."""
    if not valid:
        return float("nan")
    return float(average_precision_rows(target_matrix(valid, drug_vocab), predict(valid)).mean())


def valid_jaccard(predict: Callable[[Sequence[Sample]], np.ndarray], valid: Sequence[Sample],
                  drug_vocab: Vocab) -> float:
    """Mean per-sample Jaccard of the predicted sets (predictions >= 0.5) on the validation samples
    (0 for a sample whose predicted and true sets are both empty, as bench.metrics)."""
    if not valid:
        return float("nan")
    target, predicted = target_matrix(valid, drug_vocab), predict(valid) >= 0.5
    return float(ratio((target & predicted).sum(axis=1), (target | predicted).sum(axis=1)).mean())


def fit_minibatch(module: torch.nn.Module, config: TrainingConfig, *, train: Sequence[Sample],
                  valid: Sequence[Sample], batch_loss: Callable[[np.ndarray], torch.Tensor],
                  predict: Callable[[Sequence[Sample]], np.ndarray], drug_vocab: Vocab,
                  seed: int, progress: Progress, description: str,
                  on_epoch_end: Callable[[int], dict[str, float] | None] | None = None,
                  fused_adam: bool = True, valid_metric: Literal["prauc", "jaccard"] = "prauc") -> FitReport:
    """Train `module` with Adam as `config` says (lr, weight_decay, epochs, batch_size, patience);
    return the report and leave the best-validation weights loaded.

    `batch_loss(indices)` gets int64 [batch] positions into `train` (so a model can precompute
    tensors for the whole training set once) and returns the scalar loss of that mini-batch.
    `on_epoch_end(epoch)` runs after each epoch's updates, before validation (e.g. a DDI-loss
    temperature schedule); what it returns is added to that epoch's history entry.
    The report's `train_seconds` times the updates and `on_epoch_end`, `valid_seconds` the validation
    passes (wall clock), `train_cpu_seconds` the updates' process CPU time, and `train_samples` counts
    the samples the updates went through.
    `fused_adam`: torch's fused Adam kernel (the same update in fewer, larger operations; 3-7x faster
    steps on CPU, equal up to float rounding); False is torch's default per-parameter loop, kept to
    measure the previous training path (tests/benchmarks/test_training_speed.py).
    `valid_metric`: what early stopping maximises, "prauc" (scores) or "jaccard" (the sets at 0.5, for
    a model without scores); the history holds it as `valid_<metric>`. With "jaccard" the report's
    `best_valid_prauc` stays None and `notes["best_valid_jaccard"]` holds the best score.
    """
    if valid_metric not in ("prauc", "jaccard"):
        raise ValueError(f"valid_metric must be prauc or jaccard, got {valid_metric!r}")
    epochs, batch_size, patience = config.epochs, config.batch_size, config.patience
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    params = list(module.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                 **({"fused": True} if fused_adam else {}))
    report = FitReport()
    best_state, best, stale = None, -math.inf, 0
    samples, train_seconds, valid_seconds, train_cpu = 0, 0.0, 0.0, 0.0
    n_batches = math.ceil(len(train) / batch_size)
    with progress.task(description, total=epochs * n_batches) as bar:
        for epoch in range(1, epochs + 1):
            started, started_cpu = time.perf_counter(), time.process_time()
            module.train()
            order = rng.permutation(len(train))
            losses = []
            for start in range(0, len(train), batch_size):
                optimizer.zero_grad()
                loss = batch_loss(order[start:start + batch_size])
                loss.backward()
                optimizer.step()
                if fused_adam:   # the fused kernel does not bump the version counters ParameterCache reads
                    torch.autograd.graph.increment_version(params)
                losses.append(float(loss.detach()))
                bar.advance(1)
            extra = (on_epoch_end(epoch) or {}) if on_epoch_end else {}
            validating, validating_cpu = time.perf_counter(), time.process_time()
            module.eval()
            score = (valid_prauc if valid_metric == "prauc" else valid_jaccard)(predict, valid, drug_vocab)
            train_seconds += validating - started
            train_cpu += validating_cpu - started_cpu
            valid_seconds += time.perf_counter() - validating
            samples += len(order)
            report.history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), f"valid_{valid_metric}": score,
                                   **extra})
            report.epochs = epoch
            bar.advance(0, status=f"epoch {epoch} loss {np.mean(losses):.4f} valid {valid_metric} {score:.4f}")
            if score > best or best_state is None:
                best, stale = score, 0
                best_state = copy.deepcopy(module.state_dict())
                report.best_epoch = epoch
                if valid_metric == "prauc":
                    report.best_valid_prauc = score
                else:
                    report.notes["best_valid_jaccard"] = score
            else:
                stale += 1
                if stale >= patience:
                    bar.advance((epochs - epoch) * n_batches)
                    break
    report.train_samples, report.train_seconds, report.valid_seconds = samples, train_seconds, valid_seconds
    report.train_cpu_seconds = train_cpu
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return report
