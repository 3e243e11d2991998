"""`bench run`: prepare data, train, evaluate the test split, time inference, store the run."""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench import metrics
from bench.checkpoints import checkpoint_folder, remove_checkpoints
from bench.config import config_to_dict
from bench.data import PROTOCOLS, DatasetBundle, make_samples, target_matrix
from bench.errors import UserError
from bench.loading import build_resources, load_bundle
from bench.progress import Progress
from bench.protocol import Resumable, StoresAfterFit, TeacherChoice, TeacherRequest, TeacherSpec
from bench.provenance import device_info, git_state, package_versions
from bench.registry import REPO_ROOT, dataset_card, model_class
from bench.groups import dataset_tags, evaluation_groups
from bench.results import Predictions, metrics_entry, run_dir, write_predictions, write_run
from bench.run_record import (SCHEMA_VERSION, DatasetInfo, FitInfo, ModelInfo, Resampling, RunRecord,
                              SeedGroupRecord, SplitInfo, Timing)
from bench.seed_groups import TEST_RESAMPLING, SeedGroup, group_record, write_group
from bench.splits import SCHEMES, parse_ratios, split_patients
from bench.teachers import find_teacher_run
from bench.timing import TimingOptions, measure_inference, peak_rss_mb, reset_peak_rss


@dataclass(frozen=True)
class RunOptions:
    """What `bench run` trains and how. `seed` is the training seed (initialisation, sampling, the test
    resampling rounds); `split_seed` fixes the random patient split on its own, so runs of several
    training seeds share one split. `seed_group`: the `--seeds` call a run belongs to (bench.seed_groups).
    `protocol` picks the validation and test samples, `train_protocol` the training samples (`every`:
    every visit of a training patient; `last`: its last visit only, as LEADER's data construction)."""

    model: str
    dataset: str
    seed: int = 0
    split_seed: int = 0
    seed_group: SeedGroup | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    threshold: float = 0.5
    protocol: str = "last"
    train_protocol: str = "every"
    split: str = "random"
    ratios: str = "8:1:1"
    rounds: int = 10
    fraction: float = 0.8
    replace: bool = False
    results_dir: Path = Path("results")
    data_dir: Path | None = None
    resources: Path | None = None
    prep_overrides: dict[str, str] = field(default_factory=dict)
    cache_dir: Path | None = None
    timing: TimingOptions = TimingOptions()
    save_model: bool = True
    threads: int | None = None
    allow_modified_resources: bool = False

    def check(self) -> Any:
        """Validate everything cheap before any work starts; returns the model's parsed config."""
        dataset_card(self.dataset)
        config = model_class(self.model).parse_config(self.overrides)
        check_seed(self.seed)
        check_seed(self.split_seed, "--split-seed")
        check_sampling(self.protocol, self.split, self.ratios)
        if self.train_protocol not in PROTOCOLS:
            raise UserError(f"--train-protocol must be one of {', '.join(PROTOCOLS)}, got {self.train_protocol!r}")
        check_threshold(self.threshold)
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be at least 1, got {self.threads}")
        return config


def check_sampling(protocol: str, split: str, ratios: str) -> None:
    """UserError unless --protocol, --split and --ratios are valid."""
    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if split not in SCHEMES:
        raise UserError(f"--split must be one of {', '.join(SCHEMES)}, got {split!r}")
    try:
        parse_ratios(ratios)
    except ValueError as exc:
        raise UserError(f"--ratios: {exc}") from None


