"""Multi-head attention kernels for :class:`selfcross.models.Attention` (the hot spot).

Why this module exists (issue 8): the model's attention has dropout 0.1 on its weights
during training. On CPU, PyTorch's fused scaled-dot-product kernel refuses dropout, so
``nn.MultiheadAttention`` falls back to the "math" path that builds the whole attention map
``[B, heads, Tq, Tk]`` (audio self-attention: ``[32, 6, 500, 500]`` = 192 MB in float32),
keeps it, its softmax and its dropout mask alive for backward, and walks over them many
times. Here the map only ever exists one query chunk at a time.

Three kernels, chosen by :func:`attention_core`:

- ``sdpa``: ``F.scaled_dot_product_attention`` - used whenever no CPU dropout is needed
  (eval mode, dropout 0, or CUDA, whose fused kernels do support dropout). Never builds
  the map on CPU (flash kernel) and saves only ``[B, h, Tq]`` log-sum-exps for backward.
- ``chunked``: :class:`ChunkedDropoutAttention`, a custom autograd function for CPU
  training with dropout. Forward: per block ``c`` of whole batch-heads (about 4 MB of
  scores), ``P_c = softmax(q_c k_c^T / sqrt(d))``, a keep-mask ``M_c`` (32-bit integers
  from numpy's SFC64 seeded with ``seed + c``, compared with ``keep * 2^32``),
  ``O_c = (P_c * M_c) v_c / (1 - p)``. Saved: ``q, k, v, O`` and the 1-byte masks
  ``M`` (no floating ``[N, Tq, Tk]`` tensor); backward recomputes ``P_c`` block by block
  (flash-attention style: ``dS = P * (dP - rowsum(dO * O))``). It computes exactly the
  model's function: each attention weight is zeroed with probability ``p`` and the rest
  scaled by ``1/(1-p)``, as ``nn.MultiheadAttention`` does; only the random stream
  differs (statistically identical, not bitwise). The seed is drawn from torch's global
  generator, so a seeded run is reproducible.
- ``reference``: ``nn.MultiheadAttention(..., need_weights=True)``, what the authors' code
  calls (weights computed, averaged over heads, then thrown away). Used only to benchmark
  and check the authors' computation; select it with :func:`set_attention_impl`.

Shapes: ``q [B, h, Tq, d]``, ``k, v [B, h, Tk, d]``, ``key_padding_mask [B, Tk]`` (True =
ignore) -> ``[B, h, Tq, d]`` (the chunked kernel works on ``[B * h, T, d]``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Attention implementations selectable per :class:`~selfcross.models.Attention` module.
ATTENTION_IMPLS: tuple[str, ...] = ("fast", "reference")

#: Target size in bytes of one block's ``[n, Tq, Tk]`` score tensor (cache-sized).
DEFAULT_CHUNK_BYTES = 4 * 1024**2


def chunk_rows(
    batch_heads: int, tq: int, tk: int, itemsize: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> int:
    """Batch-heads per block so that one ``[n, Tq, Tk]`` block takes about ``chunk_bytes``.

    Why blocks of whole heads (not of query rows): each ``bmm`` then multiplies
    ``[Tq, d] x [d, Tk]`` matrices (d = 20 at paper shapes), which CPU BLAS runs ~3x
    faster than many thin ``[10, d]`` row slices (measured), and ``dK``, ``dV`` of a block
    need no accumulation across blocks.
    """
    return max(1, min(batch_heads, chunk_bytes // max(1, tq * tk * itemsize)))


def _keep_mask(shape: torch.Size, keep: float, seed: int) -> torch.Tensor:
    """Bool mask of ``shape``, ``True`` (= kept) with probability ``keep``; a pure function
    of ``seed``.

    Why numpy's SFC64 instead of torch's CPU generator: one 64-bit draw gives two 32-bit
    decisions, and SFC64 fills ~48 M decisions in ~0.1 s on this CPU where torch's
    ``int32.random_`` (mt19937) takes ~0.3 s and ``bernoulli_`` ~0.5 s (measured). Each
    decision compares a uniform 32-bit integer with ``keep * 2^32`` (resolution 2^-32).
    """
    n = math.prod(shape)
    raw = np.random.SFC64(seed).random_raw((n + 1) // 2)  # uint64, 2 decisions each
    bits = torch.from_numpy(raw.view(np.int32)[:n])  # uniform on [-2^31, 2^31)
    return (bits < int(round(keep * 2**32)) - 2**31).view(shape)


def _drop_mask(shape: torch.Size, keep: float, seed: int) -> torch.Tensor:
    """``~_keep_mask(...)``: ``True`` = dropped (probability ``1 - keep``)."""
    return ~_keep_mask(shape, keep, seed)


def _scores(q_c: torch.Tensor, k_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``softmax(q_c k^T + bias)`` for one block: ``q_c [n, Tq, d]`` (pre-scaled),
    ``k_t [n, d, Tk]`` (a transposed view: BLAS reads it in place, measured ~2x faster
    than a contiguous copy at d = 20), ``bias [n, 1, Tk]`` -> ``[n, Tq, Tk]``."""
    s = torch.bmm(q_c, k_t) if bias is None else torch.baddbmm(bias, q_c, k_t)
    return torch.softmax(s, dim=-1)


