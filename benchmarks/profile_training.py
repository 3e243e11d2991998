"""Where a torch model's training time goes: wall-clock shares of each phase of `fit_minibatch`.

Run from the repository root (one torch thread, as the reference runs):

    PYTHONPATH=$PWD python benchmarks/profile_training.py --model gamenet --epochs 2
    PYTHONPATH=$PWD python benchmarks/profile_training.py --model leader-student-nokd --epochs 1 --train-limit 3000
    PYTHONPATH=$PWD python benchmarks/profile_training.py --model molerec --epochs 1 --cprofile 25

It loads the dataset and split exactly as `bench run` does (seed 0, random 8:1:1 split, training on every
visit, validation on the last visit), builds the model and calls its `fit`, with timers wrapped around
(nothing in the models changes):

- `batch_loss` (the model's closure handed to `fit_minibatch`), and inside it the visit encoding
  (`VisitEncoder.encode` / `StudentEncoder.encode`: Python loops, padding, tensor building), the module's
  forward, and per model its named pieces (graph / molecule encoders, DDI loss, margin targets);
- `Tensor.backward`, `Adam.step`, `Optimizer.zero_grad`;
- `valid_prauc` (the per-epoch validation pass: `predict_proba` on the validation split + PRAUC),
  with the encoding and forward calls made inside it counted apart (`valid:` prefix).

Timers are inclusive (a piece nested in another is also counted in its parent). Shares are of the
epoch's wall time; the second epoch is the steady state (the encoders' per-visit code cache is cold in
the first). `--cprofile N` runs the same under cProfile instead and prints the N functions with the most
own time (slower: read its shares, not its seconds). `--torch-ops N` prints torch.profiler's N operators
with the most self CPU time for the same fit. `--set key=value` overrides the model's config.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import sys
import time
from collections import defaultdict

import torch

from bench.data import make_samples
from bench.loading import build_resources, load_bundle
from bench.progress import Progress
from bench.registry import model_class
from bench.splits import split_patients


class Timers:
    """Inclusive seconds and call counts per key; keys get a `valid:` prefix inside the validation pass."""

    def __init__(self):
        self.seconds, self.calls = defaultdict(float), defaultdict(int)
        self.in_valid = False
        self.epochs: list[tuple[float, dict[str, float], dict[str, int]]] = []
        self.epoch_start = None

    def wrap(self, key: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            name = f"valid:{key}" if self.in_valid and key != "valid_prauc" else key
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1
        return timed

    def end_epoch(self) -> None:
        now = time.perf_counter()
        self.epochs.append((now - self.epoch_start, dict(self.seconds), dict(self.calls)))
        self.seconds.clear(), self.calls.clear()
        self.epoch_start = now


def patch(owner, attr: str, key: str, timers: Timers) -> None:
    setattr(owner, attr, timers.wrap(key, getattr(owner, attr)))


def model_pieces(model: str):
    """(owner, attribute, key) of the model-specific pieces worth timing."""
    import baselines.visits as visits

    pieces = [(visits.VisitEncoder, "encode", "encode visits (collation)")]
    if model == "gamenet":
        import baselines.gamenet as m
        pieces += [(m.GAMENetModule, "forward", "module forward"), (m.GAMENetModule, "memory", "  GCN memory bank"),
                   (m, "margin_targets", "margin_targets"), (m, "ddi_pair_counts", "DDI pair counts"),
                   (m, "ddi_loss", "DDI loss"), (m.GAMENetModule, "visit_codes", "  code embedding mean"),
                   (m, "stacked_gru", "  the two GRUs (stacked)")]
    elif model == "safedrug":
        import baselines.safedrug as m
        pieces += [(m.SafeDrugModule, "forward", "module forward"),
                   (m.SafeDrugModule, "drug_embeddings", "MPNN drug embeddings"),
                   (m.SafeDrugModule, "patient_query", "  patient query (emb+GRU)"),
                   (m, "controllable_loss", "controllable loss (BCE+margin+DDI)")]
    elif model == "molerec":
        import baselines.molerec as m
        import baselines.molerec_layers as layers
        pieces += [(layers.MoleRecModule, "forward", "module forward"),
                   (layers.MoleRecModule, "molecules", "  GIN + SAB + attention"),
                   (layers.MoleRecModule, "patient_query", "  patient query (emb+GRU)"),
                   (m.MoleRec, "loss", "loss (BCE+margin+DDI)"), (m, "margin_targets", "margin_targets (loop)")]
    elif model.startswith("leader-student"):
        import leader.student as m
        import leader.student_layers as layers
        import leader.student_module as sm
        pieces = [(layers.StudentEncoder, "encode", "encode visits (collation)"),
                  (m.StudentModule, "forward_with_drug_set", "module forward"),
                  (m.StudentModule, "encode_set_groups", "  in-visit set blocks"),
                  (sm, "stacked_blocks", "  across-visit blocks (stacked)"),
                  (m.StudentModule, "drug_set", "alignment drug_set (previous path)"),
                  (m.TrainingHeads, "alignment", "alignment InfoNCE")]
    elif model != "logreg":
        raise SystemExit(f"no pieces known for {model}")
    return pieces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-limit", type=int, default=0, help="train on the first N training samples (0 = all)")
    ap.add_argument("--set", action="append", default=[], help="model config override key=value")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cprofile", type=int, default=0, metavar="N")
    ap.add_argument("--torch-ops", type=int, default=0, metavar="N")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cls = model_class(args.model)
    overrides = dict(s.split("=", 1) for s in args.set) | {"epochs": str(args.epochs)}
    config = cls.parse_config(overrides)
    bundle = load_bundle(args.dataset)
    split = split_patients(bundle.patients, "random", 0, "8:1:1")
    train = make_samples(split.train, "every")
    valid = make_samples(split.valid, "last")
    if args.train_limit:
        train = train[:args.train_limit]
    model = cls(config, build_resources(bundle, split.train, cls.needs))
    print(f"{args.model}: {len(train)} training, {len(valid)} validation samples, {args.epochs} epoch(s), "
          f"{torch.get_num_threads()} torch thread(s), batch_size {config.batch_size}", flush=True)

    if args.cprofile or args.torch_ops:
        profiler = cProfile.Profile() if args.cprofile else None
        ops = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if args.torch_ops else None
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        with ops if ops else _null():
            model.fit(train, valid, seed=0, progress=Progress())
        if profiler:
            profiler.disable()
        print(f"fit under profiler: {time.perf_counter() - start:.1f} s")
        if profiler:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(args.cprofile)
            stats.sort_stats("cumulative").print_stats(args.cprofile)
            print(out.getvalue())
        if ops:
            print(ops.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.torch_ops))
        return

    import bench.training as training

    timers = Timers()
    module = sys.modules[cls.__module__]
    fit_minibatch = module.fit_minibatch

    def timed_fit(*a, batch_loss, **kw):
        timers.epoch_start = time.perf_counter()
        return fit_minibatch(*a, batch_loss=timers.wrap("batch_loss (encode + forward + loss)", batch_loss), **kw)

    module.fit_minibatch = timed_fit
    valid_prauc = training.valid_prauc

    def timed_valid(*a, **kw):
        timers.in_valid = True
        try:
            return timers.wrap("valid_prauc", valid_prauc)(*a, **kw)
        finally:
            timers.in_valid = False
            timers.end_epoch()

    training.valid_prauc = timed_valid
    patch(torch.Tensor, "backward", "backward", timers)
    patch(torch.optim.Adam, "step", "optimizer step", timers)
    patch(torch.optim.Optimizer, "zero_grad", "zero_grad", timers)
    for owner, attr, key in model_pieces(args.model):
        patch(owner, attr, key, timers)

    start = time.perf_counter()
    model.fit(train, valid, seed=0, progress=Progress())
    print(f"fit: {time.perf_counter() - start:.1f} s")
    for i, (wall, seconds, calls) in enumerate(timers.epochs, 1):
        top = sum(v for k, v in seconds.items() if k in ("batch_loss (encode + forward + loss)", "backward",
                                                          "optimizer step", "zero_grad", "valid_prauc"))
        print(f"\nepoch {i}: {wall:.2f} s wall, {len(train) / max(wall - seconds.get('valid_prauc', 0), 1e-9):.0f} "
              f"training samples/s (without validation)")
        print(f"  {'phase (inclusive)':42s} {'share':>7s} {'seconds':>8s} {'calls':>6s}")
        for key, value in sorted(seconds.items(), key=lambda kv: (kv[0].startswith("valid:"), -kv[1])):
            print(f"  {key:42s} {value / wall:7.1%} {value:8.2f} {calls[key]:6d}")
        print(f"  {'rest of the loop (float(loss), state copy, ...)':42s} {(wall - top) / wall:7.1%} {wall - top:8.2f}")


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
