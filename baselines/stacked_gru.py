"""Several independent single-layer GRUs run side by side over padded visit sequences, with a
hand-written backward pass: the same outputs and gradients as `torch.nn.GRU` at every real visit,
in fewer and larger operations.

Why: GAMENet runs a diagnosis GRU and a procedure GRU over every mini-batch. At its sizes (batch 32,
hidden 128, a few visits) torch's CPU GRU spends most of its time in per-step overhead (about ten small
operations per step, each recorded and replayed by autograd, and one weight-gradient product per step).
Here the G GRUs share each step's operations (batched matrix products over a leading G dimension),
the backward pass needs no autograd graph, the weight gradients are one product over all steps, and
each step only computes the samples that still have a visit there (rows sorted by length).

Equations (torch.nn.GRU's, zero initial state), per GRU and step t:
r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class _StackedGRU(torch.autograd.Function):
    """x [G, B, V, I] with rows sorted by length (descending); active[t] = rows with a visit at step t."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, active: tuple[int, ...]):
        groups, batch, visits, _ = x.shape
        hidden = w_hh.shape[2]
        gates_in = torch.baddbmm(b_ih.unsqueeze(1), x.reshape(groups, batch * visits, -1), w_ih.transpose(1, 2))
        gates_in = gates_in.view(groups, batch, visits, 3 * hidden)
        out = x.new_zeros(groups, batch, visits, hidden)
        h = x.new_zeros(groups, batch, hidden)
        w_hh_t = w_hh.transpose(1, 2)
        saved = []
        for t, rows in enumerate(active):
            previous = h[:, :rows]
            gi = gates_in[:, :rows, t]
            gh = torch.baddbmm(b_hh.unsqueeze(1), previous, w_hh_t)                # [G, rows, 3H]
            rz = torch.sigmoid(gi[..., :2 * hidden] + gh[..., :2 * hidden])
            r, z = rz[..., :hidden], rz[..., hidden:]
            hn = gh[..., 2 * hidden:]
            n = torch.tanh(gi[..., 2 * hidden:] + r * hn)
            h = n + z * (previous - n)
            out[:, :rows, t] = h
            saved.append((previous, r, z, n, hn))
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, w_ih, w_hh)
            ctx.steps, ctx.active = saved, active
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w_ih, w_hh = ctx.saved_tensors
        groups, batch, visits, _ = x.shape
        hidden = w_hh.shape[2]
        grad_in = x.new_zeros(groups, batch, visits, 3 * hidden)
        grad_gh, previous_all = [], []
        carry = None                                                            # dL/dh of step t, from t + 1
        for t in range(len(ctx.active) - 1, -1, -1):
            rows = ctx.active[t]
            previous, r, z, n, hn = ctx.steps[t]
            dh = grad_out[:, :rows, t]
            if carry is not None:
                dh = dh.clone()
                dh[:, :carry.shape[1]] += carry
            dz = dh * (previous - n) * z * (1 - z)
            dn = dh * (1 - z) * (1 - n * n)
            dr = dn * hn * r * (1 - r)
            gh = torch.cat([dr, dz, dn * r], dim=-1)                            # [G, rows, 3H]
            grad_in[:, :rows, t] = torch.cat([dr, dz, dn], dim=-1)
            carry = dh * z + torch.bmm(gh, w_hh)
            grad_gh.append(gh)
            previous_all.append(previous)
        gh_all, prev_all = torch.cat(grad_gh, dim=1), torch.cat(previous_all, dim=1)
        flat_in = grad_in.view(groups, batch * visits, 3 * hidden)
        flat_x = x.reshape(groups, batch * visits, -1)
        grads = (torch.bmm(flat_in, w_ih).view_as(x) if ctx.needs_input_grad[0] else None,
                 torch.bmm(flat_in.transpose(1, 2), flat_x), torch.bmm(gh_all.transpose(1, 2), prev_all),
                 flat_in.sum(1), gh_all.sum(1))
        return (*grads, None)


def stacked_gru(grus: Sequence[nn.GRU], inputs: Sequence[torch.Tensor], lengths: torch.Tensor) -> list[torch.Tensor]:
    """Run each single-layer, unidirectional, batch-first `grus[g]` over `inputs[g]` float [B, V, I]
    (all of one shape; the GRUs of one input and hidden size, with biases) with zero initial state:
    one float [B, V, H] per GRU, equal to `grus[g](inputs[g])[0]` at every real visit (position <
    lengths [B], int64, each >= 1) and zero at the padding."""
    for gru in grus:
        if gru.num_layers != 1 or gru.bidirectional or not gru.batch_first or not gru.bias:
            raise ValueError("stacked_gru needs single-layer, unidirectional, batch-first GRUs with biases")
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order].tolist()
    visits = inputs[0].shape[1]
    active = tuple(sum(1 for n in sorted_lengths if n > t) for t in range(visits))
    active = tuple(a for a in active if a > 0)
    x = torch.stack([value[order] for value in inputs])[:, :, :len(active)]
    params = [torch.stack([getattr(g, name) for g in grus])
              for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
    out = _StackedGRU.apply(x.contiguous(), *params, active)                    # [G, B, V', H]
    if len(active) < visits:
        out = torch.nn.functional.pad(out, (0, 0, 0, visits - len(active)))
    restore = torch.empty_like(order)
    restore[order] = torch.arange(len(order))
    return list(out[:, restore].unbind(0))