class ChunkedDropoutAttention(torch.autograd.Function):
    """Attention with dropout on the weights, computed and differentiated per block of heads.

    ``forward(q [N,Tq,d], k [N,Tk,d], v [N,Tk,d], bias [N,1,Tk] | None, p, seed, rows)
    -> [N,Tq,d]`` with ``N = B * heads``. ``bias`` is 0 / -inf (key padding). ``rows`` =
    batch-heads per block; block ``c`` (rows ``c*rows ..``) draws its mask with seed
    ``seed + c``. Saved for backward: ``q, k, v, out`` and the bool keep-mask
    ``[N, Tq, Tk]`` (1 byte per weight: 48 MB for the paper's audio self-attention at
    batch 32, cheaper than drawing it again); no floating ``[N, Tq, Tk]`` tensor.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        bias: torch.Tensor | None,
        p: float,
        seed: int,
        rows: int,
    ) -> torch.Tensor:
        keep = 1.0 - p
        n_bh, tq, _ = q.shape
        qs = q.mul(1.0 / math.sqrt(q.shape[-1]))
        k_t = k.transpose(1, 2)
        out = torch.empty_like(qs)
        keeps = torch.empty((n_bh, tq, k.shape[1]), dtype=torch.bool)
        for c, start in enumerate(range(0, n_bh, rows)):
            sl = slice(start, min(n_bh, start + rows))
            attn = _scores(qs[sl], k_t[sl], None if bias is None else bias[sl])
            keeps[sl] = _keep_mask(attn.shape, keep, seed + c)
            # multiplying by a 0/1 float block is ~3x cheaper than masked_fill_ (measured)
            attn.mul_(keeps[sl].to(attn.dtype))
            torch.bmm(attn, v[sl], out=out[sl])
        out.mul_(1.0 / keep)
        ctx.save_for_backward(q, k, v, out, bias, keeps)
        ctx.p, ctx.rows = p, rows
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        q, k, v, out, bias, keeps = ctx.saved_tensors
        p, rows = ctx.p, ctx.rows
        keep = 1.0 - p
        scale = 1.0 / math.sqrt(q.shape[-1])
        qs = q.mul(scale)
        k_t = k.transpose(1, 2)
        v_t = v.transpose(1, 2)
        go = grad_out.contiguous()
        # Delta_i = sum_j dO_ij * O_ij = sum_j dD_ij * D_ij  (D = dropped, rescaled weights)
        delta = (go * out).sum(dim=-1, keepdim=True)
        go_scaled = go.mul(1.0 / keep)
        dq = torch.empty_like(q)
        dk = torch.empty_like(k)
        dv = torch.empty_like(v)
        n_bh = q.shape[0]
        for start in range(0, n_bh, rows):
            sl = slice(start, min(n_bh, start + rows))
            attn = _scores(qs[sl], k_t[sl], None if bias is None else bias[sl])  # P [n, Tq, Tk]
            m = keeps[sl].to(attn.dtype)
            g_c = go_scaled[sl]  # [n, Tq, d]
            torch.bmm((attn * m).transpose(1, 2), g_c, out=dv[sl])  # (P*M)^T dO / keep
            dp = torch.bmm(g_c, v_t[sl]).mul_(m)  # dL/dP
            ds = dp.sub_(delta[sl]).mul_(attn)  # softmax backward
            torch.bmm(ds, k[sl], out=dq[sl])
            torch.bmm(ds.transpose(1, 2), qs[sl], out=dk[sl])
        dq.mul_(scale)
        return dq, dk, dv, None, None, None, None


def _padding_bias(key_padding_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``[B, Tk]`` bool (True = ignore) -> additive ``[B, 1, 1, Tk]`` bias (0 / -inf) for SDPA."""
    if key_padding_mask is None:
        return None
    bias = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
    bias.masked_fill_(key_padding_mask, float("-inf"))
    return bias[:, None, None, :]


