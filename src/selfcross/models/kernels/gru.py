"""A CPU bidirectional GRU kernel with a hand-written backward.

Why: on CPU, ``nn.GRU`` runs each time step as a dozen small autograd-recorded ops per
direction and replays them one by one in backward; those ops cost dispatch, not arithmetic.
This kernel computes the same function (PyTorch's GRU equations, gate order ``r, z, n``,
zero initial state) with both directions stacked into one ``[2, B, H]`` state: 5 ops per step
forward, 3 backward; everything that does not depend on the recurrence (input projections,
weight gradients, gate derivatives) is done once for all steps as large matmuls.

Threads: the step loops run on one intra-op thread (tiny ops gain nothing from a second one
but pay an OpenMP fork/join each); only the large matmuls use the caller's thread count. For
long sequences the two directions run at once on two Python threads (:func:`_split_directions`).

Equations (per direction, ``x_t [B, F]``, ``h [B, H]``)::

    gi = x_t W_ih^T + b_ih          gh = h W_hh^T + b_hh          (both [B, 3H])
    r  = sigmoid(gi_r + gh_r)       z  = sigmoid(gi_z + gh_z)
    n  = tanh(gi_n + r * gh_n)      h' = (1 - z) * n + z * h = n + z * (h - n)

Backward, with ``dh`` the gradient reaching ``h'``::

    dz_pre = dh * (h - n) * z (1 - z)      dn_pre = dh * (1 - z) (1 - n^2)
    dr_pre = dn_pre * gh_n * r (1 - r)     dgh_n  = dn_pre * r
    dh_prev = dh * z + [dr_pre, dz_pre, dgh_n] W_hh

Every gate gradient is ``dh`` times a coefficient known after the forward pass, so the loop
only carries ``dh``. ``b_hr`` and ``b_hz`` are folded into the input projection (only ``b_hn``
must stay inside ``r * (W_hn h + b_hn)``).

Use :func:`gru_forward`: it falls back to the module itself where the kernel does not apply
(CUDA, packed sequences, several layers, one direction, no bias, or ``set_kernels(...,
"reference")``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfcross.models.kernels.switch import uses_reference
from selfcross.models.kernels.threads import one_intraop_thread, run_split

_LOG = logging.getLogger(__name__)


def _stack_params(gru: nn.GRU) -> tuple[torch.Tensor, ...]:
    """``w_ih [6H, F]`` (forward rows then reverse rows), ``b_ih [6H]``, ``w_hh [2, 3H, H]``,
    ``b_hh [2, 3H]``; built with differentiable ops so gradients reach the module's own
    parameters (names unchanged)."""
    w_ih = torch.cat((gru.weight_ih_l0, gru.weight_ih_l0_reverse), dim=0)
    b_ih = torch.cat((gru.bias_ih_l0, gru.bias_ih_l0_reverse), dim=0)
    w_hh = torch.stack((gru.weight_hh_l0, gru.weight_hh_l0_reverse), dim=0)
    b_hh = torch.stack((gru.bias_hh_l0, gru.bias_hh_l0_reverse), dim=0)
    return w_ih, b_ih, w_hh, b_hh


def _step_order(src: torch.Tensor, dst: torch.Tensor, rev: torch.Tensor, dirs: range) -> None:
    """Copy ``src [2, T, ...]`` (natural time, views allowed) into ``dst [2, T, ...]`` in step
    order, for the directions ``dirs``: direction 0 as is, direction 1 reversed in time (its
    step ``s`` is time ``T-1-s``). Also the inverse (the reversal is its own inverse)."""
    for d in dirs:
        _step_order_one(src[d], dst[d], d, rev)


def _step_order_one(src: torch.Tensor, dst: torch.Tensor, direction: int, rev: torch.Tensor) -> None:
    """:func:`_step_order` for one direction: ``src [T, ...]`` -> ``dst [T, ...]``."""
    if direction == 0:
        dst.copy_(src)
    else:
        torch.index_select(src, 0, rev, out=dst)


#: Shortest sequence whose two directions run on two threads (see :func:`_split_directions`);
#: for shorter ones the thread hand-off costs more than it saves (docs/performance.md).
SPLIT_MIN_STEPS = 256


def _split_directions(fn: Callable[[range], None], threads: int, steps: int) -> None:
    """Run ``fn(range(2))`` (both directions stacked: half the ops) on one thread, or
    ``fn(range(0, 1))`` and ``fn(range(1, 2))`` on two Python threads when ``threads >= 2``
    and the sequence has at least :data:`SPLIT_MIN_STEPS` steps.

    Why: one direction's loop cannot use a second core, but the two directions are
    independent, and the TorchScript loops (:func:`_loops`) run without holding the GIL.
    """
    if threads >= 2 and steps >= SPLIT_MIN_STEPS:
        run_split(lambda d: fn(range(d, d + 1)), 2, threads=2)
    else:
        fn(range(2))


_SCRIPTED: dict[str, Callable[..., None]] = {}


def _loops() -> tuple[Callable[..., None], Callable[..., None]]:
    """The forward and backward step loops, compiled with TorchScript once per process.

    Why TorchScript: its interpreter releases the GIL for the whole loop and dispatches each
    op with less overhead than Python; same ops in the same order as the Python functions.
    ``torch.compile`` would unroll a 500-step loop into one graph (docs/performance.md). If
    scripting fails (a torch without it) the Python loops run instead, with a warning.
    """
    if not _SCRIPTED:
        try:
            with warnings.catch_warnings():
                # its deprecation notice would reach every user of the model; the fallback
                # covers its removal
                warnings.filterwarnings("ignore", message=r"`?torch\.jit\.script`? is deprecated")
                fwd, bwd = torch.jit.script(_forward_loop), torch.jit.script(_backward_loop)
        except Exception as exc:  # noqa: BLE001 - any scripting failure: fall back, loudly
            _LOG.warning("TorchScript unavailable (%s): the BiGRU kernel runs its loops in Python", exc)
            fwd, bwd = _forward_loop, _backward_loop
        _SCRIPTED.update(forward=fwd, backward=bwd)
    return _SCRIPTED["forward"], _SCRIPTED["backward"]


class BiGRUFunction(torch.autograd.Function):
    """``forward(x [B,T,F], w_ih [6H,F], b_ih [6H], w_hh [2,3H,H], b_hh [2,3H]) -> [B,T,2H]``.

    Layout (why): per-step operands are views made once with ``unbind`` (slicing in the loop
    costs as much as a small op); every buffer is in *step order* (direction 1 reversed in
    time), so a step's slice is contiguous. Buffers read per step are time-major
    ``[T, 2, B, *]`` (``baddbmm_`` is slower on a strided batch); those the weight gradients
    contract over ``(T, B)`` are direction-major ``[2, T, B, *]``, so those are single
    matmuls. Saves ``x``, the weights, the states ``[2, T+1, B, H]``, ``r``, ``z``, ``n`` and
    ``W_hn h + b_hn`` (``O(T B H)``).
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
        threads = torch.get_num_threads()
        forward_loop, _ = _loops()
        # b_hr, b_hz add to the input projection; b_hn stays inside r * (W_hn h + b_hn)
        bias = b_ih.view(2, 3 * hid).clone()
        bias[:, : 2 * hid] += b_hh[:, : 2 * hid]
        gi = F.linear(x, w_ih, bias.view(-1))  # [B, T, 6H]: a large matmul, on all threads
        with one_intraop_thread():
            rev = torch.arange(t - 1, -1, -1, device=x.device)
            # g [T, 2, B, 3H] starts as [gi_r, gi_z, b_hn], the addend of the step matmul, and
            # becomes [r, z pre-activations, W_hn h + b_hn] in place; n [T, 2, B, H] starts as
            # gi_n. r and z get planes of their own because backward reads them whole.
            g = x.new_empty((t, 2, b, 3 * hid))
            n = x.new_empty((t, 2, b, hid))
            src = gi.transpose(0, 1).unflatten(-1, (2, 3 * hid)).movedim(2, 0)  # [2, T, B, 3H]
            w_hh_t = w_hh.transpose(1, 2)  # [2, H, 3H]
            hs = x.new_zeros((2, t + 1, b, hid))  # states, direction-major for d W_hh
            rz = x.new_empty((2, t, 2, b, hid))  # the r and z planes
            r, z = rz.unbind(0)
            out = x.new_empty((b, t, 2 * hid))
            out_dirs = out.view(b, t, 2, hid).permute(2, 1, 0, 3)  # [2, T, B, H]

            # ``src`` (and ``dg`` below) are bound as defaults, not closed over, so that the
            # ``del`` after the split really frees them
            def layout(dirs: range, src: torch.Tensor = src) -> None:
                _step_order(src[..., : 2 * hid], g[..., : 2 * hid].transpose(0, 1), rev, dirs)
                _step_order(src[..., 2 * hid :], n.transpose(0, 1), rev, dirs)

            def recur(dirs: range) -> None:
                d = slice(dirs.start, dirs.stop)
                g[:, d, :, 2 * hid :] = b_hh[d, None, 2 * hid :]
                forward_loop(g[:, d], n[:, d], rz[:, :, d], hs[d], w_hh_t[d])
                _step_order(hs[:, 1:], out_dirs, rev, dirs)

            # two passes, so that the input projections are freed before the loops run
            _split_directions(layout, threads, t)
            del gi, src, layout
            _split_directions(recur, threads, t)
        ctx.save_for_backward(x, w_ih, w_hh, hs, r, z, n, g[..., 2 * hid :])
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, w_ih, w_hh, hs, r, z, n, gh_n = ctx.saved_tensors
        t, _, b, hid = n.shape
        threads = torch.get_num_threads()
        _, backward_loop = _loops()
        with one_intraop_thread():
            rev = torch.arange(t - 1, -1, -1, device=x.device)
            w_p = torch.cat((w_hh[:, 2 * hid :], w_hh[:, : 2 * hid]), dim=1)  # rows (n, r, z)
            dg = n.new_empty((2, t, b, 4 * hid))  # gate gradients, step order
            dgi = x.new_empty((b, t, 6 * hid))  # natural time, batch-major: [B, T, 6H]
            dgi_dirs = dgi.view(b, t, 2, 3 * hid).permute(2, 1, 0, 3)  # [2, T, B, 3H]

            def directions(dirs: range, dg: torch.Tensor = dg) -> None:
                _backward_steps(grad_out, w_p, hs, r, z, n, gh_n, dg, rev, dirs, backward_loop)
                _step_order(dg[..., hid:], dgi_dirs, rev, dirs)

            _split_directions(directions, threads, t)
            del directions
            flat = dg.view(2, t * b, 4 * hid)
            dsum = flat.sum(1)  # [2, 4H]
            d_b_hh = torch.cat((dsum[:, hid : 3 * hid], dsum[:, :hid]), dim=1)
            d_b_ih = dsum[:, hid:].reshape(-1)
        # the large matmuls, on all threads; each only where its gradient is wanted
        need_x, need_w_ih, _, need_w_hh, _ = ctx.needs_input_grad
        d_w_hh = None
        if need_w_hh:
            d_w_hh = torch.bmm(flat[..., : 3 * hid].transpose(1, 2), hs[:, :t].reshape(2, t * b, hid))
            d_w_hh = torch.cat((d_w_hh[:, hid:], d_w_hh[:, :hid]), dim=1)  # rows (n,r,z) -> (r,z,n)
        del dg, flat  # not needed by the last two matmuls
        d_w_ih = dgi.view(b * t, 6 * hid).t().mm(x.reshape(b * t, -1)) if need_w_ih else None
        dx = dgi.matmul(w_ih) if need_x else None
        return dx, d_w_ih, d_b_ih, d_w_hh, d_b_hh


