"""bench.tensor_ops: segment sums and means over flat rows, the real codes of a padded tensor, and the
cheaper dropout (same distribution as torch's)."""

from __future__ import annotations

import pytest
import torch

from bench.tensor_ops import Dropout, dropout, real_positions, segment_mean, segment_sum


def test_real_positions_of_a_padded_tensor():
    codes = torch.tensor([[[3, 0, 0], [0, 0, 0]], [[5, 7, 0], [2, 0, 0]]])   # [B=2, V=2, L=3]
    ids, rows = real_positions(codes)
    assert ids.tolist() == [3, 5, 7, 2]
    assert rows.tolist() == [0, 2, 2, 3]      # visit slots b * V + v


def test_segment_mean_by_hand():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]], requires_grad=True)
    out = segment_mean(values, torch.tensor([2, 2, 0]), 4)
    assert out.tolist() == [[10.0, 0.0], [0.0, 0.0], [2.0, 3.0], [0.0, 0.0]]   # empty segments: zero
    out[2].sum().backward()
    assert values.grad.tolist() == [[0.5, 0.5], [0.5, 0.5], [0.0, 0.0]]


def test_segment_sum_by_hand():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]], requires_grad=True)
    out = segment_sum(values, torch.tensor([2, 2, 0]), 3)
    assert out.tolist() == [[10.0, 0.0], [0.0, 0.0], [4.0, 6.0]]
    out[2].sum().backward()
    assert values.grad.tolist() == [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]


def test_dropout_is_the_identity_outside_training_and_at_zero():
    x = torch.randn(5, 3)
    assert dropout(x, 0.4, training=False) is x and dropout(x, 0.0, training=True) is x
    assert Dropout(0.4).eval()(x) is x
    assert dropout(x, 1.0, training=True).abs().sum() == 0


def test_dropout_keeps_one_minus_p_scaled_by_its_inverse():
    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    y = Dropout(0.4).train()(x)
    kept = y > 0
    values = sorted(y.detach().unique().tolist())
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.6)
    assert kept.float().mean().item() == pytest.approx(0.6, abs=0.005)   # ~4.5 standard errors
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())                               # grad = the same mask x scale
    torch.manual_seed(0)
    assert torch.equal(Dropout(0.4).train()(torch.ones(200_000)), y.detach())   # seeded by torch's generator
    with pytest.raises(ValueError):
        Dropout(1.5)
