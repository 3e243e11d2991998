"""run.json as a typed record: `RunRecord` and its parts, and the JSON Schema generated from them.

`bench.runner` builds a run's record from these types; `bench.results` writes it and reads it back
(checking `schema_version`, bench.file_versions). docs/run.schema.json is `json_schema()` written out
(`python -m bench.run_record` rewrites it; a test checks that the committed file equals it and that
every run.json in results/ validates against it). docs/run-record.md describes the fields.

A field added after runs were written is `NotRequired`: older run.json files of the same schema
version lack it (readers use `.get`). A field that changes meaning, or one that every reader must
have, bumps SCHEMA_VERSION; the schema must keep accepting every version it loads.
"""

# Not `from __future__ import annotations`: pydantic resolves these annotations when it builds the schema.
import json
import sys
from pathlib import Path
from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict  # TypedDict with extra_items (PEP 728) on Python 3.11

from bench.file_versions import FIRST_VERSION

SCHEMA_VERSION = 1
SEED_GROUP_VERSION = 1   # layout of a seed group's aggregate record (bench.seed_groups)
# json_schema()'s pydantic config of a part: unknown keys refused, field docstrings as descriptions
CLOSED = {"extra": "forbid", "use_attribute_docstrings": True}
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "run.schema.json"
SEED_GROUP_SCHEMA_PATH = SCHEMA_PATH.with_name("seed-group.schema.json")


class GitState(TypedDict):
    """The repository when the run started."""

    sha: str | None
    """Commit checked out (null outside a git checkout)."""
    dirty: bool | None
    """Tracked files had uncommitted changes (null when git could not tell)."""


class DeviceInfo(TypedDict):
    """The machine the run used."""

    platform: str
    """platform.platform()."""
    cpu_count: int | None
    """os.cpu_count()."""
    torch_threads: NotRequired[int]
    """torch's CPU threads (absent where torch is not installed)."""
    cuda: NotRequired[str | None]
    """Name of GPU 0, null without one (absent where torch is not installed)."""


class ModelInfo(TypedDict):
    """The model trained."""

    name: str
    """Registry name (`bench ls models`)."""
    config: dict[str, Any]
    """The model's config dataclass after `--set` overrides, as JSON."""
    hard_predictions: NotRequired[bool]
    """The model predicts sets, not scores: PRAUC is undefined and --threshold does not apply (absent in
    early runs: false)."""


class ResourcesCheck(TypedDict):
    """The drug-knowledge files a dataset read, checked against their pinned checksums."""

    folder: str
    """The folder the files were read from."""
    modified: list[str]
    """Files whose checksum differs from the pinned one."""
    allowed: bool
    """--allow-modified-resources was given."""
    sha256: NotRequired[dict[str, str]]
    """sha256 of every file in the folder, by file name."""


class DatasetInfo(TypedDict):
    """The prepared dataset and the samples drawn from it."""

    name: str
    """Dataset card name (`bench ls datasets`)."""
    hash: str
    """Hash of the prepared dataset (changes with its inputs and preparation parameters)."""
    n_train: int
    """Training samples (per `train_protocol`: every visit of the training patients, or their last visits)."""
    n_valid: int
    """Validation samples (per --protocol)."""
    n_test: int
    """Test samples (per --protocol)."""
    n_drugs: int
    """Size of the drug vocabulary (columns of the predictions)."""
    data_dir: str | None
    """The folder of raw tables read (null for generated data)."""
    prep_overrides: dict[str, str]
    """--prep-set overrides of the preparation parameters."""
    meta: dict[str, Any]
    """What preparation recorded (source, parameters, summary, input files and their checksums, ...);
    its keys depend on the dataset."""
    relabelled: NotRequired[str]
    """Only in runs whose dataset was renamed after they were made: the name recorded then, and why
    (the committed synthetic-v1 reference runs were made as `synthetic`)."""


class SplitSizes(TypedDict):
    """Patients per part of the split."""

    train: int
    valid: int
    test: int


class SplitInfo(TypedDict):
    """How patients were split."""

    scheme: str
    """--split (bench.splits.SCHEMES)."""
    ratios: str
    """--ratios, e.g. "8:1:1"."""
    patients: SplitSizes
    """Patients in each part."""


class Resampling(TypedDict):
    """The test-set resampling behind each metric's mean and std."""

    rounds: int
    fraction: float
    """Share of the test samples (or patients) drawn per round."""
    replace: bool
    """Drawn with replacement (bootstrap)."""


class MetricValue(TypedDict):
    """One metric of one group; null where undefined (e.g. PRAUC of a hard-prediction model)."""

    __pydantic_config__ = CLOSED  # not MetricsGroup's
    mean: float | None
    """Mean over the resampling rounds (the test resampling of this one run, `uncertainty`)."""
    std: float | None
    """Standard deviation (ddof=0) over the resampling rounds."""
    point: float | None
    """Value on the whole test set."""


class MetricsGroup(TypedDict, extra_items=MetricValue):
    """One group of test samples: `n` and one MetricValue per metric name (`bench ls metrics`)."""

    __pydantic_config__ = {"use_attribute_docstrings": True}  # its own: the extra keys are the metrics
    n: int
    """Test samples in the group."""


