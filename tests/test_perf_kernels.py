"""Fast kernels (issue 8): same function as PyTorch's modules, no [B, h, T, T] kept alive.

Correctness only: no timing assertions (timings live in benchmarks/train_throughput.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from selfcross.compat import from_reference
from selfcross.errors import ConfigError
from selfcross.models import Attention
from selfcross.models.fast_attention import (
    ChunkedDropoutAttention,
    _drop_mask,
    _keep_mask,
    chunk_rows,
    fast_mha,
)
from selfcross.models.fast_rnn import gru_forward
from selfcross.models.kernels import set_kernels

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reference"


def _mha_case(seed: int, b: int, tq: int, tk: int, heads: int, d: int, self_attn: bool, masked: bool):
    g = torch.Generator().manual_seed(seed)
    e = heads * d
    mha = nn.MultiheadAttention(e, heads, dropout=0.0, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_bias.normal_(generator=g)
        mha.out_proj.bias.normal_(generator=g)
    q = torch.randn(b, tq, e, dtype=torch.float64, generator=g)
    s = q if self_attn else torch.randn(b, tk, e, dtype=torch.float64, generator=g)
    mask = None
    if masked:
        n = s.shape[1]
        keep = torch.randint(1, n + 1, (b,), generator=g)  # every row keeps >= 1 key
        mask = torch.arange(n)[None, :] >= keep[:, None]
    return mha, q, s, mask


shapes = st.tuples(
    st.integers(0, 10**6),  # seed
    st.integers(1, 3),  # batch
    st.integers(1, 9),  # Tq
    st.integers(1, 9),  # Tk
    st.integers(1, 3),  # heads
    st.integers(1, 4),  # head dim
    st.booleans(),  # self-attention (query is source)
    st.booleans(),  # key-padding mask
)


@settings(max_examples=40, deadline=None)
@given(shapes, st.booleans())
def test_fast_mha_equals_multihead_attention(case, train):
    """Eval mode, and train mode with dropout 0: same outputs and gradients as nn.MHA."""
    mha, q, s, mask = _mha_case(*case)
    mha.train(train)
    q = q.clone().requires_grad_()
    s = q if case[6] else s.clone().requires_grad_()
    ref = mha(q, s, s, key_padding_mask=mask, need_weights=False)[0]
    ours = fast_mha(mha, q, s, mask)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    g = torch.randn_like(ref)
    inputs = [q] if case[6] else [q, s]
    params = [mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias]
    g_ref = torch.autograd.grad(ref, inputs + params, g)
    g_ours = torch.autograd.grad(ours, inputs + params, g)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@settings(max_examples=15, deadline=None)
@given(shapes)
def test_fast_mha_float32_matches_float64_reference(case):
    mha, q, s, mask = _mha_case(*case)
    mha.eval()
    ref = mha(q, s, s, key_padding_mask=mask, need_weights=False)[0]
    m32 = mha.float()
    q32 = q.float()
    ours = fast_mha(m32, q32, q32 if case[6] else s.float(), mask)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10**6), st.integers(1, 7), st.integers(1, 9), st.integers(1, 9), st.integers(1, 5),
    st.floats(0.05, 0.9), st.integers(1, 4), st.booleans(),
)
def test_chunked_dropout_equals_explicit_dropout(seed, n, tq, tk, d, p, rows, masked):
    """Forward and backward equal softmax -> (mask / keep) -> @ v with the kernel's own masks."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, t, d, dtype=torch.float64, generator=g).requires_grad_() for t in (tq, tk, tk))
    bias = None
    if masked:
        keep_n = torch.randint(1, tk + 1, (n,), generator=g)
        bias = torch.zeros(n, 1, tk, dtype=torch.float64)
        bias.masked_fill_(torch.arange(tk)[None, None, :] >= keep_n[:, None, None], float("-inf"))
    out = ChunkedDropoutAttention.apply(q, k, v, bias, p, seed, rows)
    scores = q @ k.transpose(1, 2) / math.sqrt(d)
    attn = torch.softmax(scores if bias is None else scores + bias, dim=-1)
    keep_mask = torch.cat(  # block c = batch-heads c*rows.. with seed + c
        [_keep_mask(attn[s : s + rows].shape, 1 - p, seed + c) for c, s in enumerate(range(0, n, rows))],
        dim=0,
    )
    ref = (attn * keep_mask / (1 - p)) @ v
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    grad = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), grad), torch.autograd.grad(ref, (q, k, v), grad)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_dropout_rate_and_independence():
    """Each weight is dropped with probability p; chunks (seeds) give different masks."""
    a = _drop_mask(torch.Size([200_000]), 0.9, 7)
    b = _drop_mask(torch.Size([200_000]), 0.9, 8)
    sigma = math.sqrt(0.1 * 0.9 / a.numel())
    assert abs(a.float().mean().item() - 0.1) < 5 * sigma
    assert abs((a & b).float().mean().item() - 0.01) < 5 * math.sqrt(0.01 * 0.99 / a.numel())
    assert torch.equal(a, _drop_mask(torch.Size([200_000]), 0.9, 7))
    assert torch.equal(~a, _keep_mask(torch.Size([200_000]), 0.9, 7))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 10_000), st.integers(1, 600), st.integers(1, 600), st.sampled_from([4, 8]))
