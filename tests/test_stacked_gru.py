"""baselines.stacked_gru: independent GRUs computed together with a hand-written backward give
torch.nn.GRU's outputs and gradients at every real visit, and zeros at the padding."""

from __future__ import annotations

import pytest
import torch

from baselines.stacked_gru import stacked_gru


def _grus(n: int, dtype=torch.float64) -> list[torch.nn.GRU]:
    torch.manual_seed(0)
    return [torch.nn.GRU(5, 7, batch_first=True).to(dtype) for _ in range(n)]


@pytest.mark.parametrize("lengths", [[2, 4, 1, 3, 4, 1], [3, 3, 3], [1, 1]])
def test_outputs_and_gradients_match_torch_gru(lengths):
    grus = _grus(2)
    lengths = torch.tensor(lengths)
    batch, visits = len(lengths), 4
    real = (torch.arange(visits)[None] < lengths[:, None]).unsqueeze(-1)            # [B, V, 1]
    inputs = [torch.randn(batch, visits, 5, dtype=torch.float64, requires_grad=True) for _ in grus]
    weights = torch.randn(batch, visits, 7, dtype=torch.float64)
    params = [p for g in grus for p in g.parameters()] + inputs

    expected = [g(x)[0] for g, x in zip(grus, inputs)]
    expected_grads = torch.autograd.grad(sum((o * real * weights).sum() for o in expected), params)
    got = stacked_gru(grus, inputs, lengths)
    for e, o in zip(expected, got):
        assert o.shape == (batch, visits, 7)
        torch.testing.assert_close(o * real, e * real, rtol=1e-12, atol=1e-12)
        assert (o * ~real).abs().max() == 0                                          # zero at the padding
    got_grads = torch.autograd.grad(sum((o * real * weights).sum() for o in got), params)
    for e, g in zip(expected_grads, got_grads):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


def test_gradcheck_and_no_grad():
    grus = _grus(3)
    lengths = torch.tensor([3, 1, 2])
    inputs = [torch.randn(3, 3, 5, dtype=torch.float64, requires_grad=True) for _ in grus]
    assert torch.autograd.gradcheck(lambda *xs: tuple(stacked_gru(grus, xs, lengths)), inputs)
    with torch.no_grad():
        plain = grus[0](inputs[0])[0]
        torch.testing.assert_close(stacked_gru(grus, inputs, lengths)[0][0], plain[0])   # the longest row


def test_rejects_gru_it_cannot_run():
    with pytest.raises(ValueError):
        stacked_gru([torch.nn.GRU(5, 7, num_layers=2, batch_first=True)], [torch.zeros(1, 1, 5)], torch.tensor([1]))
