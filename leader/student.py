"""LEADER(S): the small student distilled from the LLM teacher (Liu et al., "Large Language Model
Distilled Medication Recommendation Model", arXiv 2402.02803; docs/leader.md#student).

Per sample, its LAST `max_visits` (10) visits up to and including the current one (the released code
keeps the first 10 and then drops the current visit of long histories; here the current visit is
always kept), V visits after padding:
- one shared code embedding table (dim 64) over diagnosis, procedure and medication codes;
- inside each visit, a transformer block per code type (4 heads, FFN 300, GELU, dropout 0.4) over
  that visit's codes, then masked mean pooling -> one vector per visit per type [B, V, 64];
- the medication sequence is SHIFTED: position t holds the drugs of visit t - 1 and position 0 the
  profile prompt (`ProfileEncoder` over the CURRENT visit's admission profile fields; values not
  seen in training map to a reserved zero vector), so a single-visit patient still has a
  medication input and the current visit's drugs (the target) never enter;
- across visits, a transformer block per sequence (diagnoses, procedures, medications) with FULL
  attention over the sample's visits (padding masked), as the released code: every position is
  either an earlier visit or the current visit's own inputs, so nothing leaks, and the outputs are
  mean-pooled anyway. Like the released code there is no visit-position embedding (the model sees
  the visits as a set); `visit_positions=true` adds a learned embedding of each visit's distance
  from the current one (0 = current) to the three sequences;
- masked mean over visits, concatenate the three [B, 192] -> Linear(192, 128) = the student feature
  [B, 128] (what distillation reads, pre-activation as the released code's "mediator") -> ReLU ->
  Linear(128, n_drugs) -> logits [B, n_drugs].

Training: BCE-with-logits; `leader-student` adds alpha * MSE(Linear(128, teacher_hidden)(feature),
teacher feature) (leader/distill.py) on the distilled training samples; both models add the profile
alignment (symmetric InfoNCE, weight 0.01) when `align=true`. Adam lr 5e-4, up to 100 epochs, early
stopping with patience 10 on validation PRAUC (bench.training.fit_minibatch); batch size 16 as the
released scripts.

Computation (since 2026-12; the same network and losses, leader/student_module.py): the transformer
blocks run their position-wise parts (layer norms, projections, FFN, dropouts) on the real codes and
visits only, not on the padding; the three across-visit blocks run as one stacked call; the
alignment's current drug sets go through the drug set block in the same call as the medication
history; dropout masks come from uniform numbers (bench.tensor_ops), also on the attention
probabilities (computed in plain ops in training). Outputs in eval mode are equal up to float
rounding; in training the random stream differs, so seeds do not reproduce earlier runs bit for bit.

Threshold: the paper reports its student at 0.3. The model outputs probabilities; the decision
threshold is the runner's `bench run --threshold` (default 0.5, recorded in run.json): use
`--threshold 0.3` for the paper's setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.config import HistoryTrainingConfig, apply_overrides
from bench.data import DatasetBundle, Sample
from bench.errors import UserError
from bench.progress import Progress
from bench.protocol import AblationStep, FitReport, Resources, TeacherChoice, TeacherRequest, TeacherSource, TeacherSpec
from bench.torch_model import EncoderCache, TorchRecommender
from bench.training import fit_minibatch
from leader.distill import TrainingHeads, distill_mse, kd_subset, standardise
from leader.student_layers import ProfileVocab, StudentEncoder
from leader.student_module import StudentModule
from leader.teacher_runs import TEACHER_MODEL, parse_teacher_set

PROFILE_KEY = "profile_vocab"  # the profile vocabulary, a uint8 JSON array saved beside the weights


@dataclass(frozen=True)
class StudentConfig(HistoryTrainingConfig):
    """LEADER(S) without distillation (`leader-student-nokd`). Defaults from the paper and its
    released code: dim 64, 4 heads, FFN 300, dropout 0.4, 128-d feature, at most 10 visits, Adam lr
    5e-4, 100 epochs, patience 10, batch 16, profile alignment on with weight 0.01 and tau 1."""

    lr: float = 5e-4
    epochs: int = 100
    batch_size: int = 16
    patience: int = 10
    max_visits: int = 10

    dim: int = 64
    heads: int = 4
    ffn: int = 300
    dropout: float = 0.4
    hidden: int = 128
    visit_positions: bool = False
    align: bool = True
    align_weight: float = 0.01
    tau: float = 1.0

    owner: ClassVar[str] = "leader-student"

    def checks(self) -> dict[str, bool]:
        return super().checks() | {
            "dim >= 1": self.dim >= 1, "heads >= 1": self.heads >= 1,
            "dim divisible by heads": self.heads >= 1 and self.dim % self.heads == 0,
            "ffn >= 1": self.ffn >= 1, "0 <= dropout < 1": 0 <= self.dropout < 1, "hidden >= 1": self.hidden >= 1,
            "align_weight >= 0": self.align_weight >= 0, "tau > 0": self.tau > 0}


@dataclass(frozen=True)
class DistilledStudentConfig(StudentConfig):
    """LEADER(S) with feature-level distillation (`leader-student`).

    alpha: weight of the distillation MSE, 0.4 as the paper on MIMIC-III (`--set alpha=0.8` for
    MIMIC-IV). teacher_run: a leader-teacher run folder or run id (empty: the latest compatible run,
    trained first when there is none; see leader/teacher_runs.py). teacher_set: `--set` options of
    a teacher trained when none is available, comma-separated (e.g. "base_model=tiny-llama,steps=3"):
    `bench run` stores it as a leader-teacher run; without the runner (no teacher resource, e.g. the
    conformance test) it is trained in process and not stored; empty there is an error.
    kd_samples: distil on a seeded subset of that many training samples (0 = all; the teacher's
    features cost one LLM forward pass per sample, about an hour for synthetic's ~10k training
    visits with smollm2-135m on 2 CPU cores). kd_standardise: z-score the teacher features per
    dimension first (not in the paper). kd_control: "shuffled" is a control experiment, not a model
    setting: the distilled samples' teacher features are moved along a seeded random cycle through
    them (each lands on another sample; rarely another visit of the same patient), keeping the loss
    and the feature distribution but cutting each feature from its sample, so a gain that
    survives it comes from the extra loss, not from what the teacher knows about the patient."""

    alpha: float = 0.4
    kd_samples: int = 0
    kd_standardise: bool = False
    kd_control: str = "none"
    teacher_run: str = ""
    teacher_set: str = ""

    def checks(self) -> dict[str, bool]:
        return super().checks() | {"alpha >= 0": self.alpha >= 0, "kd_samples >= 0": self.kd_samples >= 0,
                                   "kd_control in {none, shuffled}": self.kd_control in ("none", "shuffled")}


class LeaderStudentNoKD(EncoderCache, TorchRecommender):
    """LEADER(S) trained without a teacher (BCE + profile alignment): the paper's no-KD ablation.
    `leader-student` is this model plus feature-level distillation."""

    name: ClassVar[str] = "leader-student-nokd"
    needs: ClassVar[frozenset[str]] = frozenset()
    Config = StudentConfig
    # a student of leader-teacher trained without it: compared with it in the efficiency table
    teacher: ClassVar[TeacherSpec | None] = TeacherSpec(TEACHER_MODEL, distils=False)
    smoke_options: ClassVar[dict[str, str]] = {"epochs": "1", "dim": "16", "heads": "2", "ffn": "32", "hidden": "16",
                                               "batch_size": "128"}
    # True: train as before the 2026-12 speed-up (padded blocks, for-loop Adam); same model, for the
    # old-against-new benchmark only (tests/benchmarks/test_training_speed.py)
    _previous_path: bool = False

    def __init__(self, config: StudentConfig, resources: Resources):
        fields = tuple(resources.profile_fields)
        self.profile_vocab = ProfileVocab(fields, [() for _ in fields])   # filled from the training samples
        super().__init__(config, resources)

    def build_module(self) -> torch.nn.Module:
        self.encoder = StudentEncoder(self.resources.vocabs, self.profile_vocab, self.config.max_visits)
        return StudentModule(self.encoder.table_size, self.resources.n_drugs, self.profile_vocab.sizes(), self.config,
                             packed=not self._previous_path)

    def logits(self, samples: Sequence[Sample]) -> torch.Tensor:
        return self.module(self.encoder.encode(samples))[0]

    # --- state: the module's weights and the profile vocabulary ---------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return super().state() | {PROFILE_KEY: self.profile_vocab.to_array()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        state = dict(state)
        self.profile_vocab = ProfileVocab.from_array(state.pop(PROFILE_KEY))
        self.module = self.build_module()
        super().set_state(state)

    # --- training -----------------------------------------------------------------------------
    def distillation(self, train: Sequence[Sample], seed: int, progress: Progress) -> tuple[np.ndarray, np.ndarray, dict]:
        """(teacher features float32 [n_train, H], bool [n_train] rows to distil, notes); None when not
        distilling."""
        return None

    def fit(self, train: Sequence[Sample], valid: Sequence[Sample], *, seed: int, progress: Progress) -> FitReport:
        c = self.config
        torch.manual_seed(seed)
        self.profile_vocab = ProfileVocab.build(self.resources.profile_fields, [s.current for s in train])
        self.module = self.build_module()
        kd = self.distillation(train, seed, progress)
        teacher = torch.from_numpy(kd[0]) if kd else None
        kd_rows = torch.from_numpy(kd[1]) if kd else None
        alpha = getattr(c, "alpha", 0.0)
        heads = TrainingHeads(c.hidden, teacher.shape[1] if kd else None, c.dim, c.align)
        trainable = torch.nn.ModuleDict({"student": self.module, "heads": heads})
        parts: dict[str, list[float]] = {"bce": [], "kd": [], "align": []}

        def batch_loss(indices: np.ndarray) -> torch.Tensor:
            batch = self.encoder.encode([train[i] for i in indices])
            aligning = c.align and c.align_weight > 0
            logits, feature, prompt, drug_sets = self.module.forward_with_drug_set(batch, current=aligning)
            loss = F.binary_cross_entropy_with_logits(logits, batch.target)
            parts["bce"].append(float(loss.detach()))
            if teacher is not None:
                rows = kd_rows[indices]
                mse = distill_mse(heads.projector(feature[rows]), teacher[indices][rows])
                loss = loss + alpha * mse
                if bool(rows.any()):
                    parts["kd"].append(float(mse.detach()))
            if aligning:
                aligned = heads.alignment(drug_sets, prompt, c.tau)
                loss = loss + c.align_weight * aligned
                parts["align"].append(float(aligned.detach()))
            return loss

        def on_epoch_end(epoch: int) -> dict[str, float]:
            means = {f"train_{k}": float(np.mean(v)) for k, v in parts.items() if v}
            for v in parts.values():
                v.clear()
            return means

        report = fit_minibatch(trainable, c, train=train, valid=valid, batch_loss=batch_loss,
                               predict=self.predict_proba, drug_vocab=self.resources.vocabs["drug"],
                               seed=seed, progress=progress, description=f"fit {self.name}", on_epoch_end=on_epoch_end,
                               fused_adam=not self._previous_path)
        report.notes.update({"profile_values": dict(zip(self.profile_vocab.fields, (len(v) for v in self.profile_vocab.values))),
                             "distillation": kd[2] if kd else None, "align": c.align and c.align_weight > 0})
        return report


class LeaderStudent(LeaderStudentNoKD):
    """LEADER(S) with offline feature-level distillation from a LEADER(T) run (`Resources.teacher`,
    opened by `bench run` from the teacher run it resolved, leader/teacher_runs.py) and profile alignment."""

    name: ClassVar[str] = "leader-student"
    needs: ClassVar[frozenset[str]] = frozenset({"teacher", "text"})   # titles: for an in-process teacher only
    Config = DistilledStudentConfig
    teacher: ClassVar[TeacherSpec | None] = TeacherSpec(TEACHER_MODEL)
    # `bench ablate --model leader-student`: each step adds one thing, same seed and split; the teacher
    # row is the latest compatible leader-teacher run (the KD rows train one first when there is none)
    ablation: ClassVar[tuple[AblationStep, ...]] = (
        AblationStep("teacher", TEACHER_MODEL, reuse=True),
        AblationStep("no-KD", "leader-student-nokd", {"align": "false"}),
        AblationStep("KD", "leader-student", {"align": "false"}),
        AblationStep("KD + align", "leader-student"),
    )
    # no teacher resource in the conformance test: a 3-step tiny-llama teacher in process, 48 distilled samples
    smoke_options: ClassVar[dict[str, str]] = {
        **LeaderStudentNoKD.smoke_options, "kd_samples": "48",
        "teacher_set": "base_model=tiny-llama,steps=3,batch_size=4,grad_accum=1,max_tokens=256,lr=1e-3"}

    @classmethod
    def teacher_request(cls, config: DistilledStudentConfig) -> TeacherRequest | None:
        """None when not distilling (alpha = 0); else `teacher_run` and the `teacher_set` options (checked
        against the teacher's config now, before any work)."""
        if config.alpha == 0:
            return None
        from leader.teacher import TeacherConfig

        options = parse_teacher_set(config.teacher_set)
        apply_overrides(TeacherConfig, options, owner=f"teacher_set of {cls.name}")
        return TeacherRequest(run=config.teacher_run, train_overrides=options)

    @classmethod
    def open_teacher(cls, choice: TeacherChoice, bundle: DatasetBundle, *, cache_dir: Path | None,
                     progress: Progress) -> TeacherSource:
        from leader.teacher_runs import load_teacher_run

        return load_teacher_run(choice.run_folder, bundle, choice.how, cache_dir, progress)

    def distillation(self, train: Sequence[Sample], seed: int, progress: Progress) -> tuple[np.ndarray, np.ndarray, dict]:
        c = self.config
        if c.alpha == 0:
            return None
        teacher = self.resources.teacher
        if teacher is None:
            if not c.teacher_set:
                raise UserError(f"{self.name}: no teacher given (bench run provides one); set teacher_set=... "
                                "to train one in process, or alpha=0")
            from leader.teacher_runs import train_in_process_teacher

            teacher = train_in_process_teacher(self.resources, train, c.teacher_set, seed=seed, progress=progress)
        rows = kd_subset(len(train), c.kd_samples, seed)
        features = np.zeros((len(train), teacher.hidden_size), dtype=np.float32)
        chosen = np.flatnonzero(rows)
        features[chosen] = teacher.features([train[i] for i in chosen])
        if c.kd_control == "shuffled":
            order = np.random.default_rng(seed + 1).permutation(chosen)
            features[order] = features[np.roll(order, 1)]   # a cycle: no feature stays on its own sample
        if c.kd_standardise:
            features = standardise(features, rows)
        describe = getattr(teacher, "describe", None)
        notes = {"teacher": describe() if callable(describe) else {}, "kd_samples": int(rows.sum()),
                 "teacher_hidden": teacher.hidden_size, "alpha": c.alpha, "kd_control": c.kd_control}
        return features, rows, notes