class Timing(TypedDict):
    """Training time, inference speed (bench.timing; method version 2 unless `version` says otherwise),
    memory and size. A latency or throughput below the timer resolution is null with its flag true."""

    fit_seconds: float
    """Wall-clock seconds of `fit`."""
    version: NotRequired[int]
    """Timing method (absent: version 1, bench.timing)."""
    timer_resolution_ns: NotRequired[int]
    latency_ms_p50: float | None
    """Batch-1 latency, median over the timed calls, in ms."""
    latency_ms_p95: float | None
    latency_below_resolution: NotRequired[bool]
    latency_calls: NotRequired[int]
    """Batch-1 calls timed."""
    throughput_per_s: float | None
    """Samples per second at batch size `throughput_batch_size`."""
    throughput_below_resolution: NotRequired[bool]
    throughput_batch_size: NotRequired[int]
    throughput_batches: NotRequired[int]
    batch_ms_p50: NotRequired[float | None]
    batch_ms_p95: NotRequired[float | None]
    peak_rss_mb: float
    """Peak resident memory in MB."""
    peak_rss_scope: NotRequired[Literal["run", "process"]]
    """Whether the peak is this run's own or the process's so far (absent in early runs)."""
    n_params: int
    """Parameters used at inference."""


class FitInfo(TypedDict):
    """What training reported (bench.protocol.FitReport)."""

    epochs: int
    best_epoch: int | None
    best_valid_prauc: float | None
    history: list[dict[str, float | None]]
    """One entry per epoch (or logged step): losses and validation scores; a model trained by steps may
    log one per validation pass (e.g. `step`, `prompts_seen`, `train_loss` since the previous entry,
    `valid_prauc` on a fixed validation subset, `elapsed_s` since training started)."""
    notes: dict[str, Any]
    """Model-specific facts about training."""
    train_samples: NotRequired[int | None]
    """Training samples the updates went through, repeats counted (bench.training.fit_minibatch: the
    training samples x epochs run; a model trained by steps: the samples of its steps); null for a
    model that does not train by updates; absent in early runs."""
    train_seconds: NotRequired[float | None]
    """Wall-clock seconds of the training updates, validation passes excluded (null: as train_samples)."""
    valid_seconds: NotRequired[float | None]
    """Wall-clock seconds of the validation passes during training (null: no validation pass while
    training, or no training)."""
    train_cpu_seconds: NotRequired[float | None]
    """CPU seconds of the process (all threads) during the training updates: with one torch thread, about
    their time on an idle core, whatever else shared the machine (null: as train_samples; absent in runs
    recorded before 2026-12-02 16:20 UTC)."""
    train_samples_per_s: NotRequired[float | None]
    """train_samples / train_seconds: training throughput (null where either is null)."""
    valid_time_share: NotRequired[float | None]
    """valid_seconds / (train_seconds + valid_seconds), in [0, 1] (null where either is null)."""


class SeedGroupInfo(TypedDict):
    """The `bench run --seeds` call a run was trained in (bench.seed_groups)."""

    id: str
    """The group's id; its aggregate record is `<dataset>/<model>/seed-groups/<id>.json` beside the runs."""
    seeds: list[int]
    """Every training seed of the group, this run's among them."""


class TeacherInfo(TypedDict):
    """The teacher a model declares (bench.protocol.TeacherSpec) and the run it distilled from."""

    model: str
    """The teacher's registered model name."""
    distilled: bool
    """Whether this run distilled from a teacher run (false: a no-KD variant, or distillation off)."""
    run_id: str | None
    """The teacher run's id (null when it did not distil)."""
    path: str | None
    """The teacher run's folder as it was found."""
    how: str | None
    """How the teacher run was chosen: "explicit" (--set teacher_run), "latest" or "trained" (first)."""