def _backward_steps(
    grad_out: torch.Tensor,
    w_p: torch.Tensor,
    hs: torch.Tensor,
    r: torch.Tensor,
    z: torch.Tensor,
    n: torch.Tensor,
    gh_n: torch.Tensor,
    dg: torch.Tensor,
    rev: torch.Tensor,
    dirs: range,
    backward_loop: Callable[..., None],
) -> None:
    """Write the gate gradients of every step of the directions ``dirs`` into
    ``dg [2, T, B, 4H]`` (step order): columns ``0..3H`` are ``d gh`` in the gate order
    ``(n, r, z)``, columns ``H..4H`` are ``d gi`` in ``(r, z, n)``. ``w_p [2, 3H, H]`` is
    ``W_hh`` with its rows in the order ``(n, r, z)``.

    Each is ``dh`` times a coefficient known from the forward pass (module docstring), so the
    loop only carries ``dh`` through ``dh_prev = d_out + dh * z + d gh @ W_hh``.
    """
    t, _, b, hid = n.shape
    d = slice(dirs.start, dirs.stop)
    r, z, n, gh_n = r[:, d], z[:, d], n[:, d], gh_n[:, d]
    # coef[k] [T, D, B, H] (time-major like the activations), written in place
    coef = n.new_empty((4, t, len(dirs), b, hid))
    a_nr, a_r, a_z, a_n = coef.unbind(0)
    u = torch.rsub(z, 1)  # 1 - z
    torch.mul(u, n, out=a_n)
    torch.addcmul(u, a_n, n, value=-1, out=a_n)  # (1 - z)(1 - n^2)
    torch.mul(a_n, r, out=a_nr)
    torch.addcmul(a_nr, a_nr, r, value=-1, out=a_r)  # a_n r (1 - r)
    a_r.mul_(gh_n)
    torch.sub(hs[d, 1:].transpose(0, 1), n, out=a_z)  # h' - n = z (h - n)
    a_z.mul_(u)  # (h - n) z (1 - z)
    del u
    d_out = n.new_empty((len(dirs), t, b, hid))  # output gradients of ``dirs``, step order
    src = grad_out.unflatten(-1, (2, hid)).permute(2, 1, 0, 3)  # [2, T, B, H]
    for i, direction in enumerate(dirs):
        _step_order_one(src[direction], d_out[i], direction, rev)
    backward_loop(d_out, z, coef, dg[d], w_p[d])


