"""LEADER(T)'s training loop: epochs of shuffled prompts (in batches of similar length), validation
PRAUC on a fixed subset, the best adapter and output layer kept, early stopping, a wall-clock budget,
and checkpoints to resume from. The frozen layers' per-prompt cache (`lora_layers`,
leader/frozen_prefix.py) serves later epochs and the repeated validation passes.

Training stops at the first of: `epochs` passes over the training prompts, `steps` optimiser steps
(0: no cap), `patience` validation passes without a better PRAUC (0: never early), and the `budget`
(`45m`, `90s`, `1.5h`; the last validation pass's duration is kept in reserve, so that the closing
pass ends about within the budget). Then the best validation checkpoint is restored (the last state when there
is no validation set). The validation subset is `valid_prompts` validation samples drawn once with the
training seed; it is scored at step 0, every `eval_every` optimiser steps and when training stops.
One optimiser step takes `grad_accum` micro-batches of `batch_size` prompts (per process under
`accelerate launch`); the learning rate decays linearly to 0 over the planned steps (epochs x steps
per epoch, capped by `steps`), not over what a budget or early stop leaves.

Checkpoints (bench.checkpoints; written when the runner gives a folder): after every validation pass,
the current and best weights (output layer, feature norm, adapter), AdamW's moments, the schedule,
torch's RNG state and the loader position (epoch, step within it; batch order is a function of seed
and epoch), the history and the counters. A restarted identical run loads the latest and continues
from its step; the data order and dropout masks are those of an uninterrupted run.
"""

from __future__ import annotations

import re
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bench.checkpoints import latest_checkpoint, save_checkpoint
from bench.data import Sample, target_matrix
from bench.progress import Progress
from bench.protocol import FitReport
from bench.training import seed_everything, valid_prauc
from leader.llm_inputs import length_bucketed_batches
from leader.teacher_head import start_at_prior

if TYPE_CHECKING:
    from leader.teacher import LeaderTeacher, TeacherConfig

