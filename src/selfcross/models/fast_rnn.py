"""A CPU bidirectional GRU kernel with a hand-written backward (issue 8).

Why: on CPU, ``nn.GRU`` runs each time step as a dozen small autograd-recorded ops per
direction, and its backward replays them one by one (audio: 500 steps x 2 directions).
Those tiny ops are dominated by dispatch and thread start-up, not arithmetic, and they get
much worse when the 2 cores are shared. This kernel computes *the same function*
(PyTorch's GRU equations, gate order ``r, z, n``, zero initial state) with both directions
stacked into one ``[2, B, H]`` state, so one step is 6 ops forward and 4 ops backward;
everything that does not depend on the recurrence (input projections, weight gradients,
gate derivatives) is done once for all steps as large matmuls.

Equations (per direction, ``x_t [B, F]``, ``h [B, H]``)::

    gi = x_t W_ih^T + b_ih          gh = h W_hh^T + b_hh          (both [B, 3H])
    r  = sigmoid(gi_r + gh_r)       z  = sigmoid(gi_z + gh_z)
    n  = tanh(gi_n + r * gh_n)      h' = (1 - z) * n + z * h = n + z * (h - n)

Backward, with ``dh`` the gradient reaching ``h'``::

    dz_pre = dh * (h - n) * z (1 - z)      dn_pre = dh * (1 - z) (1 - n^2)
    dr_pre = dn_pre * gh_n * r (1 - r)     dgh_n  = dn_pre * r
    dh_prev = dh * z + [dr_pre, dz_pre, dgh_n] W_hh

All of ``[dr_pre, dz_pre, dgh_n]`` is ``dh`` times a coefficient that is known after the
forward pass, so the loop only carries ``dh``.

Use :func:`gru_forward` (falls back to the module itself where the kernel does not apply:
CUDA, packed sequences, several layers, one direction, no bias, an initial state, or a
GRU marked ``selfcross_reference = True`` by :func:`selfcross.models.kernels.set_kernels`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _stack_params(gru: nn.GRU) -> tuple[torch.Tensor, ...]:
    """``w_ih [6H, F]`` (forward rows then reverse rows), ``b_ih [6H]``, ``w_hh [2, 3H, H]``,
    ``b_hh [2, 3H]``; built with differentiable ops so gradients reach the module's own
    parameters (names unchanged)."""
    w_ih = torch.cat((gru.weight_ih_l0, gru.weight_ih_l0_reverse), dim=0)
    b_ih = torch.cat((gru.bias_ih_l0, gru.bias_ih_l0_reverse), dim=0)
    w_hh = torch.stack((gru.weight_hh_l0, gru.weight_hh_l0_reverse), dim=0)
    b_hh = torch.stack((gru.bias_hh_l0, gru.bias_hh_l0_reverse), dim=0)
    return w_ih, b_ih, w_hh, b_hh


def _time_major(g: torch.Tensor, parts: int) -> torch.Tensor:
    """``[B, T, 2*parts]`` (forward | reverse halves) -> ``[T, 2, B, parts]`` with the reverse
    direction flipped in time (step ``t`` of direction 1 reads input ``T-1-t``)."""
    b, t, _ = g.shape
    g = g.view(b, t, 2, parts).permute(1, 2, 0, 3)
    return torch.stack((g[:, 0], g[:, 1].flip(0)), dim=1)


def _batch_major(g: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_time_major`: ``[T, 2, B, P]`` -> ``[B, T, 2*P]``."""
    return torch.cat((g[:, 0], g[:, 1].flip(0)), dim=-1).transpose(0, 1)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run the per-step loop on one intra-op thread, then restore the setting.

    Why: a step's ops are tiny (``[2, 32, 60] x [2, 60, 180]``, a few thousand elements), so a
    second thread cannot speed them up, but every op then pays an OpenMP fork/join, and when
    the cores are shared a join waits for a descheduled thread. Measured on this 2-core
    machine with 2 other busy processes (audio BiGRU, batch 32, forward + backward):
    0.41 s on 1 thread, 12.5 s on 2 threads.
    """
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class BiGRUFunction(torch.autograd.Function):
    """``forward(x [B,T,F], w_ih [6H,F], b_ih [6H], w_hh [2,3H,H], b_hh [2,3H]) -> [B,T,2H]``.

    Saves ``x``, the weights, the states ``[T+1, 2, B, H]`` and the gates (``O(T B H)``).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        b_ih: torch.Tensor,
        w_hh: torch.Tensor,
        b_hh: torch.Tensor,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        hid = w_hh.shape[-1]
        gi = _time_major(F.linear(x, w_ih, b_ih), 3 * hid)  # [T, 2, B, 3H]
        w_hh_t = w_hh.transpose(1, 2).contiguous()  # [2, H, 3H]
        bias = b_hh.unsqueeze(1)  # [2, 1, 3H]
        hs = x.new_zeros((t + 1, 2, b, hid))
        gh = x.new_empty((t, 2, b, 3 * hid))
        rz = x.new_empty((t, 2, b, 2 * hid))
        n = x.new_empty((t, 2, b, hid))
        with _one_thread():
            for s in range(t):
                torch.baddbmm(bias, hs[s], w_hh_t, out=gh[s])
                torch.add(gi[s, ..., : 2 * hid], gh[s, ..., : 2 * hid], out=rz[s]).sigmoid_()
                r_s, gh_n = rz[s, ..., :hid], gh[s, ..., 2 * hid :]
                torch.addcmul(gi[s, ..., 2 * hid :], r_s, gh_n, out=n[s]).tanh_()
                torch.lerp(n[s], hs[s], rz[s, ..., hid:], out=hs[s + 1])
        ctx.save_for_backward(x, w_ih, w_hh, hs, gh, rz, n)
        return _batch_major(hs[1:])

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, w_ih, w_hh, hs, gh, rz, n = ctx.saved_tensors
        t, _, b, hid = n.shape
        r, z = rz[..., :hid], rz[..., hid:]
        h_prev = hs[:-1]
        # coefficients of dh (all [T, 2, B, H]); see the module docstring
        a_n = (1 - z) * (1 - n * n)
        a_z = (h_prev - n) * z * (1 - z)
        a_r = a_n * gh[..., 2 * hid :] * r * (1 - r)
        coef = torch.stack((a_r, a_z, a_n * r), dim=3)  # [T, 2, B, 3, H] -> d(gh)
        d_out = _time_major(grad_out, hid)  # [T, 2, B, H]
        dh_all = torch.empty_like(d_out)
        dh = torch.zeros_like(d_out[0])
        dgh_step = x.new_empty((2, b, 3, hid))
        with _one_thread():
            for s in range(t - 1, -1, -1):
                torch.add(dh, d_out[s], out=dh_all[s])
                torch.mul(dh_all[s].unsqueeze(2), coef[s], out=dgh_step)
                dh = torch.baddbmm(dh_all[s] * z[s], dgh_step.view(2, b, 3 * hid), w_hh)
        dgh = (dh_all.unsqueeze(3) * coef).view(t, 2, b, 3 * hid)
        dgi = dgh.clone()
        dgi[..., 2 * hid :] = dh_all * a_n  # dn_pre (gh_n's gradient carries an extra r)
        # parameter gradients: one large matmul each
        hp = h_prev.permute(1, 0, 2, 3).reshape(2, t * b, hid)
        d_w_hh = torch.bmm(dgh.permute(1, 3, 0, 2).reshape(2, 3 * hid, t * b), hp)
        d_b_hh = dgh.sum(dim=(0, 2))
        dgi_b = _batch_major(dgi)  # [B, T, 6H]
        flat = dgi_b.reshape(b * t, 6 * hid)
        d_w_ih = flat.t().mm(x.reshape(b * t, -1))
        d_b_ih = flat.sum(dim=0)
        dx = dgi_b.matmul(w_ih)
        return dx, d_w_ih, d_b_ih, d_w_hh, d_b_hh


def fast_gru_applies(gru: nn.GRU, x: torch.Tensor) -> bool:
    """Whether :class:`BiGRUFunction` computes what ``gru(x)`` computes for this call."""
    return (
        not getattr(gru, "selfcross_reference", False)
        and x.device.type == "cpu"
        and x.dim() == 3
        and gru.num_layers == 1
        and gru.bidirectional
        and gru.batch_first
        and gru.bias
        and getattr(gru, "proj_size", 0) == 0
        and x.dtype in (torch.float32, torch.float64)
        and x.shape[1] > 0
    )


def gru_forward(gru: nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """The output sequence of ``gru`` on ``x [B, T, F]`` (zero initial state) -> ``[B, T, 2H]``.

    Uses :class:`BiGRUFunction` on CPU for a 1-layer bidirectional batch-first GRU, else
    ``gru(x)[0]`` (cuDNN on CUDA is already fused).
    """
    if not fast_gru_applies(gru, x):
        return gru(x)[0]
    return BiGRUFunction.apply(x.contiguous(), *_stack_params(gru))