def test_chunk_rows_bounds(n, tq, tk, itemsize):
    """Blocks hold at least one head, never more than all, and stay near the byte budget."""
    rows = chunk_rows(n, tq, tk, itemsize, chunk_bytes=1 << 20)
    assert 1 <= rows <= n
    assert rows == 1 or rows * tq * tk * itemsize <= 1 << 20


def test_keep_mask_odd_sizes_and_shape():
    """Odd element counts (two decisions per 64-bit draw) still give the requested shape."""
    m = _keep_mask(torch.Size([3, 5, 7]), 0.5, 1)
    assert m.shape == (3, 5, 7) and m.dtype == torch.bool
    assert torch.equal(m.flatten(), _keep_mask(torch.Size([105]), 0.5, 1))


def test_training_dropout_is_active_and_seeded():
    att = Attention(8, 2, dropout=0.5).train()
    x = torch.randn(2, 6, 8)
    torch.manual_seed(3)
    a = att(x, x)
    torch.manual_seed(3)
    b = att(x, x)
    torch.manual_seed(4)
    c = att(x, x)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    att.eval()
    torch.testing.assert_close(att(x, x), att.mha(x, x, x, need_weights=False)[0])


def _saved_shapes(fn) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            shapes.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return shapes


@pytest.mark.parametrize("dropout", [0.1, 0.0])
def test_no_attention_map_saved_for_backward(dropout):
    """Default path: no floating tensor of [B, h, T, T] (or [B*h, T, T]) size is kept for
    backward (the 1-byte dropout keep-mask is allowed: it is no attention weight tensor).

    The reference path (need_weights=True) does keep one: that is what the test can detect.
    """
    b, h, t, e = 2, 3, 17, 6
    att = Attention(e, h, dropout=dropout).train()
    x = torch.randn(b, t, e, requires_grad=True)
    big = b * h * t * t

    def too_big(shapes):
        return [s for s in shapes if math.prod(s) >= big and len(s) >= 2 and s[-2:] == (t, t)]

    assert too_big(_saved_shapes(lambda: att(x, x).sum())) == []
    att.impl = "reference"
    assert too_big(_saved_shapes(lambda: att(x, x).sum())) != []


def test_bigru_falls_back_where_it_does_not_apply():
    gru = nn.GRU(3, 2, batch_first=True, bidirectional=False)
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(gru_forward(gru, x), gru(x)[0])
    gru2 = nn.GRU(3, 2, batch_first=True, bidirectional=True)
    gru2.selfcross_reference = True
    torch.testing.assert_close(gru_forward(gru2, x), gru2(x)[0])


def test_set_kernels_rejects_unknown_names():
    with pytest.raises(ConfigError, match="not one of"):
        set_kernels(nn.Linear(2, 2), "turbo")


needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "self_io.npz").is_file(), reason=f"parity fixtures not found at {FIXTURES}"
)


@needs_fixtures
@pytest.mark.parametrize("kind", ["self", "cross"])
def test_fast_float32_logits_match_authors_float64(kind):
    """Eval mode stays exact: fast float32 logits = their float64 logits to float32 rounding."""
    sd = torch.load(FIXTURES / f"{kind}_state_dict.pt", weights_only=True)
    with np.load(FIXTURES / f"{kind}_io.npz") as z:
        arrays = {k: z[k] for k in ("audio", "video", "text", "logits_f64")}
    want = arrays["logits_f64"]
    for impl, dtype, tol in (("fast", torch.float32, 1e-4), ("fast", torch.float64, 1e-10),
                             ("reference", torch.float64, 1e-10)):
        model = set_kernels(from_reference(sd, kind, dtype=dtype), impl)
        with torch.inference_mode():
            got = model(**{m: torch.from_numpy(arrays[m]) for m in ("audio", "video", "text")})
        rel = np.abs(got.double().numpy() - want).max() / np.abs(want).max()
        assert rel < tol, (impl, dtype, rel)


def test_gru_kernel_restores_thread_setting():
    """The per-step loop runs on one thread; the caller's thread count is restored afterwards."""
    before = torch.get_num_threads()
    gru = nn.GRU(3, 4, batch_first=True, bidirectional=True)
    x = torch.randn(2, 5, 3, requires_grad=True)
    try:
        torch.set_num_threads(2)
        gru_forward(gru, x).sum().backward()
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError):
            gru_forward(gru, torch.randn(2, 5, 7))  # wrong feature size
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
