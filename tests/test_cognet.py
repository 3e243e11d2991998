"""COGNet's pieces on hand-checkable inputs (teacher forcing, copy distribution, copy-or-predict
mixture, the set beam search on a hand-worked case), the network's shapes, and tiny fits through the
common interface."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.cognet import COGNet, COGNetConfig, COGNetModule, drug_rank, teacher_forcing
from baselines.cognet_layers import AttentionPool, SetEncoderLayer, copy_distribution, mixed_log_probs
from baselines.gamenet import normalized_adjacency
from baselines.set_beam_search import beam_search
from baselines.visits import VisitEncoder
from bench.config import apply_overrides
from bench.data import Patient, Sample, Visit, Vocab, make_samples, target_matrix
from bench.errors import UserError
from bench.progress import Progress
from bench.protocol import Resources

IGNORE = -100


def test_drug_rank_orders_by_training_counts_ties_by_index():
    targets = np.array([[1, 1, 0, 1], [1, 0, 0, 1], [1, 0, 1, 0]], dtype=bool)   # counts 3, 1, 1, 2
    assert drug_rank(targets, "rare-first").tolist() == [3, 0, 1, 2]
    assert drug_rank(targets, "common-first").tolist() == [0, 2, 3, 1]


def test_teacher_forcing_sequences():
    rank = torch.tensor([3, 0, 1, 2])                        # drug 1 first, then 2, 3, 0
    target = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    inputs, targets = teacher_forcing(target, rank)
    start, end, pad = 5, 4, 6
    assert inputs.tolist() == [[start, 1, 3, 0], [start, 2, pad, pad], [start, pad, pad, pad]]
    assert targets.tolist() == [[1, 3, 0, end], [2, end, IGNORE, IGNORE], [end, IGNORE, IGNORE, IGNORE]]


def test_copy_distribution_by_hand():
    # one row, one decoder position, d = 1; slots: drug 2 (visit 0), drug 0 (visit 1), drug 2 (visit 1), empty
    query = torch.tensor([[[1.0]]])
    keys = torch.tensor([[[1.0], [0.0], [2.0], [5.0]]])
    visit = torch.tensor([[0.5, 0.0, 0.0, float("-inf")]])
    drugs = torch.tensor([[2, 0, 2, 1]])
    out = copy_distribution(query, keys, visit, drugs, n_out=4)[0, 0]
    logits = [1.0 + 0.5, 0.0, 2.0]                           # q.k / sqrt(1) + visit score
    z = sum(math.exp(v) for v in logits)
    expected = [math.exp(0.0) / z, 0.0, (math.exp(1.5) + math.exp(2.0)) / z, 0.0]   # END (index 3) never copied
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    assert float(out.sum()) == pytest.approx(1.0)
    # the released form: slot softmax times visit softmax (visits 0 and 1 with scores 0.5 and 0), renormalised
    slot = torch.softmax(torch.tensor([1.0, 0.0, 2.0]), 0)
    per_visit = torch.softmax(torch.tensor([0.5, 0.0]), 0)[torch.tensor([0, 1, 1])]
    product = slot * per_visit / (slot * per_visit).sum()
    np.testing.assert_allclose([float(product[1]), 0.0, float(product[0] + product[2])], expected[:3], rtol=1e-6)


def test_copy_distribution_is_zero_without_history_and_keeps_gradients_finite():
    query = torch.randn(2, 3, 4, requires_grad=True)
    keys = torch.randn(2, 2, 4, requires_grad=True)
    visit = torch.tensor([[0.0, 1.0], [float("-inf"), float("-inf")]])
    out = copy_distribution(query, keys, visit, torch.tensor([[0, 1], [0, 0]]), n_out=3)
    np.testing.assert_allclose(out[0].sum(-1).detach().numpy(), 1.0, rtol=1e-6)
    assert out[1].abs().sum() == 0
    out.sum().backward()
    assert torch.isfinite(query.grad).all() and torch.isfinite(keys.grad).all()


def test_mixed_probabilities_sum_to_one_and_generate_only_without_history():
    torch.manual_seed(0)
    gen, switch = torch.randn(2, 3, 5), torch.randn(2, 3, 1)
    copy = torch.softmax(torch.randn(2, 3, 4), -1)
    copy = torch.cat([copy, torch.zeros(2, 3, 1)], dim=-1)    # END is never copied
    copy[0, :, 1] = 0.0                                       # a drug of no earlier visit
    copy[0] = copy[0] / copy[0].sum(-1, keepdim=True)
    probs = mixed_log_probs(gen, copy, switch, torch.tensor([True, False])).exp()
    np.testing.assert_allclose(probs.sum(-1).numpy(), 1.0, rtol=1e-5)
    z = torch.sigmoid(switch[0])
    np.testing.assert_allclose(probs[0].numpy(), (z * torch.softmax(gen[0], -1) + (1 - z) * copy[0]).numpy(), rtol=1e-5)
    np.testing.assert_allclose(probs[1].numpy(), torch.softmax(gen[1], -1).numpy(), rtol=1e-5)


def test_attention_pool_ignores_absent_codes():
    pool = AttentionPool(2)
    x = torch.tensor([[[1.0, 2.0], [100.0, 100.0]], [[0.0, 0.0], [0.0, 0.0]]])
    out = pool(x, torch.tensor([[True, False], [False, False]]))
    np.testing.assert_allclose(out.detach().numpy(), [[1.0, 2.0], [0.0, 0.0]])


def test_set_encoder_layer_is_torchs_encoder_layer_at_the_present_codes():
    torch.manual_seed(0)
    ours = SetEncoderLayer(8, 2, 32, 0.2).eval()
    torchs = torch.nn.TransformerEncoderLayer(8, 2, 32, 0.2, batch_first=True).eval()
    torchs.self_attn.load_state_dict(ours.attn.state_dict())
    torchs.linear1.load_state_dict(ours.ffn[0].state_dict())
    torchs.linear2.load_state_dict(ours.ffn[3].state_dict())
    torchs.norm1.load_state_dict(ours.norm1.state_dict())
    torchs.norm2.load_state_dict(ours.norm2.state_dict())
    x = torch.randn(3, 4, 8)
    present = torch.tensor([[True, True, False, False], [True, True, True, True], [True, False, False, False]])
    with torch.no_grad():
        out, expected = ours(x, present), torchs(x, src_key_padding_mask=~present)
    np.testing.assert_allclose(out[present].numpy(), expected[present].numpy(), rtol=1e-5, atol=1e-6)
    assert out[~present].abs().sum() == 0


# The hand-worked beam case: drugs A = 0, B = 1; END = 2, start = 3. P(next | prefix):
TABLE = {(): [0.5, 0.4, 0.1], (0,): [0.6, 0.1, 0.3], (1,): [0.2, 0.3, 0.5],
         (0, 1): [0.0, 0.0, 1.0], (1, 0): [0.0, 0.0, 1.0]}


def table_step(calls: list[int], tables: list[dict] | None = None):
    def step(rows: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        calls.append(len(rows))
        out = []
        for row, tokens in zip(rows.tolist(), prefix.tolist()):
            key = tuple(t for t in tokens[1:] if t < 2)   # drugs so far (finished beams carry END)
            out.append((tables[row] if tables else TABLE).get(key, [0.0, 0.0, 1.0]))
        return torch.tensor(out).log()
    return step


@pytest.mark.parametrize("beam_size,expected,finished", [
    # greedy: A (0.5), then A again is barred (0.6), END (0.3) beats B (0.1): {A}, probability 0.15
    (1, [True, False], True),
    # two beams: [A] 0.5, [B] 0.4; then [B, END] 0.2 > [A, END] 0.15 > [B, A] 0.08 > [A, B] 0.05: {B}
    (2, [False, True], True),
    # three: [END] 0.1 (finished at step 1) keeps a place against [B, A] 0.08; the best is still {B}
    (3, [False, True], True),
])
def test_beam_search_hand_worked(beam_size, expected, finished):
    calls: list[int] = []
    result = beam_search(table_step(calls), 1, 2, beam_size=beam_size, max_len=10)
    assert result.sets.tolist() == [expected] and result.finished.tolist() == [finished]
    assert result.steps == 2 and calls == [beam_size, beam_size]   # all hypotheses finished after step 2


def test_beam_search_cut_at_max_len_and_batched_like_alone():
    result = beam_search(table_step([]), 1, 2, beam_size=2, max_len=1)
    assert result.sets.tolist() == [[True, False]] and result.finished.tolist() == [False]   # [A] 0.5, unfinished
    # a sample whose only possible answer is the empty set: its second beam is dead (-inf) at once
    other = {(): [0.0, 0.0, 1.0]}
    calls: list[int] = []
    both = beam_search(table_step(calls, [TABLE, other]), 2, 2, beam_size=2, max_len=10)
    assert both.sets.tolist() == [[False, True], [False, False]] and both.finished.tolist() == [True, True]
    assert calls == [4, 2]                                  # step 2 decodes the first sample's beams only


def tiny_vocabs() -> dict[str, Vocab]:
    return {"diagnosis": Vocab(["d0", "d1", "d2"]), "procedure": Vocab(["p0", "p1"]),
            "drug": Vocab(["A", "B", "C", "D"])}


def tiny_resources() -> Resources:
    ddi = np.zeros((4, 4), dtype=bool)
    ddi[0, 3] = ddi[3, 0] = True
    return Resources(vocabs=tiny_vocabs(), ddi_adj=ddi, ehr_graph=np.ones((4, 4), dtype=np.float32))


def test_module_shapes_and_output_distribution():
    config = COGNetConfig(dim=8, encoder_ffn=16, decoder_ffn=16)
    module = COGNetModule(3, 2, normalized_adjacency(np.ones((4, 4))), normalized_adjacency(np.eye(4)), config).eval()
    single = Patient(1, (Visit(1, ("d0",), ("p0",), ("A",)),))
    longer = Patient(2, (Visit(2, ("d0", "d1"), ("p0",), ("A", "B")), Visit(3, ("d2",), ("p1",), ("C",)),
                         Visit(4, ("d1",), ("p0", "p1"), ("A", "D"))))
    batch = VisitEncoder(tiny_vocabs()).encode([Sample(single, 0), Sample(longer, 2)])
    encoded = module.encode(batch)
    assert encoded.diagnoses.shape == (2, 2, 8) and encoded.procedures.shape == (2, 2, 8)
    assert encoded.copy_keys.shape == (2, 3 * 2, 8)          # V = 3 visits x M = 2 drugs per earlier visit
    assert encoded.has_history.tolist() == [False, True] and encoded.memory.shape == (4 + 3, 8)
    # the longer sample's slots: visit 0 holds A, B; visit 1 holds C; the current visit holds none
    assert torch.isfinite(encoded.visit_scores[1]).tolist() == [True, True, True, False, False, False]
    assert encoded.slot_drugs[1, :3].tolist() == [0, 1, 2]
    tokens = torch.tensor([[5, 0, 6], [5, 3, 0]])
    log_probs = module.decode(encoded, tokens)
    assert log_probs.shape == (2, 3, 5)
    np.testing.assert_allclose(log_probs.exp().sum(-1).detach().numpy(), 1.0, rtol=1e-5)
    loss = module.loss(batch, torch.arange(4))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_a_network_that_always_copies_puts_its_mass_on_the_earlier_drugs():
    model = COGNet(COGNetConfig(dim=8, encoder_ffn=16, decoder_ffn=16), tiny_resources())
    module = model.module.eval()
    with torch.no_grad():
        module.switch.weight.zero_()
        module.switch.bias.fill_(-40.0)                       # z ~ 0: copy only
    patient = Patient(1, (Visit(1, ("d0",), ("p0",), ("A", "C")), Visit(2, ("d1",), ("p1",), ("C",)),
                          Visit(3, ("d2",), ("p0",), ("B",))))
    with torch.no_grad():
        encoded = module.encode(model.encoder.encode([Sample(patient, 2), Sample(patient, 0)]))
        probs = module.decode(encoded, torch.tensor([[5, 2], [5, 2]])).exp()   # [start, C]
    # with history: everything on A and C (earlier visits' drugs), nothing on B, D or END
    np.testing.assert_allclose(probs[0, :, [0, 2]].sum(-1).numpy(), 1.0, rtol=1e-5)
    assert float(probs[0, :, [1, 3, 4]].max()) < 1e-12
    # the first visit has nothing to copy: the generator alone, whatever the switch says
    np.testing.assert_allclose(probs[1].sum(-1).numpy(), 1.0, rtol=1e-5)
    assert float(probs[1, :, [1, 3, 4]].sum(-1).min()) > 1e-3


def test_learns_a_deterministic_prescription():
    """d0 -> {A, B}, d1 -> {C}, d2 -> {C, D}, whatever the history (copying the previous visit's drugs
    is wrong whenever the diagnosis changed): a few epochs recover every held-out set."""
    rule = {"d0": ("A", "B"), "d1": ("C",), "d2": ("C", "D")}
    rng = np.random.default_rng(0)
    patients = []
    for pid in range(140):
        codes = rng.choice(["d0", "d1", "d2"], size=int(rng.integers(1, 4)))
        patients.append(Patient(pid, tuple(Visit(pid * 10 + i, (c,), ("p0",), rule[c]) for i, c in enumerate(codes))))
    train, valid = make_samples(patients[:100], "every"), make_samples(patients[100:120], "last")
    held_out = make_samples(patients[120:], "every")
    config = apply_overrides(COGNetConfig, {"dim": "16", "encoder_ffn": "32", "decoder_ffn": "32", "epochs": "10",
                                            "lr": "0.005", "patience": "10"}, owner="cognet")
    model = COGNet(config, tiny_resources())
    report = model.fit(train, valid, seed=0, progress=Progress())
    assert report.best_valid_prauc is None and report.notes["best_valid_jaccard"] == 1.0
    assert "valid_jaccard" in report.history[0] and report.history[0]["valid_jaccard"] < 1.0
    assert any(s.index > 0 and s.current.diagnoses != s.patient.visits[s.index - 1].diagnoses for s in held_out)
    np.testing.assert_array_equal(model.predict_proba(held_out), target_matrix(held_out, tiny_vocabs()["drug"]))


def test_config_checks_name_the_rule():
    with pytest.raises(UserError, match="dim divisible by heads"):
        apply_overrides(COGNetConfig, {"dim": "15"}, owner="model cognet")
    with pytest.raises(UserError, match="beam_size >= 1"):
        apply_overrides(COGNetConfig, {"beam_size": "0"}, owner="model cognet")
    with pytest.raises(UserError, match="drug_order"):
        apply_overrides(COGNetConfig, {"drug_order": "random"}, owner="model cognet")
