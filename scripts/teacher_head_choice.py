"""Issue 17, item 2: choose the teacher's output-side defaults on VALIDATION prompts only.

The experiment: the frozen base model's pooled final-layer states (last token and mean over tokens)
of a seeded subset of training prompts (protocol `last`, as the teacher trains) and of the teacher's
fixed validation subset (`leader.teacher_training.valid_subset`, the same seed) are computed once;
then the output side alone is trained on them, as `leader/teacher_training.py` trains it (AdamW,
batches of `batch` prompts, linear decay, `leader/teacher_head.py`'s modules), for every combination
of `head_bias` (none: the paper; prior), `feature_norm` (none: the paper; center; layernorm),
`pooling` (last: the paper; mean) and `head_lr`. Reported: validation PRAUC (mean per-sample average
precision, bench.metrics) at the end and at its best check, and the drug prior's PRAUC beside them.

This leaves the LoRA adapter out (its learning rate stays the paper's 2e-4): it measures how fast
and how far the output layer gets past the prior on the features the adapter starts from. Test data
is never read.

    python scripts/teacher_head_choice.py --n-train 800 --out results/teacher-head-choice.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.data import make_samples, target_matrix
from bench.io import atomic_write_text
from bench.loading import build_resources, load_bundle
from bench.metrics import average_precision_rows
from bench.prep.bundle_store import cache_root
from bench.splits import split_patients
from leader.llm_inputs import encode_prompts, length_sorted, pool_hidden
from leader.teacher import LeaderTeacher, TeacherConfig
from leader.teacher_head import feature_norm_layer, start_at_prior
from leader.teacher_training import valid_subset

POOLINGS = ("last", "mean")


def frozen_features(texts: list[str], teacher: LeaderTeacher, batch: int) -> dict[str, np.ndarray]:
    """{pooling: float32 [n, H]} of the frozen base model's final states, one forward per prompt."""
    out = {p: np.zeros((len(texts), teacher.hidden_size), dtype=np.float32) for p in POOLINGS}
    body = teacher.scorer.body.eval()
    order = length_sorted(texts)
    with torch.no_grad():
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            inputs = encode_prompts(teacher.tokenizer, [texts[i] for i in rows],
                                    max_tokens=teacher.config.max_tokens)
            hidden = body(**inputs).last_hidden_state
            for p in POOLINGS:
                out[p][rows] = pool_hidden(hidden, inputs["attention_mask"], p).float().numpy()
            print(f"  features {min(start + batch, len(order))}/{len(order)}", flush=True)
    return out


def train_head(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, *, head_bias: str,
               feature_norm: str, lr: float, steps: int, batch: int, check_every: int, seed: int) -> dict:
    """The output side alone, trained as the teacher trains it; validation PRAUC along the way."""
    torch.manual_seed(seed)
    hidden, n_drugs = x.shape[1], y.shape[1]
    norm = feature_norm_layer(feature_norm, hidden)
    head = torch.nn.Linear(hidden, n_drugs, bias=head_bias == "prior")
    if head_bias == "prior":
        start_at_prior(head, y)
    params = list(head.parameters()) + list(norm.parameters())
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: max(0.0, 1 - s / steps))
    xt, yt, xvt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32)), torch.from_numpy(xv)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(x)) for _ in range(-(-steps * batch // len(x)))])
    curve = []
    for step in range(1, steps + 1):
        rows = torch.from_numpy(order[(step - 1) * batch: step * batch])
        norm.train()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(norm(xt[rows])), yt[rows])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % check_every == 0 or step == steps:
            norm.eval()
            with torch.no_grad():
                scores = torch.sigmoid(head(norm(xvt))).numpy()
            curve.append([step, float(average_precision_rows(yv, scores).mean())])
    return {"final": curve[-1][1], "best": max(v for _, v in curve), "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=800)
    parser.add_argument("--valid-prompts", type=int, default=TeacherConfig.valid_prompts)
    parser.add_argument("--steps", type=int, default=600, help="optimiser steps (one epoch of ~4,800 last-visit prompts at 8)")
    parser.add_argument("--batch", type=int, default=TeacherConfig.batch_size * TeacherConfig.grad_accum)
    parser.add_argument("--lrs", default="1e-4,2e-4,1e-3,3e-3")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/teacher-head-choice.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    bundle = load_bundle(args.dataset)
    parts = split_patients(bundle.patients, "random", 0, "8:1:1")
    train_all = make_samples(parts.train, "last")
    pick = np.sort(np.random.default_rng([args.seed, 17]).choice(len(train_all), size=args.n_train, replace=False))
    train = [train_all[i] for i in pick]
    valid = valid_subset(make_samples(parts.valid, "last"), args.valid_prompts, args.seed)
    resources = build_resources(bundle, parts.train, LeaderTeacher.needs)
    teacher = LeaderTeacher(TeacherConfig(lora=False), resources)
    y, yv = target_matrix(train, bundle.drug_vocab), target_matrix(valid, bundle.drug_vocab)

    store = cache_root(None) / "teacher-head-choice" / f"{bundle.hash[:16]}-{args.seed}-{args.n_train}-{len(valid)}.safetensors"
    from safetensors.numpy import load_file, save_file

    start = time.perf_counter()
    if store.is_file():
        saved = load_file(str(store))
    else:
        print(f"frozen features of {len(train)} training and {len(valid)} validation prompts", flush=True)
        ft, fv = frozen_features(teacher.prompts(train), teacher, 16), frozen_features(teacher.prompts(valid), teacher, 16)
        saved = {f"train.{p}": ft[p] for p in POOLINGS} | {f"valid.{p}": fv[p] for p in POOLINGS}
        store.parent.mkdir(parents=True, exist_ok=True)
        save_file(saved, str(store))
    feature_seconds = time.perf_counter() - start

    prior = float(average_precision_rows(yv, np.broadcast_to(y.mean(0), yv.shape)).mean())
    rows = []
    for pooling, head_bias, feature_norm, lr in itertools.product(
            POOLINGS, ("none", "prior"), ("none", "center", "layernorm"), [float(v) for v in args.lrs.split(",")]):
        result = train_head(saved[f"train.{pooling}"], y, saved[f"valid.{pooling}"], yv, head_bias=head_bias,
                            feature_norm=feature_norm, lr=lr, steps=args.steps, batch=args.batch,
                            check_every=50, seed=args.seed)
        rows.append({"pooling": pooling, "head_bias": head_bias, "feature_norm": feature_norm, "head_lr": lr,
                     **result})
        print(f"{pooling:5s} bias={head_bias:5s} norm={feature_norm:9s} lr={lr:g}: valid PRAUC final "
              f"{result['final']:.4f} best {result['best']:.4f}", flush=True)
    report = {"dataset": args.dataset, "dataset_hash": bundle.hash, "seed": args.seed, "n_train": len(train),
              "n_valid": len(valid), "steps": args.steps, "batch": args.batch, "prior_valid_prauc": prior,
              "feature_seconds": round(feature_seconds, 1), "rows": rows}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print(f"prior valid PRAUC {prior:.4f}; wrote {args.out}")


if __name__ == "__main__":
    main()