class RunRecord(TypedDict):
    """One run of `bench run`: results/<dataset>/<model>/<run_id>/run.json."""

    __pydantic_config__ = CLOSED  # and so every part without its own
    schema_version: int
    """Layout of this file (bench.run_record.SCHEMA_VERSION)."""
    run_id: str
    """UTC start time and a random suffix, e.g. 20261202T103045Z-a28f6d; the run's folder name."""
    created_at: str
    """UTC time the record was written, ISO 8601."""
    git: GitState
    versions: dict[str, str | None]
    """Python and package versions (null: not installed)."""
    device: DeviceInfo
    model: ModelInfo
    dataset: DatasetInfo
    resources: NotRequired[ResourcesCheck | None]
    """The drug-knowledge check (null: the dataset reads none; absent in early runs)."""
    seed: int
    """Training seed (--seed, or one of --seeds): initialisation, sampling and the test resampling rounds."""
    split_seed: NotRequired[int]
    """Seed of the random patient split (--split-seed); absent in early runs, which split with `seed`."""
    seed_group: NotRequired[SeedGroupInfo | None]
    """The seed group this run belongs to (null: a single run; absent in early runs)."""
    threshold: float
    """Decision threshold on the scores (--threshold)."""
    protocol: str
    """Which visits are evaluated (--protocol; bench.data.PROTOCOLS)."""
    train_protocol: NotRequired[str]
    """Which visits of the training patients are training samples (--train-protocol: "every" or "last",
    LEADER's one sample per patient); absent in early runs, which all used "every"."""
    split: SplitInfo
    resampling: Resampling
    overrides: dict[str, str]
    """--set overrides of the model config, as given."""
    uncertainty: NotRequired[Literal["test_resampling"]]
    """What each metric's std is: the spread over this run's test resampling rounds (`resampling`); a
    seed group's aggregate record has the spread over training seeds (absent in early runs: the same)."""
    metrics: dict[str, MetricsGroup]
    """By evaluation group (bench.groups, docs/evaluation.md#evaluation-groups): "all", "single_visit",
    "multi_visit", "rare_code", "unseen_code", then one per mechanism tag of the dataset ("interaction",
    ...); a group without test samples has n 0 and null metrics. Early runs hold only the first three."""
    timing: Timing
    fit: FitInfo
    prediction_notes: NotRequired[dict[str, Any]]
    """Model-specific facts about the test predictions (absent in early runs)."""
    teacher: NotRequired[TeacherInfo | None]
    """The teacher this model is a student of (null: it declares none; absent in early runs)."""


class LoadedRun(RunRecord):
    """A RunRecord as bench.results.read_runs returns it: with the folder it was read from."""

    _path: str


class SeedMetricValue(TypedDict):
    """One metric of one group over the seeds of a group; null where undefined for any seed."""

    __pydantic_config__ = CLOSED
    mean: float | None
    """Mean over the seeds of each member's point estimate (its value on the whole test set)."""
    std: float | None
    """Sample standard deviation (ddof=1) over the seeds of those point estimates (null with one seed)."""
    values: list[float | None]
    """The members' point estimates, in the order of `runs`."""


class SeedMetricsGroup(TypedDict, extra_items=SeedMetricValue):
    """One group of test samples: `n` and one SeedMetricValue per metric name."""

    __pydantic_config__ = {"use_attribute_docstrings": True}
    n: int
    """Test samples in the group (the same for every seed: one split)."""


class SeedGroupDataset(TypedDict):
    name: str
    hash: str


class SeedGroupSplit(TypedDict):
    scheme: str
    ratios: str


class SeedGroupRun(TypedDict):
    seed: int
    run_id: str


class SeedGroupRecord(TypedDict):
    """The aggregate record of one `bench run --seeds` call:
    results/<dataset>/<model>/seed-groups/<group_id>.json (bench.seed_groups)."""

    __pydantic_config__ = CLOSED
    schema_version: int
    """Layout of this file (bench.run_record.SEED_GROUP_VERSION)."""
    kind: Literal["seed_group"]
    group_id: str
    """The id every member's run.json names in `seed_group.id`."""
    created_at: str
    """UTC time the record was written (after the last member), ISO 8601."""
    model: str
    dataset: SeedGroupDataset
    split: SeedGroupSplit
    split_seed: int
    """The one patient split of every member (--split-seed)."""
    protocol: str
    threshold: float
    overrides: dict[str, str]
    seeds: list[int]
    """The training seeds, in the order they ran."""
    runs: list[SeedGroupRun]
    """The member runs (folders `<dataset>/<model>/<run_id>/`), in seed order."""
    uncertainty: Literal["training_seeds"]
    """What each metric's std is: the spread over the training seeds."""
    std_ddof: int
    """Delta degrees of freedom of every std (1: sample standard deviation)."""
    metrics: dict[str, SeedMetricsGroup]
    """By group of test samples, as in the members' run.json."""


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of RunRecord: every field typed, unknown keys refused except in
    the free-form objects (model config, dataset meta, notes, versions)."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(RunRecord).json_schema()
    schema["properties"]["schema_version"] |= {"minimum": FIRST_VERSION, "maximum": SCHEMA_VERSION}
    schema["properties"]["created_at"] |= {"format": "date-time"}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def seed_group_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of SeedGroupRecord."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(SeedGroupRecord).json_schema()
    schema["properties"]["schema_version"] |= {"minimum": FIRST_VERSION, "maximum": SEED_GROUP_VERSION}
    schema["properties"]["created_at"] |= {"format": "date-time"}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    """json_schema() as docs/run.schema.json holds it."""
    return json.dumps(json_schema(), indent=2) + "\n"


def seed_group_schema_text() -> str:
    """seed_group_schema() as docs/seed-group.schema.json holds it."""
    return json.dumps(seed_group_schema(), indent=2) + "\n"


if __name__ == "__main__":  # python -m bench.run_record: rewrite docs/run.schema.json and docs/seed-group.schema.json
    SCHEMA_PATH.write_text(schema_text())
    SEED_GROUP_SCHEMA_PATH.write_text(seed_group_schema_text())
    print(f"written: {SCHEMA_PATH}, {SEED_GROUP_SCHEMA_PATH}", file=sys.stderr)