def attention_core(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    dropout: float,
    training: bool,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> torch.Tensor:
    """Scaled dot-product attention over heads: ``q [B,h,Tq,d]``, ``k, v [B,h,Tk,d]`` -> ``[B,h,Tq,d]``.

    Picks the chunked CPU kernel when dropout is active on CPU, else PyTorch's SDPA.
    """
    p = dropout if training else 0.0
    bias = _padding_bias(key_padding_mask, q.dtype)
    if p > 0.0 and q.device.type == "cpu":
        b, h, tq, d = q.shape
        tk = k.shape[2]
        seed = int(torch.randint(0, 2**62, (1,), dtype=torch.int64).item())
        rows = chunk_rows(b * h, tq, tk, q.element_size(), chunk_bytes)
        bias3 = None if bias is None else bias.expand(b, h, 1, tk).reshape(b * h, 1, tk)
        out = ChunkedDropoutAttention.apply(
            q.reshape(b * h, tq, d).contiguous(),
            k.reshape(b * h, tk, d).contiguous(),
            v.reshape(b * h, tk, d).contiguous(),
            bias3,
            p,
            seed,
            rows,
        )
        return out.view(b, h, tq, d)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)


def fast_mha(
    mha: nn.MultiheadAttention,
    query: torch.Tensor,
    source: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> torch.Tensor:
    """What ``mha(query, source, source, key_padding_mask, need_weights=False)[0]`` computes.

    Uses ``mha``'s own parameters (``in_proj_weight [3E, E]``, ``in_proj_bias [3E]``,
    ``out_proj``) and ``mha.dropout`` / ``mha.training`` at call time, so switching dropout
    off on the module (as the parity tests do) is honoured. ``query [B, Tq, E]`` (batch
    first), ``source [B, Tk, E]`` -> ``[B, Tq, E]``.
    """
    b, tq, e = query.shape
    tk = source.shape[1]
    h = mha.num_heads
    d = e // h
    w, bias = mha.in_proj_weight, mha.in_proj_bias
    if query is source:
        qkv = F.linear(query, w, bias)
        q, k, v = qkv.split(e, dim=-1)
    else:
        q = F.linear(query, w[:e], None if bias is None else bias[:e])
        k, v = F.linear(source, w[e:], None if bias is None else bias[e:]).split(e, dim=-1)
    q = q.reshape(b, tq, h, d).transpose(1, 2)
    k = k.reshape(b, tk, h, d).transpose(1, 2)
    v = v.reshape(b, tk, h, d).transpose(1, 2)
    if key_padding_mask is not None and key_padding_mask.dtype != torch.bool:
        key_padding_mask = key_padding_mask.to(torch.bool)
    o = attention_core(q, k, v, key_padding_mask, float(mha.dropout), mha.training, chunk_bytes)
    o = o.transpose(1, 2).reshape(b, tq, e)
    return F.linear(o, mha.out_proj.weight, mha.out_proj.bias)


def set_attention_impl(model: nn.Module, impl: str) -> int:
    """Set the kernel of every :class:`~selfcross.models.Attention` in ``model``; returns how many.

    ``fast`` (default) or ``reference`` (``nn.MultiheadAttention`` with ``need_weights=True``,
    the authors' computation). Raises :class:`~selfcross.errors.ConfigError` for other names.
    """
    from selfcross.errors import ConfigError
    from selfcross.models.attention import Attention

    if impl not in ATTENTION_IMPLS:
        raise ConfigError(f"attention implementation {impl!r} is not one of {', '.join(ATTENTION_IMPLS)}")
    n = 0
    for module in model.modules():
        if isinstance(module, Attention):
            module.impl = impl
            n += 1
    return n