CHECKPOINT_FORMAT = "leader-teacher-checkpoint/1"
_DURATION = re.compile(r"(\d+(?:\.\d*)?)([smh])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(text: str) -> float | None:
    """"45m" -> 2700.0 seconds ("s", "m", "h"; a decimal number before the unit); "" or "none" -> None.
    ValueError naming the option otherwise."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return None
    match = _DURATION.fullmatch(text)
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"budget {text!r}: expected a positive duration with a unit, like 45m, 90s or 1.5h")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def step_groups(batches: list[list[int]], grad_accum: int, rank: int = 0, world: int = 1) -> list[list[list[int]]]:
    """Micro-batches grouped per optimiser step (`grad_accum` each, the epoch's last group may be
    shorter). With `world` processes, process `rank` takes every world-th group and all take as many
    (up to world - 1 groups of an epoch are left out)."""
    groups = [batches[i:i + grad_accum] for i in range(0, len(batches), grad_accum)]
    usable = len(groups) - len(groups) % world
    return groups[rank:usable:world]


def batch_shape(config: TeacherConfig, device: torch.device) -> tuple[int, int]:
    """(prompts per micro-batch, micro-batches per optimiser step). `device=auto` on a GPU folds
    grad_accum into the micro-batch: the same prompts per step (batch_size x grad_accum), one forward
    pass instead of grad_accum; an explicit device keeps both as given (e.g. a 7B model's memory)."""
    if config.device == "auto" and device.type == "cuda":
        return config.batch_size * config.grad_accum, 1
    return config.batch_size, config.grad_accum


def valid_subset(valid: list[Sample], n: int, seed: int) -> list[Sample]:
    """At most `n` validation samples, drawn once with the training seed (kept in their order)."""
    if len(valid) <= n:
        return list(valid)
    rows = np.sort(np.random.default_rng([seed, 1]).choice(len(valid), size=n, replace=False))
    return [valid[i] for i in rows]


@dataclass
class LoopState:
    """Where training stands; saved with every checkpoint (JSON)."""

    step: int = 0
    epoch: int = 0          # the epoch in progress (0-based)
    group: int = 0          # optimiser steps done within it
    prompts_seen: int = 0
    train_seconds: float = 0.0
    valid_seconds: float = 0.0
    elapsed: float = 0.0    # wall clock of the loop: updates, validation and checkpoints
    history: list[dict[str, Any]] = field(default_factory=list)
    best_step: int | None = None
    best_epoch: int | None = None
    best_prauc: float | None = None
    stale: int = 0          # validation passes since the best one
    stop: str = ""          # why training stopped: epochs | steps | budget | patience ("" while running)
    resumed_from: int | None = None


def train_teacher(model: LeaderTeacher, train: list[Sample], valid: list[Sample], *, seed: int,
                  progress: Progress, checkpoints: Path | None, mixed_precision: str) -> FitReport:
    """Train `model` (a LeaderTeacher, its scorer rebuilt from `seed`) and leave the best weights loaded."""
    from accelerate import Accelerator

    c = model.config
    if not train:
        raise ValueError("leader-teacher: no training samples")  # the step loop would never end
    seed_everything(seed)
    accelerator = Accelerator(cpu=model.device.type == "cpu", mixed_precision=mixed_precision)
    model.device = accelerator.device  # under `accelerate launch`, this process's GPU
    model.scorer = model._build(seed)
    vocab = model.resources.vocabs["drug"]
    targets = torch.from_numpy(target_matrix(train, vocab).astype(np.float32))
    if c.head_bias == "prior":
        start_at_prior(model.scorer.head, targets.numpy())
    micro, accum = batch_shape(c, model.device)
    world, rank = accelerator.num_processes, accelerator.process_index
    fitted = model.fitted_prompts(train)
    texts, lengths = [p.text for p in fitted], [p.n_tokens for p in fitted]

    def epoch_batches(epoch: int) -> list[list[int]]:
        """The only place batches are formed: a pure function of (seed, epoch), so a resumed run draws
        the same batches; prompts of similar length share a batch (`bucket_batches`)."""
        return length_bucketed_batches(lengths, micro, seed=seed, epoch=epoch, pool_batches=c.bucket_batches)

    per_epoch = len(step_groups(epoch_batches(0), accum, rank, world))
    if per_epoch == 0:
        raise ValueError(f"leader-teacher: {len(train)} training samples give no optimiser step on {world} processes")
    planned = per_epoch * c.epochs if not c.steps else min(c.steps, per_epoch * c.epochs)
    budget = parse_budget(c.budget)

    scorer = model.scorer
    head = [*scorer.head.parameters(), *scorer.norm.parameters()]
    body = [p for p in scorer.body.parameters() if p.requires_grad]
    groups = [{"params": body, "lr": c.lr}, {"params": head, "lr": c.head_lr}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=c.lr, weight_decay=c.weight_decay)
    # accelerate's prepared scheduler advances num_processes times per optimiser step
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / (planned * world)))
    checking = valid_subset(list(valid), c.valid_prompts, seed)
    valid_texts = model.prompts(checking)

    state, best = LoopState(), None
    saved = latest_checkpoint(checkpoints)
    if saved is not None:
        state, best = _restore(saved, model, optimizer, schedule)
        print(f"leader-teacher: resumed from the checkpoint at step {state.step} ({checkpoints})"
              + (f", which had finished ({state.stop})" if state.stop else ""), file=sys.stderr, flush=True)
    wrapped, prepared_optimizer, prepared_schedule = accelerator.prepare(scorer, optimizer, schedule)

    def set_train_mode() -> None:
        scorer.train()
        if not c.lora:
            scorer.body.eval()  # frozen: no dropout in the LLM

    def train_step(group: list[list[int]]) -> float:
        """One optimiser step over the group's micro-batches; the mean BCE per prompt and drug."""
        total, value = sum(map(len, group)), 0.0
        for j, rows in enumerate(group):
            with nullcontext() if j == len(group) - 1 else accelerator.no_sync(wrapped):
                chosen = [texts[i] for i in rows]  # also the keys of the frozen-layer cache
                logits = wrapped(**model._inputs(chosen), keys=chosen)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[rows].to(logits.device))
                accelerator.backward(loss * (len(rows) / total))
            value += float(loss.detach()) * len(rows) / total
        prepared_optimizer.step()
        prepared_schedule.step()
        prepared_optimizer.zero_grad()
        return value

    clock, before = time.perf_counter(), state.elapsed
    reserve = 0.0  # the last validation pass's seconds, kept free within the budget

    def validate(train_loss: float | None) -> None:
        nonlocal best, reserve
        started = time.perf_counter()
        score = None
        if checking:
            score = valid_prauc(lambda _: model.score_texts(valid_texts, cached=True), checking, vocab)
            set_train_mode()
        reserve = time.perf_counter() - started
        state.valid_seconds += reserve
        state.history.append({"step": state.step, "prompts_seen": state.prompts_seen, "train_loss": train_loss,
                              "valid_prauc": score, "elapsed_s": before + time.perf_counter() - clock})
        if score is None:
            return
        if state.best_prauc is None or score > state.best_prauc:
            best = {k: v.copy() for k, v in model.state().items()}
            state.best_step, state.best_epoch, state.best_prauc, state.stale = state.step, state.epoch + 1, score, 0
        else:
            state.stale += 1

    def checkpoint() -> None:
        state.elapsed = before + time.perf_counter() - clock
        if checkpoints is not None and accelerator.is_main_process:
            save_checkpoint(checkpoints, state.step, _tensors(model, best, optimizer),
                            _json_state(state, optimizer, schedule))

    set_train_mode()
    with progress.task(f"fit {model.name}", total=planned) as bar:
        if state.resumed_from is not None:
            bar.advance(state.step, status=f"resumed from step {state.step}")
        if not state.history:
            validate(None)  # step 0: the untrained teacher (the prior, with head_bias=prior)
        losses: list[float] = []
        while not state.stop:
            batches = epoch_batches(state.epoch)
            epoch_groups = step_groups(batches, accum, rank, world)
            while state.group < len(epoch_groups) and not state.stop:
                started = time.perf_counter()
                group = epoch_groups[state.group]
                losses.append(train_step(group))
                state.train_seconds += time.perf_counter() - started
                state.step, state.group = state.step + 1, state.group + 1
                state.prompts_seen += sum(map(len, group)) * world
                state.stop = _stop_reason(state, c, len(epoch_groups), budget,
                                          before + time.perf_counter() - clock + reserve)
                bar.advance(1, status=f"epoch {state.epoch + 1} step {state.step} loss {np.mean(losses):.4f}"
                            + (f" valid prauc {state.best_prauc:.4f} (best)" if state.best_prauc is not None else ""))
                if state.stop or state.step % c.eval_every == 0:
                    validate(float(np.mean(losses)))
                    losses = []
                    if not state.stop and c.patience and state.stale >= c.patience:
                        state.stop = "patience"
                    checkpoint()
            if state.group >= len(epoch_groups):
                state.epoch, state.group = state.epoch + 1, 0
    state.elapsed = before + time.perf_counter() - clock
    if best is not None:
        model.set_state(best)
    model.scorer.eval()
    return _report(state, model, train, checking, planned, per_epoch, micro, accum, world, budget)