def check_threshold(threshold: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise UserError(f"--threshold must lie strictly between 0 and 1, got {threshold}")


SEED_LIMIT = 2**32  # numpy's legacy seeding and some libraries take 32-bit seeds


def check_seed(seed: int, option: str = "--seed") -> None:
    """UserError unless `seed` is an integer in [0, 2**32) (numpy refuses negative seeds)."""
    if seed < 0:
        raise UserError(f"{option} {seed}: expected an integer >= 0")
    if seed >= SEED_LIMIT:
        raise UserError(f"{option} {seed}: expected an integer below {SEED_LIMIT} (2**32)")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def run(options: RunOptions, progress: Progress, *,
        bundle: DatasetBundle | None = None) -> tuple[RunRecord, Path]:
    """Train and evaluate one model on one dataset; returns the run record and its folder.

    Two steps, one after the other: the teacher step (only for a model that distils from a teacher:
    `resolve_teacher` finds its run, or trains one first as a run of its own), then the model's run
    (`run_model`), which never starts another run. `bundle`: the dataset when the caller has it loaded."""
    config = options.check()   # the model's config, parsed once
    cls = model_class(options.model)
    choice = None
    request = cls.teacher_request(config) if cls.teacher is not None and cls.teacher.distils else None
    if request is not None:
        bundle = _load_bundle(options, progress) if bundle is None else bundle
        choice = resolve_teacher(cls.teacher, request, options, bundle.hash, progress, bundle=bundle)
    return run_model(options, progress, config=config, bundle=bundle, teacher=choice)


@dataclass(frozen=True)
class SeedGroupResult:
    """What `run_seeds` trained: the member records and folders in seed order, and the aggregate record
    with its path (None in a process that does not write, see `_writes`)."""

    records: list[RunRecord]
    folders: list[Path]
    aggregate: SeedGroupRecord
    path: Path | None


def run_seeds(options: RunOptions, seeds: tuple[int, ...], progress: Progress) -> SeedGroupResult:
    """`bench run --seeds`: one run per training seed (options.seed ignored), all on the patient split
    of options.split_seed, the dataset loaded once; then the group's aggregate record, written last."""
    options.check()
    group = SeedGroup(new_run_id(), tuple(seeds))
    bundle = _load_bundle(options, progress)
    records, folders = [], []
    for seed in group.seeds:
        record, folder = run(replace(options, seed=seed, seed_group=group), progress, bundle=bundle)
        records.append(record)
        folders.append(folder)
    aggregate = group_record(group, records)
    path = write_group(options.results_dir, aggregate) if _writes() else None
    return SeedGroupResult(records, folders, aggregate, path)


def _writes() -> bool:
    """Under `accelerate launch` every process runs the runner; only the main one writes."""
    return int(os.environ.get("RANK", "0")) == 0


def _load_bundle(options: RunOptions, progress: Progress) -> DatasetBundle:
    with progress.task(f"prepare {options.dataset}", total=None) as bar:
        return load_bundle(options.dataset, data_dir=options.data_dir, resources=options.resources,
                           overrides=options.prep_overrides, cache_dir=options.cache_dir,
                           step=lambda what: bar.advance(0, status=what),
                           allow_modified_resources=options.allow_modified_resources)


def run_model(options: RunOptions, progress: Progress, *, config: Any = None, bundle: DatasetBundle | None = None,
              teacher: TeacherChoice | None = None) -> tuple[RunRecord, Path]:
    """One model's run: train on the split, evaluate the test samples, time inference, write the run.
    `config` (parsed from options when None), `bundle` (loaded when None) and the resolved `teacher`
    of a distilling model come from `run`."""
    config = options.check() if config is None else config
    git = git_state(REPO_ROOT)  # the code as it is when the run starts (it may change during a long run)
    rss_scope = "run" if reset_peak_rss() else "process"
    if options.threads is not None:
        import torch  # only here: `bench run --model popular` need not pay for torch otherwise

        # Small models on few cores run many times faster with one thread than with a busy pool.
        torch.set_num_threads(options.threads)
    cls = model_class(options.model)
    bundle = _load_bundle(options, progress) if bundle is None else bundle
    split = split_patients(bundle.patients, options.split, options.split_seed, options.ratios)
    # Training samples follow --train-protocol: every visit of the training patients (default; GAMENet,
    # SafeDrug, MoleRec train so) or each patient's last visit (LEADER's data construction);
    # validation and test follow the evaluation protocol.
    train = make_samples(split.train, options.train_protocol)
    valid = make_samples(split.valid, options.protocol)
    test = make_samples(split.test, options.protocol)
    if not train or not test:
        raise UserError(f"dataset {options.dataset}: split {options.split} {options.ratios} leaves "
                        f"{len(train)} training and {len(test)} test samples; need both")
    groups = evaluation_groups(test, split.train, dataset_tags(bundle.patients))  # before training: may refuse a tag
    resources = build_resources(bundle, split.train, cls.needs)
    if teacher is not None:
        resources = replace(resources, teacher=cls.open_teacher(teacher, bundle, cache_dir=options.cache_dir,
                                                                progress=progress))
    model = cls(config, resources)
    checkpoints = _checkpoints(options, config, bundle.hash, git) if isinstance(model, Resumable) else None
    if checkpoints is not None:
        model.use_checkpoints(checkpoints)

    start = time.perf_counter()
    report = model.fit(train, valid, seed=options.seed, progress=progress)
    fit_seconds = time.perf_counter() - start
    if isinstance(model, StoresAfterFit) and _writes():
        stored = model.store_after_fit(train, bundle.hash, options.cache_dir, progress)
        if stored:
            report.notes = {**report.notes, "stored_after_fit": stored}

    with progress.task(f"evaluate {options.model}", total=2) as bar:
        scores = model.predict_proba(test)
        notes = model.prediction_notes()  # about the test predictions, before timing calls predict again
        bar.advance(1)
        timing = measure_inference(model, test, _timing_options(options.timing, cls))
        bar.advance(1)
    targets = target_matrix(test, bundle.drug_vocab)
    patient_ids = np.array([s.patient.id for s in test])
    hard = model.hard_predictions
    ddi_adj, ddi_known = bundle.ddi_matrix(), bundle.ddi_known()  # for the metrics and stored with the predictions
    evaluation = metrics.evaluate(
        targets, None if hard else scores, y_pred=(scores >= 0.5) if hard else None,
        threshold=options.threshold, ddi_adj=ddi_adj, ddi_known=ddi_known,
        groups=groups,
        patient_ids=patient_ids if options.protocol == "every" else None,
        rounds=options.rounds, fraction=options.fraction, replace=options.replace, seed=options.seed)

    run_id = new_run_id()
    folder = run_dir(options.results_dir, options.dataset, options.model, run_id)
    writer = _writes()
    if writer:
        folder.mkdir(parents=True, exist_ok=True)
        write_predictions(folder, Predictions(
            target=targets, predicted=scores >= (0.5 if hard else options.threshold),
            scores=None if hard else scores, patient_id=patient_ids,
            visit_index=np.array([s.index for s in test]), drugs=bundle.drug_vocab.tokens, ddi_adj=ddi_adj,
            groups=groups, ddi_known=ddi_known))
    if writer and options.save_model:
        model.save(folder / "model")
    record = RunRecord(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        created_at=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        git=git,
        versions=package_versions(),
        device=device_info(),
        model=ModelInfo(name=options.model, config=config_to_dict(model.config), hard_predictions=hard),
        dataset=DatasetInfo(name=options.dataset, hash=bundle.hash, n_train=len(train), n_valid=len(valid),
                            n_test=len(test), n_drugs=len(bundle.drug_vocab),
                            data_dir=bundle.meta.get("data_dir"),  # the folder read (--data-dir or its default)
                            prep_overrides=dict(options.prep_overrides), meta=dict(bundle.meta)),
        # drug-knowledge files checked against their pinned checksums (None: the dataset uses none)
        resources=bundle.meta.get("resources_check"),
        seed=options.seed,
        split_seed=options.split_seed,
        seed_group=None if options.seed_group is None else options.seed_group.entry(),
        threshold=options.threshold,
        protocol=options.protocol,
        train_protocol=options.train_protocol,
        split=SplitInfo(scheme=options.split, ratios=options.ratios, patients=split.sizes()),
        resampling=Resampling(rounds=options.rounds, fraction=options.fraction, replace=options.replace),
        overrides=dict(options.overrides),
        uncertainty=TEST_RESAMPLING,
        metrics={group: metrics_entry(result) for group, result in evaluation.items()},  # bench.groups
        timing=Timing(fit_seconds=fit_seconds, **timing, peak_rss_mb=peak_rss_mb(), peak_rss_scope=rss_scope,
                      n_params=model.n_params()),
        fit=FitInfo(**asdict(report), train_samples_per_s=report.train_samples_per_s(),
                    valid_time_share=report.valid_time_share()),
        prediction_notes=notes,
        teacher=teacher_entry(cls.teacher, teacher),
    )
    if writer:
        write_run(folder, record)
        remove_checkpoints(checkpoints)  # the run is stored: nothing left to resume
    return record, folder


def _checkpoints(options: RunOptions, config: Any, dataset_hash: str, git: dict[str, object]) -> Path:
    """The checkpoint folder of this run (bench.checkpoints): the same for an identical restart of the
    same code. The commit is part of the key, so a checkpoint written by other code is not resumed
    (uncommitted edits are not seen: restart from a clean tree, or delete the folder after editing)."""
    return checkpoint_folder(options.cache_dir, options.model, {"code": git.get("sha"),
        "model": options.model, "config": config_to_dict(config), "dataset_hash": dataset_hash,
        "seed": options.seed, "split_seed": options.split_seed, "split": options.split, "ratios": options.ratios,
        "protocol": options.protocol, "train_protocol": options.train_protocol})


def _timing_options(options: TimingOptions, cls: type) -> TimingOptions:
    """A model may ask for fewer batch-1 latency calls (an LLM takes seconds per call); the number
    used is recorded in run.json as timing.latency_calls."""
    fewer = cls.latency_samples
    return replace(options, latency_samples=min(options.latency_samples, fewer)) if fewer else options


# --- the teacher step: a distilling student's teacher run is resolved before the student is built ---

def resolve_teacher(spec: TeacherSpec, request: TeacherRequest, options: RunOptions, dataset_hash: str,
                    progress: Progress, *, bundle: DatasetBundle | None = None) -> TeacherChoice:
    """The teacher run for a student run with `options`: the run it names, else the latest compatible
    run of `spec.model` under options.results_dir (bench.teachers), else one trained first
    (`train_teacher`, on `bundle` when the caller has it loaded). Announces its choice on stderr."""
    folder = find_teacher_run(options.results_dir, spec.model, options.dataset, dataset_hash, seed=options.seed,
                              split_seed=options.split_seed, split=options.split, ratios=options.ratios,
                              teacher_run=request.run, train_protocol=options.train_protocol)
    if folder is not None:
        choice = TeacherChoice(spec.model, folder, "explicit" if request.run else "latest")
        _announce(f"teacher: using {spec.model} run {folder} ({choice.how})")
        return choice
    _announce(f"no teacher run for {options.dataset}: training {spec.model} first (explicit step: "
              f"seed {options.seed}, split {options.split} {options.ratios} with split seed {options.split_seed})")
    folder = train_teacher(teacher_options(spec, request, options), progress, bundle=bundle)
    return TeacherChoice(spec.model, folder, "trained")


def teacher_options(spec: TeacherSpec, request: TeacherRequest, student: RunOptions) -> RunOptions:
    """The run options of a teacher trained for `student`: its dataset, training seed, split (and split
    seed) and folders, the request's `--set` options, and the weights kept (a student reads them). It is
    a single run, even when the student is one seed of a group."""
    return replace(student, model=spec.model, overrides=dict(request.train_overrides), save_model=True,
                   seed_group=None)


def train_teacher(options: RunOptions, progress: Progress, *, bundle: DatasetBundle | None = None) -> Path:
    """Train and store a teacher run (the teacher model's own run, finished before the student's
    starts); its folder. A teacher that itself distils from a teacher is refused."""
    cls = model_class(options.model)
    if cls.teacher is not None and cls.teacher.distils:
        raise UserError(f"teacher {options.model} distils from {cls.teacher.model} itself: train that chain "
                        "by hand, one `bench run` at a time")
    _, folder = run_model(options, progress, bundle=bundle)
    return folder


def teacher_entry(spec: TeacherSpec | None, choice: TeacherChoice | None) -> dict[str, Any] | None:
    """run.json's `teacher`: the model this one is a student of and the run it distilled from (run_id
    null: it did not distil); None for a model that declares no teacher."""
    if spec is None:
        return None
    return {"model": spec.model, "distilled": choice is not None,
            "run_id": choice.run_folder.name if choice else None,
            "path": str(choice.run_folder) if choice else None, "how": choice.how if choice else None}


def _announce(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
