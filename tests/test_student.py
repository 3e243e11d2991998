"""LEADER(S) (leader/student.py): batches, masking, the medication shift, truncation, the losses,
save/load, a tiny distillation from a tiny-llama teacher, and where `bench run` finds its teacher."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.data import Patient, Sample, Visit, Vocab, make_samples
from bench.errors import UserError
from bench.loading import build_resources
from bench.progress import Progress
from bench.protocol import Resources, TeacherSource
from bench.splits import split_patients
from leader.distill import TrainingHeads, distill_mse, info_nce, kd_subset
from leader.student import DistilledStudentConfig, LeaderStudent, LeaderStudentNoKD, StudentConfig
from leader import student_module
from leader.student_layers import ProfileVocab, StudentEncoder
from leader.teacher_runs import find_teacher_run, parse_teacher_set



VOCABS = {"diagnosis": Vocab(["d0", "d1", "d2", "d3"]), "procedure": Vocab(["p0", "p1", "p2"]),
          "drug": Vocab(["m0", "m1", "m2", "m3", "m4"])}
RESOURCES = Resources(vocabs=VOCABS, profile_fields=("insurance", "language"))
TINY = dict(dim=8, heads=2, ffn=16, hidden=8, dropout=0.0, epochs=2, batch_size=4)
DRUG0 = 1 + 4 + 3   # shared-table index of drug m0


def visit(i: int, dx: tuple, px: tuple, drugs: tuple, insurance: str = "Medicare") -> Visit:
    return Visit(i, dx, px, drugs, {"insurance": insurance, "language": "ENGL"})


def patient(pid: int, n: int) -> Patient:
    """n visits with varying codes; visit i prescribes m(i % 5) and m((i + 1) % 5)."""
    return Patient(pid, tuple(visit(100 * pid + i, (f"d{i % 4}", f"d{(i + 2) % 4}")[: 1 + i % 2], (f"p{i % 3}",),
                                    (f"m{i % 5}", f"m{(i + 1) % 5}")) for i in range(n)))


def model(**options) -> LeaderStudentNoKD:
    torch.manual_seed(0)
    m = LeaderStudentNoKD(StudentConfig(**{**TINY, **options}), RESOURCES)
    m.profile_vocab = ProfileVocab.build(RESOURCES.profile_fields, [v for p in (patient(1, 3),) for v in p.visits])
    m.module = m.build_module().eval()
    return m


# --- shapes, masking, the shift, truncation ------------------------------------------------------

def test_forward_shapes():
    m = model()
    samples = [Sample(patient(1, 3), 2), Sample(patient(2, 1), 0)]
    logits, feature, prompt = m.module(m.encoder.encode(samples))
    assert logits.shape == (2, 5) and feature.shape == (2, 8) and prompt.shape == (2, 8)
    assert m.predict_proba(samples).shape == (2, 5) and m.predict_proba(samples).dtype == np.float32


@pytest.mark.parametrize("positions", [False, True])
def test_padding_does_not_change_a_sample(positions):
    m = model(visit_positions=positions)
    short = Sample(patient(1, 2), 1)
    longer = Sample(Patient(9, tuple(visit(900 + i, ("d0", "d1", "d2", "d3"), ("p0", "p1", "p2"),
                                           ("m0", "m1", "m2", "m3", "m4")) for i in range(7))), 6)
    alone = m.predict_proba([short])
    batched = m.predict_proba([longer, short, Sample(patient(3, 1), 0)])
    assert m.encoder.encode([longer, short]).diagnoses.shape == (2, 7, 4)   # short one padded in both ways
    np.testing.assert_allclose(batched[1], alone[0], rtol=1e-5, atol=1e-6)


def test_medication_shift_and_profile_position(monkeypatch):
    m = model()
    p = patient(1, 3)
    sample = Sample(p, 2)
    batch = m.encoder.encode([sample])
    codes = m.encoder.codes
    assert (batch.medications[0, 0] == 0).all()                       # position 0: the profile slot
    for t in (1, 2):                                                   # position t: drugs of visit t - 1
        assert sorted(batch.medications[0, t][batch.medications[0, t] > 0].tolist()) == sorted(codes(p.visits[t - 1])[2].tolist())
    assert sorted(batch.current_drugs[0].tolist()) == sorted(codes(p.visits[2])[2].tolist())
    assert batch.target[0].tolist() == [0, 0, 1, 1, 0]                # m2, m3: visit 2's drugs, the target

    seen = {}
    stacked = student_module.stacked_blocks

    def keep_input(blocks, groups):   # the drug visit block's packed input, laid out padded again: [B, V, dim]
        for block, g in zip(blocks, groups):
            if block is m.module.visit_blocks["drug"]:
                seen["x"] = g.x.new_zeros(*g.mask.shape, g.x.shape[1]).index_put((g.rows, g.cols), g.x).detach()
        return stacked(blocks, groups)

    monkeypatch.setattr(student_module, "stacked_blocks", keep_input)
    m.module(batch)
    torch.testing.assert_close(seen["x"][0, 0], m.module.profile(batch.profile)[0])
    torch.testing.assert_close(seen["x"][0, 1:], m.module.code_sets("drug", batch.medications)[0, 1:])

    # the current visit's drugs never enter the input: other target drugs, same scores
    other = Patient(1, p.visits[:2] + (replace(p.visits[2], drugs=("m0", "m4")),))
    np.testing.assert_array_equal(m.predict_proba([Sample(other, 2)]), m.predict_proba([sample]))
    # a single-visit sample still has a medication input: the profile prompt
    one = m.encoder.encode([Sample(patient(2, 1), 0)])
    assert one.medications.shape[1] == 1 and one.visit_mask.tolist() == [[True]]


def test_profile_values_unseen_in_training_map_to_the_reserved_index():
    vocab = ProfileVocab.build(("insurance", "language"), [visit(0, (), (), (), "Medicare"), visit(1, (), (), (), "Private")])
    assert vocab.encode({"insurance": "Private", "language": "ENGL"}) == [2, 1]
    assert vocab.encode({"insurance": "Medicaid"}) == [0, 0]
    assert ProfileVocab.build(("language",), [Visit(0, (), (), (), {"language": ""})]).values == ((),)
    assert ProfileVocab.from_array(vocab.to_array()) == vocab


def test_last_ten_visits_keep_the_current_visit():
    m = model()
    p = patient(1, 12)
    batch = m.encoder.encode([Sample(p, 11)])
    window = m.encoder.window(Sample(p, 11))
    assert window == p.visits[2:12] and batch.visit_mask.shape == (1, 10)
    current_dx = m.encoder.codes(p.visits[11])[0]
    assert batch.diagnoses[0, 9][: len(current_dx)].tolist() == current_dx.tolist()
    assert sorted(batch.medications[0, 1][batch.medications[0, 1] > 0].tolist()) == sorted(m.encoder.codes(p.visits[2])[2].tolist())
    # an earlier visit as the target: later visits are never read
    assert m.encoder.window(Sample(p, 4)) == p.visits[:5]


# --- losses ------------------------------------------------------------------------------------

def test_distillation_loss_is_zero_when_projection_equals_teacher():
    heads = TrainingHeads(feature=8, teacher_hidden=6, dim=8, align=False)
    feature = torch.randn(5, 8)
    teacher = heads.projector(feature).detach()
    with torch.no_grad():
        assert float(distill_mse(heads.projector(feature), teacher)) == 0.0
        assert float(distill_mse(heads.projector(feature), teacher + 1.0)) == pytest.approx(1.0)
    assert float(distill_mse(torch.zeros(0, 6), torch.zeros(0, 6))) == 0.0


def test_info_nce_on_a_hand_made_batch():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    c = 1 / math.sqrt(2)    # cosine similarities: S = [[1, c], [0, c]]
    rows = (-math.log(math.e / (math.e + math.exp(c))) - math.log(math.exp(c) / (1 + math.exp(c)))) / 2
    cols = (-math.log(math.e / (math.e + 1)) - math.log(0.5)) / 2
    assert float(info_nce(x, y, tau=1.0)) == pytest.approx((rows + cols) / 2, rel=1e-6)
    assert float(info_nce(x[:1], y[:1])) == pytest.approx(0.0, abs=1e-7)


def test_kd_subset_is_seeded():
    assert kd_subset(10, 0, 0).all() and kd_subset(10, 20, 0).all()
    a = kd_subset(100, 7, 3)
    assert a.sum() == 7 and np.array_equal(a, kd_subset(100, 7, 3))


# --- fit, save/load, distillation --------------------------------------------------------------

def test_save_load_round_trip_exact(tmp_path, small_bundle):
    split = split_patients(small_bundle.patients, "random", seed=0)
    train, valid = make_samples(split.train, "every")[:120], make_samples(split.valid, "last")
    resources = build_resources(small_bundle, split.train, frozenset())
    m = LeaderStudentNoKD.from_options({"epochs": "1", "dim": "8", "heads": "2", "ffn": "16", "hidden": "8",
                                        "batch_size": "32", "visit_positions": "true"}, resources)
    m.fit(train, valid, seed=0, progress=Progress())
    m.save(tmp_path / "model")
    loaded = LeaderStudentNoKD.load(tmp_path / "model", resources)
    assert loaded.profile_vocab == m.profile_vocab and loaded.profile_vocab.values[0]
    np.testing.assert_array_equal(loaded.predict_proba(valid), m.predict_proba(valid))
    assert json.loads((tmp_path / "model" / "config.json").read_text())["config"]["visit_positions"] is True


def test_nokd_config_has_no_teacher_and_distillation_needs_one(small_bundle):
    assert LeaderStudentNoKD.needs == frozenset() and "teacher" in LeaderStudent.needs
    assert not hasattr(StudentConfig(), "alpha") and DistilledStudentConfig().alpha == 0.4
    split = split_patients(small_bundle.patients, "random", seed=0)
    student = LeaderStudent.from_options({"epochs": "1", **{k: str(v) for k, v in TINY.items() if k != "epochs"}},
                                         build_resources(small_bundle, split.train, LeaderStudent.needs))
    with pytest.raises(UserError, match="no teacher"):
        student.fit(make_samples(split.train, "every")[:8], [], seed=0, progress=Progress())


def test_tiny_distillation_from_a_tiny_llama_teacher(small_bundle):
    from leader.teacher import LeaderTeacher
    from leader.teacher_runs import InProcessTeacher

    split = split_patients(small_bundle.patients, "random", seed=0)
    train, valid = make_samples(split.train, "every")[:96], make_samples(split.valid, "last")
    resources = build_resources(small_bundle, split.train, LeaderStudent.needs)
    teacher = LeaderTeacher.from_options({"base_model": "tiny-llama", "steps": "2", "batch_size": "4",
                                          "grad_accum": "1", "max_tokens": "256"}, resources)
    teacher.fit(train, [], seed=0, progress=Progress())
    source = InProcessTeacher(teacher, {})
    assert isinstance(source, TeacherSource)
    student = LeaderStudent.from_options({"epochs": "3", "dim": "8", "heads": "2", "ffn": "16", "hidden": "8",
                                          "batch_size": "16", "dropout": "0", "kd_samples": "64", "alpha": "1"},
                                         replace(resources, teacher=source))
    report = student.fit(train, valid, seed=0, progress=Progress())
    kd = [h["train_kd"] for h in report.history]
    assert len(kd) == 3 and all(np.isfinite(kd)) and kd[-1] < kd[0]
    assert report.notes["distillation"]["kd_samples"] == 64
    assert report.notes["distillation"]["teacher_hidden"] == teacher.hidden_size


def test_shuffled_control_permutes_the_distilled_features_among_their_samples(small_bundle):
    class IndexTeacher:       # feature row = the sample's patient id and visit index, so rows are traceable
        hidden_size = 2

        def features(self, samples):
            return np.array([[s.patient.id, s.index] for s in samples], dtype=np.float32)

    train = make_samples(split_patients(small_bundle.patients, "random", seed=0).train, "every")
    resources = replace(build_resources(small_bundle, (), LeaderStudent.needs), teacher=IndexTeacher())
    tiny = {"dim": "8", "heads": "2", "ffn": "16", "hidden": "8", "kd_samples": "40"}
    plain, rows, _ = LeaderStudent.from_options(tiny, resources).distillation(train, 0, Progress())
    shuffled, rows2, notes = LeaderStudent.from_options({**tiny, "kd_control": "shuffled"},
                                                        resources).distillation(train, 0, Progress())
    np.testing.assert_array_equal(rows, rows2)
    assert notes["kd_control"] == "shuffled" and not shuffled[~rows].any()
    assert sorted(map(tuple, shuffled[rows])) == sorted(map(tuple, plain[rows]))     # the same features ...
    assert (shuffled[rows] != plain[rows]).any(axis=1).all()                         # ... each on another sample
    with pytest.raises(UserError, match="kd_control"):
        LeaderStudent.from_options({**tiny, "kd_control": "random"}, resources)


# --- where bench run finds the teacher ------------------------------------------------------------

def write_run(root, run_id: str, *, dataset_hash: str = "h1", seed: int = 0, created: str = "2026-01-01",
              model_name: str = "leader-teacher", saved: bool = True, train_protocol: str | None = None,
              split_seed: int | None = None):
    folder = root / "synthetic-small" / model_name / run_id
    (folder / "model").mkdir(parents=True)
    record = {"schema_version": 1, "run_id": run_id, "created_at": created, "model": {"name": model_name},
              "dataset": {"name": "synthetic-small", "hash": dataset_hash}, "seed": seed,
              "split": {"scheme": "random", "ratios": "8:1:1"}}
    if train_protocol is not None:
        record["train_protocol"] = train_protocol
    if split_seed is not None:
        record["split_seed"] = split_seed
    (folder / "run.json").write_text(json.dumps(record))
    if saved:
        (folder / "model" / "config.json").write_text("{}")
    return folder


def test_teacher_lookup_explicit_latest_and_mismatches(tmp_path):
    find = lambda **kw: find_teacher_run(tmp_path, "synthetic-small", "h1", seed=0, **kw)   # noqa: E731
    assert find() is None
    old = write_run(tmp_path, "run-old", created="2026-01-01")
    new = write_run(tmp_path, "run-new", created="2026-02-01")
    write_run(tmp_path, "run-other-hash", created="2026-03-01", dataset_hash="h2")
    write_run(tmp_path, "run-other-seed", created="2026-03-02", seed=1)
    write_run(tmp_path, "run-unsaved", created="2026-03-03", saved=False)
    assert find() == new                                            # the latest compatible run
    assert find(teacher_run="run-old") == old                       # by run id
    assert find(teacher_run=str(old)) == old                        # by folder
    with pytest.raises(UserError, match="dataset hash h2"):
        find(teacher_run="run-other-hash")
    with pytest.raises(UserError, match="training patients differ"):
        find(teacher_run="run-other-seed")
    with pytest.raises(UserError, match="no saved model"):
        find(teacher_run="run-unsaved")
    with pytest.raises(UserError, match="neither a run folder nor a run id"):
        find(teacher_run="nope")
    student = write_run(tmp_path, "student-run", model_name="leader-student")
    with pytest.raises(UserError, match="not leader-teacher"):
        find(teacher_run=str(student))


def test_teacher_lookup_matches_the_students_training_protocol(tmp_path):
    find = lambda **kw: find_teacher_run(tmp_path, "synthetic-small", "h1", seed=0, **kw)   # noqa: E731
    unrecorded = write_run(tmp_path, "run-before-protocols", created="2026-01-01")     # counts as every
    last = write_run(tmp_path, "run-last", created="2026-02-01", train_protocol="last")
    assert find(train_protocol="every") == unrecorded and find(train_protocol="last") == last
    assert find() == last                                            # no protocol given: the latest
    assert find(train_protocol="every", teacher_run="run-last") == last   # named: used as asked


def test_a_named_teacher_may_have_another_training_seed_but_not_another_split(tmp_path):
    find = lambda **kw: find_teacher_run(tmp_path, "synthetic-small", "h1", seed=2, split_seed=0, **kw)  # noqa: E731
    seed0 = write_run(tmp_path, "teacher-seed-0", seed=0, split_seed=0)
    write_run(tmp_path, "teacher-other-split", seed=0, split_seed=1, created="2026-02-01")
    assert find() is None                                            # the search wants the student's seed
    assert find(teacher_run="teacher-seed-0") == seed0               # named: one teacher for every seed
    with pytest.raises(UserError, match="training patients differ"):
        find(teacher_run="teacher-other-split")


def test_teacher_set_parsing():
    assert parse_teacher_set("base_model=tiny-llama, steps=3") == {"base_model": "tiny-llama", "steps": "3"}
    assert parse_teacher_set("lora_targets=q_proj,v_proj,steps=2") == {"lora_targets": "q_proj,v_proj", "steps": "2"}
    assert parse_teacher_set("") == {}
    with pytest.raises(UserError):
        parse_teacher_set("tiny")


def test_bench_run_trains_a_teacher_first_then_reuses_it(tmp_path, capsys):
    from bench.runner import RunOptions, run
    from bench.timing import TimingOptions

    options = RunOptions(model="leader-student", dataset="synthetic-small", results_dir=tmp_path / "results",
                         cache_dir=tmp_path / "cache",
                         timing=TimingOptions(latency_samples=2, batch_size=8, min_seconds=0.0),
                         overrides={"epochs": "1", "dim": "8", "heads": "2", "ffn": "16", "hidden": "8",
                                    "batch_size": "64", "kd_samples": "16",
                                    "teacher_set": "base_model=tiny-llama,steps=1,batch_size=2,grad_accum=1,max_tokens=128"})
    first, _ = run(options, Progress())
    assert "no teacher run for synthetic-small: training leader-teacher first" in capsys.readouterr().err
    teacher = first["fit"]["notes"]["distillation"]["teacher"]
    assert teacher["how"] == "trained" and teacher["seed"] == 0       # the teacher's training seed
    assert (tmp_path / "results" / "synthetic-small" / "leader-teacher" / teacher["run_id"] / "model").is_dir()
    [features] = (tmp_path / "cache" / "teacher-features").glob("*.safetensors")   # the 16 samples' features
    written = features.stat().st_mtime_ns
    second, _ = run(options, Progress())
    again = second["fit"]["notes"]["distillation"]["teacher"]
    assert again["how"] == "latest" and again["run_id"] == teacher["run_id"]
    err = capsys.readouterr().err
    assert "training leader-teacher first" not in err and "teacher: using leader-teacher run" in err
    assert first["teacher"] == {"model": "leader-teacher", "distilled": True, "run_id": teacher["run_id"],
                                "path": teacher["path"], "how": "trained"}
    assert second["teacher"]["how"] == "latest" and second["teacher"]["run_id"] == teacher["run_id"]
    assert features.stat().st_mtime_ns == written                   # read from the cache, not recomputed
    with pytest.raises(UserError, match="teacher_run"):
        run(replace(options, overrides={**options.overrides, "teacher_run": "missing"}), Progress())


def test_bench_ablate_prints_every_step(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    tiny = ["epochs=1", "dim=8", "heads=2", "ffn=16", "hidden=8", "batch_size=64", "kd_samples=16",
            "teacher_set=base_model=tiny-llama,steps=1,batch_size=2,grad_accum=1,max_tokens=128"]
    args = ["ablate", "--model", "leader-student", "--dataset", "synthetic-small", "--results-dir", str(tmp_path),
            "--format", "md", "--threads", "1", *(x for option in tiny for x in ("--set", option))]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for label in ("leader-teacher (teacher)", "leader-student-nokd (no-KD)", "leader-student (KD)",
                  "leader-student (KD + align)"):
        assert f"| synthetic-small | {label} |" in result.stdout
    assert len(list((tmp_path / "synthetic-small" / "leader-student").iterdir())) == 2
    bad = CliRunner().invoke(app, ["ablate", "--model", "logreg", "--dataset", "synthetic-small"])
    assert bad.exit_code == 2 and "declares no ablation" in bad.output


# --- the packed computation (default) against the padded one ----------------------------------------

def test_packed_blocks_equal_the_padded_network():
    """The default module (blocks on the real codes only, stacked across-visit blocks, the current drug
    sets in the medication call) and the previous padded one are the same network: equal outputs in
    eval mode, equal gradients without dropout (TINY has dropout 0)."""
    from leader.student_module import StudentModule

    m = model()
    samples = [Sample(patient(1, 3), 2), Sample(patient(2, 1), 0), Sample(patient(3, 5), 4), Sample(patient(4, 2), 1)]
    batch = m.encoder.encode(samples)
    new = m.module
    old = StudentModule(m.encoder.table_size, 5, m.profile_vocab.sizes(), m.config, packed=False)
    old.load_state_dict(new.state_dict())
    for module in (new, old):
        module.train()
        logits, feature, prompt, drugs = module.forward_with_drug_set(batch)
        (logits.pow(2).sum() + drugs.pow(2).sum()).backward()
    for module in (new, old):
        module.eval()
    for a, b in zip(new.forward_with_drug_set(batch), old.forward_with_drug_set(batch)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(new.drug_set(batch.current_drugs), old.drug_set(batch.current_drugs))
    for (name, p), q in zip(new.named_parameters(), old.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_stacked_blocks_equal_one_block_at_a_time():
    from leader.stacked_blocks import Packed, stacked_blocks
    from leader.student_layers import TransformerBlock

    torch.manual_seed(0)
    blocks = [TransformerBlock(8, 2, 16, 0.0).eval() for _ in range(3)]
    masks = [torch.tensor([[True, True, False], [True, False, False]]),             # groups of different shapes
             torch.tensor([[True, True, True, True]]), torch.tensor([[True], [True], [True]])]
    groups = []
    for mask in masks:
        rows, cols = torch.nonzero(mask, as_tuple=True)
        groups.append(Packed(torch.randn(len(rows), 8), rows, cols, mask))
    for block, group, got in zip(blocks, groups, stacked_blocks(blocks, groups)):
        padded = group.x.new_zeros(*group.mask.shape, 8).index_put((group.rows, group.cols), group.x)
        expected = block(padded, group.mask)[group.rows, group.cols]
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(block.forward_packed(group.x, group.rows, group.cols, group.mask), expected,
                                   rtol=1e-5, atol=1e-6)