def _stop_reason(state: LoopState, c: TeacherConfig, epoch_steps: int, budget: float | None, elapsed: float) -> str:
    if c.steps and state.step >= c.steps:
        return "steps"
    if state.epoch + 1 >= c.epochs and state.group >= epoch_steps:
        return "epochs"
    if budget is not None and elapsed >= budget:
        return "budget"
    return ""


def _report(state: LoopState, model: LeaderTeacher, train: list[Sample], checking: list[Sample], planned: int,
            per_epoch: int, micro: int, accum: int, world: int, budget: float | None) -> FitReport:
    report = FitReport(epochs=state.epoch + (state.group > 0), best_epoch=state.best_epoch,
                       best_valid_prauc=state.best_prauc, history=list(state.history),
                       train_samples=state.prompts_seen, train_seconds=state.train_seconds,
                       valid_seconds=state.valid_seconds if checking else None)
    trainable = sum(p.numel() for p in model.scorer.parameters() if p.requires_grad)
    report.notes = {"steps": state.step, "prompts_seen": state.prompts_seen, "train_samples": len(train),
                    "trainable_params": int(trainable), "stopped_by": state.stop, "best_step": state.best_step,
                    "planned_steps": planned, "steps_per_epoch": per_epoch, "micro_batch": micro,
                    "grad_accum": accum, "processes": world, "effective_batch": micro * accum * world,
                    "valid_prompts": len(checking), "budget_s": budget, "elapsed_s": state.elapsed,
                    "resumed_from_step": state.resumed_from}
    return report


# --- checkpoint contents: named arrays + JSON --------------------------------------------------------

def _tensors(model: LeaderTeacher, best: dict[str, np.ndarray] | None,
             optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    tensors = {f"current.{k}": v for k, v in model.state().items()}
    tensors |= {f"best.{k}": v for k, v in (best or {}).items()}
    for index, moments in optimizer.state_dict()["state"].items():
        tensors |= {f"optim.{index}.{name}": value.detach().cpu().numpy() for name, value in moments.items()
                    if torch.is_tensor(value)}
    tensors["rng.torch"] = torch.get_rng_state().numpy()
    if torch.cuda.is_available():
        tensors |= {f"rng.cuda.{i}": s.numpy() for i, s in enumerate(torch.cuda.get_rng_state_all())}
    return tensors


def _json_state(state: LoopState, optimizer: torch.optim.Optimizer, schedule) -> dict[str, Any]:
    optimizer_state = optimizer.state_dict()
    scheduler_state = {k: v for k, v in schedule.state_dict().items() if k != "lr_lambdas"}
    return {"format": CHECKPOINT_FORMAT, "loop": asdict(state), "param_groups": optimizer_state["param_groups"],
            "scheduler": scheduler_state}


def _restore(saved, model: LeaderTeacher, optimizer: torch.optim.Optimizer,
             schedule) -> tuple[LoopState, dict[str, np.ndarray] | None]:
    """Load a checkpoint into the model, optimiser, schedule and torch's RNG; (loop state, best weights)."""
    if saved.state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {saved.state.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")

    def part(prefix: str) -> dict[str, np.ndarray]:
        return {k.removeprefix(prefix): v for k, v in saved.tensors.items() if k.startswith(prefix)}

    model.set_state(part("current."))
    best = part("best.") or None
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in part("optim.").items():
        index, key = name.split(".", 1)
        moments.setdefault(int(index), {})[key] = torch.from_numpy(value.copy())
    optimizer.load_state_dict({"state": moments, "param_groups": saved.state["param_groups"]})
    schedule.load_state_dict({**saved.state["scheduler"], "lr_lambdas": [None] * len(optimizer.param_groups)})
    torch.set_rng_state(torch.from_numpy(saved.tensors["rng.torch"].copy()))
    cuda = part("rng.cuda.")
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.from_numpy(cuda[str(i)].copy()) for i in range(len(cuda))])
    known = {f.name for f in fields(LoopState)}
    state = LoopState(**{k: v for k, v in saved.state["loop"].items() if k in known})
    state.resumed_from = state.step
    return state, best
