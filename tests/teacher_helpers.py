"""What the teacher tests share: a tiny-llama teacher with the smoke options, and synthetic-small's split."""

from __future__ import annotations

from bench.data import make_samples
from bench.loading import build_resources
from bench.splits import split_patients
from leader.teacher import LeaderTeacher

SMOKE = dict(LeaderTeacher.smoke_options)  # tiny-llama (2 layers, hidden 64), 256-token budget


def teacher(resources, **options) -> LeaderTeacher:
    """A LeaderTeacher with the smoke options, `options` (any values, as strings) on top."""
    return LeaderTeacher.from_options({**SMOKE, **{k: str(v) for k, v in options.items()}}, resources)


def teacher_data(bundle) -> dict:
    """synthetic-small split with seed 0: the teacher's resources, the split and its training samples."""
    split = split_patients(bundle.patients, "random", seed=0)
    return {"bundle": bundle, "split": split, "resources": build_resources(bundle, split.train, LeaderTeacher.needs),
            "train": make_samples(split.train, "every")[:8]}