def _forward_loop(
    g: torch.Tensor, n: torch.Tensor, rz: torch.Tensor, hs: torch.Tensor, w_hh_t: torch.Tensor
) -> None:
    """The forward recurrence over ``D`` stacked directions, in place.

    ``g [T, D, B, 3H]`` ([gi_r, gi_z, b_hn] -> [r, z pre-activations, W_hn h + b_hn]),
    ``n [T, D, B, H]`` (gi_n -> n), ``rz [2, T, D, B, H]`` (r and z planes, written),
    ``hs [D, T+1, B, H]`` (states; ``hs[:, 0]`` is the initial state), ``w_hh_t [D, H, 3H]``.
    """
    hid = n.shape[-1]
    g_s, ghn_s, r_s, z_s, n_s = (v.unbind(0) for v in (g, g[..., 2 * hid :], rz[0], rz[1], n))
    # [2 (r|z), D, B, H] views of the pre-activations and of the planes: one sigmoid for both
    prz_s = g[..., : 2 * hid].unflatten(-1, (2, hid)).permute(3, 0, 1, 2, 4).unbind(1)
    rz_s, h_s = rz.unbind(1), hs.unbind(1)
    for s in range(len(g_s)):
        g_s[s].baddbmm_(h_s[s], w_hh_t)
        torch.sigmoid(prz_s[s], out=rz_s[s])
        n_s[s].addcmul_(r_s[s], ghn_s[s]).tanh_()
        torch.lerp(n_s[s], h_s[s], z_s[s], out=h_s[s + 1])


