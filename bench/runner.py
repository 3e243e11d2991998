"""`bench run`: prepare data, train, evaluate the test split, time inference, store the run."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench import metrics
from bench.config import apply_overrides, config_to_dict
from bench.data import PROTOCOLS, make_samples, target_matrix
from bench.errors import UserError
from bench.loading import build_resources, load_bundle
from bench.progress import Progress
from bench.protocol import is_hard, prediction_notes
from bench.provenance import device_info, git_state, package_versions
from bench.registry import REPO_ROOT, dataset_card, import_target, model_class
from bench.results import GROUPS, Predictions, metrics_entry, run_dir, write_predictions, write_run
from bench.run_record import (SCHEMA_VERSION, DatasetInfo, FitInfo, ModelInfo, Resampling, RunRecord, SplitInfo,
                              Timing)
from bench.splits import SCHEMES, parse_ratios, split_patients
from bench.timing import TimingOptions, measure_inference, peak_rss_mb, reset_peak_rss


@dataclass(frozen=True)
class RunOptions:
    model: str
    dataset: str
    seed: int = 0
    overrides: dict[str, str] = field(default_factory=dict)
    threshold: float = 0.5
    protocol: str = "last"
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

    def check(self) -> None:
        """Validate everything cheap before any work starts."""
        dataset_card(self.dataset)
        apply_overrides(model_class(self.model).Config, self.overrides, owner=f"model {self.model}")
        check_seed(self.seed)
        check_sampling(self.protocol, self.split, self.ratios)
        check_threshold(self.threshold)
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be at least 1, got {self.threads}")


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


def run(options: RunOptions, progress: Progress) -> tuple[RunRecord, Path]:
    """Train and evaluate one model on one dataset; returns the run record and its folder."""
    options.check()
    git = git_state(REPO_ROOT)  # the code as it is when the run starts (it may change during a long run)
    rss_scope = "run" if reset_peak_rss() else "process"
    if options.threads is not None:
        import torch  # only here: `bench run --model popular` need not pay for torch otherwise

        # Small models on few cores run many times faster with one thread than with a busy pool.
        torch.set_num_threads(options.threads)
    cls = model_class(options.model)
    with progress.task(f"prepare {options.dataset}", total=None) as bar:
        bundle = load_bundle(options.dataset, data_dir=options.data_dir, resources=options.resources,
                             overrides=options.prep_overrides, cache_dir=options.cache_dir,
                             step=lambda what: bar.advance(0, status=what),
                             allow_modified_resources=options.allow_modified_resources)
    split = split_patients(bundle.patients, options.split, options.seed, options.ratios)
    # Training always uses every visit of the training patients as a target (as all the originals do);
    # validation and test follow the evaluation protocol.
    train = make_samples(split.train, "every")
    valid = make_samples(split.valid, options.protocol)
    test = make_samples(split.test, options.protocol)
    if not train or not test:
        raise UserError(f"dataset {options.dataset}: split {options.split} {options.ratios} leaves "
                        f"{len(train)} training and {len(test)} test samples; need both")
    resources = build_resources(bundle, split.train, cls.needs)
    if "teacher" in cls.needs:
        # The model names its provider ("module:function"); it finds, loads or first trains the teacher.
        resources = replace(resources, teacher=import_target(cls.teacher_provider)(options, bundle, progress))
    model = cls.from_options(options.overrides, resources)

    start = time.perf_counter()
    report = model.fit(train, valid, seed=options.seed, progress=progress)
    fit_seconds = time.perf_counter() - start

    with progress.task(f"evaluate {options.model}", total=2) as bar:
        scores = model.predict_proba(test)
        notes = prediction_notes(model)  # about the test predictions, before timing calls predict again
        bar.advance(1)
        timing = measure_inference(model, test, _timing_options(options.timing, cls))
        bar.advance(1)
    targets = target_matrix(test, bundle.drug_vocab)
    single = np.array([s.is_single_visit for s in test])
    patient_ids = np.array([s.patient.id for s in test])
    hard = is_hard(model)
    ddi_adj = bundle.ddi_matrix()  # for the metrics and stored with the predictions
    evaluation = metrics.evaluate(
        targets, None if hard else scores, y_pred=(scores >= 0.5) if hard else None,
        threshold=options.threshold, ddi_adj=ddi_adj,
        groups={"all": np.ones(len(test), bool), "single_visit": single, "multi_visit": ~single},
        patient_ids=patient_ids if options.protocol == "every" else None,
        rounds=options.rounds, fraction=options.fraction, replace=options.replace, seed=options.seed)

    run_id = new_run_id()
    folder = run_dir(options.results_dir, options.dataset, options.model, run_id)
    # Under `accelerate launch` every process runs this function; only the main one writes.
    writer = int(os.environ.get("RANK", "0")) == 0
    if writer:
        folder.mkdir(parents=True, exist_ok=True)
        write_predictions(folder, Predictions(
            target=targets, predicted=scores >= (0.5 if hard else options.threshold),
            scores=None if hard else scores, patient_id=patient_ids,
            visit_index=np.array([s.index for s in test]), drugs=bundle.drug_vocab.tokens, ddi_adj=ddi_adj))
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
        threshold=options.threshold,
        protocol=options.protocol,
        split=SplitInfo(scheme=options.split, ratios=options.ratios, patients=split.sizes()),
        resampling=Resampling(rounds=options.rounds, fraction=options.fraction, replace=options.replace),
        overrides=dict(options.overrides),
        metrics={group: metrics_entry(evaluation[group]) for group in GROUPS},
        timing=Timing(fit_seconds=fit_seconds, **timing, peak_rss_mb=peak_rss_mb(), peak_rss_scope=rss_scope,
                      n_params=model.n_params()),
        fit=FitInfo(**asdict(report)),
        prediction_notes=notes,
    )
    if writer:
        write_run(folder, record)
    return record, folder


def _timing_options(options: TimingOptions, cls: type) -> TimingOptions:
    """A model may ask for fewer batch-1 latency calls (an LLM takes seconds per call); the number
    used is recorded in run.json as timing.latency_calls."""
    fewer = getattr(cls, "latency_samples", None)
    return replace(options, latency_samples=min(options.latency_samples, fewer)) if fewer else options
