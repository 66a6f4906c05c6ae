"""Attention followed by its temporal mean, computed as one operation.

Why: the model never uses an attention output ``O [B, Tq, E]`` itself, only its mean over
the query steps (or a masked mean). Because the mean is linear, it moves inside the
attention exactly (not an approximation)::

    sum_q w_q O_q = sum_q w_q (D_q V) W_o^T + b_o = ((w^T D) V) W_o^T + b_o

with ``D = dropout(softmax(Q K^T / sqrt(d)))`` per head and query weights ``w`` (``1/Tq``,
or ``valid / n_valid`` for a masked mean; they sum to 1, which is why the bias passes
through). So the ``[Tq, Tk] x [Tk, d]`` product with ``V`` becomes a ``[1, Tq] x [Tq, Tk]``
weighted column sum, the output projection runs on one vector per head group instead of
``Tq`` rows, and in the backward pass the gradient reaching ``D`` is the rank-one
``w_q c_k`` (``c = V g``), so ``dV`` is an outer product and ``dD``/``dV`` need no
``[Tq, Tk] x [Tk, d]`` matmuls either. Per block of heads the work falls from seven batched
matmuls (forward 2, backward 5) to four (forward 1, backward 3: recomputed scores, ``dQ``,
``dK``). And since ``sum_j a_j V_j = (sum_j a_j x_j) W_v^T + (sum_j a_j) b_v`` for the key
weights ``a = w^T D``, the values never need projecting (see :func:`fast_pooled_mha`).
Dropout (each weight zeroed with probability ``p``, the rest scaled by
``1 / (1 - p)``, as ``nn.MultiheadAttention`` does) is drawn as the positions of the
dropped weights (:func:`dropped_positions`); no floating ``[B, h, T, T]`` tensor is kept.

Backward of the key weights ``a = w^T (P * M) / k`` per head (``P`` = softmax, ``M`` =
keep-mask, ``k = 1 - p``; ``c = dL/da / k``)::

    dP[q, j] = w_q M[q, j] c_j
    dS[q, j] = P[q, j] (dP[q, j] - sum_j' P[q, j'] dP[q, j'])
             = w_q (E[q, j] - P[q, j] delta_q),   E = P * M * c,   delta_q = sum_j E[q, j]
    dQ = dS K / sqrt(d)        dK = dS^T Q / sqrt(d)

Shapes (kernel): ``q [N, Tq, d]``, ``k [N, Tk, d]``, ``bias [N, 1, Tk]`` (0 / -inf),
``w [N, 1, Tq]`` -> ``a [N, 1, Tk]`` with ``N = B * heads``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfcross.models.kernels.threads import run_split

#: Size of one block's ``[n, Tq, Tk]`` scores. Why 1 MiB: a block is walked ~10 times (max,
#: exp2, sums, masks, three matmuls) and should stay in a core's L2 cache; smaller blocks make
#: thinner, slower matmuls (docs/performance.md).
CHUNK_BYTES = 1024**2

#: ``log2(e)``: scores are scaled by it so that the softmax can use ``exp2``.
LOG2E = 1.0 / math.log(2.0)


def chunk_rows(batch_heads: int, tq: int, tk: int, itemsize: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Batch-heads per block so that one ``[n, Tq, Tk]`` block takes about ``chunk_bytes``.

    Why blocks of whole heads (not of query rows): each ``bmm`` then multiplies whole
    ``[Tq, d] x [d, Tk]`` matrices, which BLAS runs much faster than thin row slices, and the
    key gradients of a block need no accumulation across blocks.
    """
    return max(1, min(batch_heads, chunk_bytes // max(1, tq * tk * itemsize)))


def padding_bias(key_padding_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``[B, Tk]`` bool (True = ignore) -> additive ``[B, 1, 1, Tk]`` bias (0 / -inf)."""
    if key_padding_mask is None:
        return None
    bias = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
    bias.masked_fill_(key_padding_mask, float("-inf"))
    return bias[:, None, None, :]


def dropped_positions(n_elements: int, p: float, seed: int) -> torch.Tensor:
    """Sorted flat positions (``int64``) of the weights that dropout zeroes: each of
    ``n_elements`` independently with probability ``p``; a pure function of ``seed``.

    Why positions and not a mask: with ``p = 0.1`` nine weights in ten are kept, so drawing
    the gaps between dropped weights (geometric with parameter ``p``, by inversion of a
    uniform: ``gap = 1 + floor(log(U) / log(1 - p))``) takes a tenth of the random numbers of
    a per-weight mask, and applying it is a scatter over a tenth of the weights.
    ``U = (r + 1) / 2^24`` with ``r`` the low 24 bits of each 32-bit half of numpy's SFC64
    words (the resolution of the uniforms behind ``torch.bernoulli_`` in float32), so that
    ``gap = trunc(1 - 24 ln 2 / log(1-p) + log1p(r) / log(1-p))`` (the argument is >= 1, so
    truncation is the floor): one ``log1p`` and one affine op per gap.
    """
    if p <= 0.0 or n_elements == 0:
        return torch.empty(0, dtype=torch.int64)
    if p >= 1.0:
        return torch.arange(n_elements, dtype=torch.int64)
    bits = np.random.SFC64(seed)
    inv_log_keep = 1.0 / math.log1p(-p)
    offset = torch.tensor(1.0 - 24.0 * math.log(2.0) * inv_log_keep, dtype=torch.float32)
    chunks: list[torch.Tensor] = []
    start = 0
    while True:
        expected = (n_elements - start) * p
        m = int(expected + 6.0 * math.sqrt(expected) + 16)
        r = bits.random_raw((m + 1) // 2).view(np.uint32) & np.uint32(0xFFFFFF)  # m uniforms
        logs = torch.from_numpy(r.view(np.int32)).to(torch.float32).log1p_()
        gaps = torch.add(offset, logs, alpha=inv_log_keep).to(torch.int64)
        gaps[0] += start - 1
        pos = gaps.cumsum_(0)
        chunks.append(pos)
        if int(pos[-1]) >= n_elements - 1:
            break
        start = int(pos[-1]) + 1
    pos = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
    return pos[: int(torch.searchsorted(pos, n_elements))]


class PooledAttentionWeights(torch.autograd.Function):
    """``forward(q, k, bias | None, w, p, seed, rows) -> [N, 1, Tk]``: ``a = w^T D / (1 - p)``.

    ``a_j`` is the weight key ``j`` gets in the query-weighted mean of the attention output
    (``sum_q w_q O_q = sum_j a_j V_j``). ``p`` = attention dropout (0 in eval mode), ``rows``
    = batch-heads per block (blocks bound the memory of the scores). Block ``i`` drops
    :func:`dropped_positions` of its flat ``[rows, Tq, Tk]`` scores drawn with ``seed + i``,
    in the thread that computes the block (so the draw is parallel too); without dropout the
    block size does not change the result.

    The softmax is taken in base 2 (``log2(e)`` folded into the query scaling) because
    ``exp2`` is cheaper than ``exp`` on AVX2 CPUs and gives the same weights to float32
    rounding; forward keeps each row's log-sum-exp so that backward recomputes
    ``P = exp2(S - lse)`` without a second softmax. Saved for backward: ``q, k, w``, the
    log-sum-exps ``[N, Tq, 1]`` and the block-local dropped positions (8 bytes per dropped
    weight); no ``[N, Tq, Tk]`` tensor is kept.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        bias: torch.Tensor | None,
        w: torch.Tensor,
        p: float,
        seed: int,
        rows: int,
    ) -> torch.Tensor:
        n_bh, tq, d = q.shape
        tk = k.shape[1]
        q2 = q.mul(LOG2E / math.sqrt(d))  # scores in base 2
        k_t = k.transpose(1, 2)
        pooled = q.new_empty((n_bh, 1, tk))
        lse = q.new_empty((n_bh, tq, 1))
        blocks = _blocks(n_bh, rows)
        dropped: list[torch.Tensor | None] = [None] * len(blocks)

        def block(i: int) -> None:
            start, stop = blocks[i]
            sl = slice(start, stop)
            attn = torch.bmm(q2[sl], k_t[sl])
            if bias is not None:
                attn.add_(bias[sl])  # cheaper than baddbmm, which first copies the broadcast bias
            top = attn.amax(dim=-1, keepdim=True)
            total = attn.sub_(top).exp2_().sum(dim=-1, keepdim=True)  # attn = P * total
            if p > 0.0:  # drawn here, in the block's thread: block i uses seed + i
                dropped[i] = positions = dropped_positions(attn.numel(), p, seed + i)
                attn.view(-1).index_fill_(0, positions, 0.0)
            # the softmax's division folded into the query weights (one pass less)
            torch.bmm(w[sl] / total.transpose(1, 2), attn, out=pooled[sl])
            torch.add(top, total.log2_(), out=lse[sl])

        run_split(block, len(blocks))
        if p > 0.0:
            pooled.mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(q, k, bias, w, lse)
        ctx.p, ctx.blocks, ctx.dropped = p, blocks, dropped
        return pooled

    @staticmethod
    def backward(ctx: Any, grad_pooled: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        q, k, bias, w, lse = ctx.saved_tensors
        p, blocks, dropped = ctx.p, ctx.blocks, ctx.dropped
        scale = 1.0 / math.sqrt(q.shape[-1])
        c = grad_pooled.contiguous()  # [N, 1, Tk]
        if p > 0.0:
            c = c.mul(1.0 / (1.0 - p))
        q2 = q.mul(LOG2E * scale)
        k_t = k.transpose(1, 2)
        w_col = w.transpose(1, 2)  # [N, Tq, 1]
        qs_w = q * (w_col * scale)  # dK = dS^T Q / sqrt(d), the w_q of dS folded into Q's rows
        dq = torch.empty_like(q)
        dk = torch.empty_like(k)

        def block(i: int) -> None:
            start, stop = blocks[i]
            sl = slice(start, stop)
            attn = torch.bmm(q2[sl], k_t[sl]).sub_(lse[sl])  # S - lse (base 2)
            if bias is not None:
                attn.add_(bias[sl])
            attn.exp2_()  # P
            e = attn * c[sl]  # E = P M c: first P c, then the dropped weights zeroed
            positions = dropped[i]
            if positions is not None and positions.numel():
                e.view(-1).index_fill_(0, positions, 0.0)
            delta = e.sum(dim=-1, keepdim=True)  # [n, Tq, 1]
            ds = e.addcmul_(attn, delta, value=-1.0)  # dS / w_q
            torch.bmm(ds, k[sl], out=dq[sl])
            torch.bmm(ds.transpose(1, 2), qs_w[sl], out=dk[sl])

        run_split(block, len(blocks))
        dq.mul_(w_col).mul_(scale)
        return dq, dk, None, None, None, None, None


def _blocks(n_bh: int, rows: int) -> list[tuple[int, int]]:
    """``(start, stop)`` batch-head ranges of the blocks."""
    return [(s, min(n_bh, s + rows)) for s in range(0, n_bh, rows)]


def query_weights(
    query_mask: torch.Tensor | None, batch: int, tq: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``[B, Tq]`` weights of the temporal mean: ``1/Tq``, or ``mask / mask.sum()`` per row.

    ``query_mask [B, Tq]`` is ``True`` at valid steps (every row needs one).
    """
    if query_mask is None:
        return torch.full((batch, tq), 1.0 / tq, dtype=dtype, device=device)
    w = query_mask.to(dtype)
    return w / w.sum(dim=1, keepdim=True)


def pooled_key_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    weights: torch.Tensor,
    dropout: float,
    training: bool,
    chunk_bytes: int = CHUNK_BYTES,
) -> torch.Tensor:
    """The weight of every key in the ``weights``-mean over queries of the attention output:
    ``q [B, h, Tq, d]``, ``k [B, h, Tk, d]``, ``weights [B, Tq]`` -> ``[B, h, Tk]`` (CPU).

    ``a[b, h] = weights[b] @ dropout(softmax(q k^T / sqrt(d) + mask))`` (dropout only when
    ``training``), so that the pooled output is ``a @ V``.
    """
    p = dropout if training else 0.0
    b, h, tq, d = q.shape
    tk = k.shape[2]
    bias = padding_bias(key_padding_mask, q.dtype)
    seed = int(torch.randint(0, 2**62, (1,), dtype=torch.int64).item()) if p > 0.0 else 0
    rows = chunk_rows(b * h, tq, tk, q.element_size(), chunk_bytes)
    bias3 = None if bias is None else bias.expand(b, h, 1, tk).reshape(b * h, 1, tk)
    w3 = weights[:, None, None, :].expand(b, h, 1, tq).reshape(b * h, 1, tq)
    q3 = q.reshape(b * h, tq, d).contiguous()
    k3 = k.reshape(b * h, tk, d).contiguous()
    pooled = PooledAttentionWeights.apply(q3, k3, bias3, w3, p, seed, rows)
    return pooled.view(b, h, tk)


def fast_pooled_mha(
    mha: nn.MultiheadAttention,
    query: torch.Tensor,
    source: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    query_mask: torch.Tensor | None,
    chunk_bytes: int = CHUNK_BYTES,
) -> torch.Tensor:
    """What ``mha(query, source, source, key_padding_mask)[0]`` averaged over the query steps
    computes (the mean over ``query_mask``'s valid steps when given): ``[B, Tq, E]``,
    ``[B, Tk, E]`` -> ``[B, E]``. Uses ``mha``'s parameters, ``mha.dropout`` and ``mha.training``.

    On CPU the values are never projected: ``sum_j a_j V_j = (sum_j a_j x_j) W_v^T +
    (sum_j a_j) b_v`` per head, so the value projection of all ``Tk`` source steps becomes one
    of a single weighted source vector per head. On CUDA: PyTorch's SDPA (fused, with
    dropout, its own random stream) then the weighted mean.
    """
    b, tq, e = query.shape
    tk = source.shape[1]
    h = mha.num_heads
    d = e // h
    w_in, b_in = mha.in_proj_weight, mha.in_proj_bias
    b_q, b_k, b_v = (None, None, None) if b_in is None else b_in.split(e)
    if query is source:
        q, k = F.linear(query, w_in[: 2 * e], None if b_in is None else b_in[: 2 * e]).split(e, dim=-1)
    else:
        q = F.linear(query, w_in[:e], b_q)
        k = F.linear(source, w_in[e : 2 * e], b_k)
    q = q.reshape(b, tq, h, d).transpose(1, 2)
    k = k.reshape(b, tk, h, d).transpose(1, 2)
    if key_padding_mask is not None and key_padding_mask.dtype != torch.bool:
        key_padding_mask = key_padding_mask.to(torch.bool)
    weights = query_weights(query_mask, b, tq, q.dtype, q.device)
    p = float(mha.dropout)
    if query.device.type == "cpu":
        a = pooled_key_weights(q, k, key_padding_mask, weights, p, mha.training, chunk_bytes)  # [B, h, Tk]
        mixed = torch.bmm(a, source)  # [B, h, E]: the a-weighted source vector of each head
        o = torch.einsum("bhe,hde->bhd", mixed, w_in[2 * e :].view(h, d, e))
        if b_v is not None:
            o = o + a.sum(dim=-1, keepdim=True) * b_v.view(h, d)
    else:
        v = F.linear(source, w_in[2 * e :], b_v).reshape(b, tk, h, d).transpose(1, 2)
        o = sdpa_then_mean(q, k, v, key_padding_mask, weights, p if mha.training else 0.0)
    return F.linear(o.reshape(b, e), mha.out_proj.weight, mha.out_proj.bias)


def sdpa_then_mean(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    weights: torch.Tensor,
    dropout: float,
) -> torch.Tensor:
    """The accelerator path: fused SDPA (its own dropout) then the ``weights``-mean over queries.
    ``q [B,h,Tq,d]``, ``k, v [B,h,Tk,d]``, ``weights [B, Tq]`` -> ``[B, h, d]``."""
    bias = padding_bias(key_padding_mask, q.dtype)
    full = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
    return torch.einsum("bhqd,bq->bhd", full, weights)