def _backward_loop(
    d_out: torch.Tensor, z: torch.Tensor, coef: torch.Tensor, dg: torch.Tensor, w_p: torch.Tensor
) -> None:
    """The backward recurrence over ``D`` stacked directions.

    ``d_out [D, T, B, H]`` (output gradients, step order), ``z [T, D, B, H]``,
    ``coef [4, T, D, B, H]``, ``w_p [D, 3H, H]`` (rows ``n, r, z``); writes ``dg [D, T, B, 4H]``.
    """
    nd, t, b, hid = d_out.shape[0], d_out.shape[1], d_out.shape[2], d_out.shape[3]
    dh_buf = [d_out.new_empty((nd, b, hid)), d_out.new_empty((nd, b, hid))]
    dh_col = [dh_buf[0].unsqueeze(0), dh_buf[1].unsqueeze(0)]  # [1, D, B, H]
    do_s, z_s, coef_s = d_out.unbind(1), z.unbind(0), coef.unbind(1)  # coef_s[s]: [4, D, B, H]
    dg_s = dg.view(nd, t, b, 4, hid).permute(1, 3, 0, 2, 4).unbind(0)  # [4, D, B, H] views
    dgh_s = dg[..., : 3 * hid].unbind(1)
    dh_buf[(t - 1) % 2].copy_(do_s[t - 1])
    for s in range(t - 1, -1, -1):
        dh, nxt = s % 2, (s - 1) % 2
        torch.mul(dh_col[dh], coef_s[s], out=dg_s[s])
        if s:
            torch.addcmul(do_s[s - 1], dh_buf[dh], z_s[s], out=dh_buf[nxt])
            dh_buf[nxt].baddbmm_(dgh_s[s], w_p)


def fast_gru_applies(gru: nn.GRU, x: torch.Tensor) -> bool:
    """Whether :class:`BiGRUFunction` computes what ``gru(x)`` computes for this call."""
    return (
        not uses_reference(gru)
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
