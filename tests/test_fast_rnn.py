"""The CPU BiGRU kernel computes what ``nn.GRU`` computes: outputs and every gradient."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from selfcross.models.fast_rnn import fast_gru_applies, gru_forward

TOLERANCES = {torch.float64: (1e-10, 1e-12), torch.float32: (1e-5, 1e-5)}


def _compare(
    seed: int, b: int, t: int, f: int, hidden: int, dtype: torch.dtype, x_grad: bool, strided_grad: bool
) -> None:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    gru = nn.GRU(f, hidden, batch_first=True, bidirectional=True).to(dtype)
    x = torch.randn(b, t, f, dtype=dtype, generator=g).requires_grad_(x_grad)
    rtol, atol = TOLERANCES[dtype]
    ref = gru(x)[0]
    ours = gru_forward(gru, x)
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=atol)
    grad = torch.randn(b, t, 2 * hidden, dtype=dtype, generator=g)
    if strided_grad:  # the gradient reaching the kernel need not be contiguous
        grad = torch.randn(t, b, 2 * hidden, dtype=dtype, generator=g).transpose(0, 1)
    params = [*gru.parameters()] + ([x] if x_grad else [])
    got = torch.autograd.grad(ours, params, grad)
    want = torch.autograd.grad(ref, params, grad)
    for name, a, c in zip([n for n, _ in gru.named_parameters()] + ["x"], got, want):
        torch.testing.assert_close(a, c, rtol=10 * rtol, atol=10 * atol, msg=lambda m, n=name: f"{n}: {m}")


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    b=st.integers(1, 5),
    t=st.integers(1, 9),
    f=st.integers(1, 7),
    hidden=st.integers(1, 6),
    dtype=st.sampled_from([torch.float64, torch.float32]),
    x_grad=st.booleans(),
    strided_grad=st.booleans(),
)
def test_bigru_matches_nn_gru(seed, b, t, f, hidden, dtype, x_grad, strided_grad):
    _compare(seed, b, t, f, hidden, dtype, x_grad, strided_grad)


@pytest.mark.parametrize("b,t", [(1, 1), (1, 7), (6, 1), (3, 2)])
def test_bigru_edge_shapes(b, t):
    for dtype in (torch.float64, torch.float32):
        _compare(0, b, t, 4, 3, dtype, True, False)


def test_bigru_longer_sequence_float32():
    """Rounding does not build up over a longer recurrence (hidden 60 as in the models)."""
    _compare(1, 3, 60, 10, 60, torch.float32, True, False)


def test_bigru_input_without_grad_gets_no_grad():
    gru = nn.GRU(4, 3, batch_first=True, bidirectional=True)
    x = torch.randn(2, 5, 4)
    gru_forward(gru, x).sum().backward()
    assert x.grad is None
    assert all(p.grad is not None for p in gru.parameters())


def test_bigru_applies_only_where_it_matches():
    gru = nn.GRU(4, 3, batch_first=True, bidirectional=True)
    assert fast_gru_applies(gru, torch.randn(2, 5, 4))
    assert not fast_gru_applies(gru, torch.randn(2, 0, 4))
    assert not fast_gru_applies(gru, torch.randn(2, 5, 4, dtype=torch.float16))
    for kwargs in ({"bidirectional": False}, {"num_layers": 2}, {"bias": False}, {"batch_first": False}):
        other = nn.GRU(4, 3, **{"batch_first": True, "bidirectional": True, **kwargs})
        assert not fast_gru_applies(other, torch.randn(2, 5, 4))
        x = torch.randn(2, 5, 4)
        torch.testing.assert_close(gru_forward(other, x), other(x)[0])


@pytest.mark.parametrize("threads", [1, 2])
def test_bigru_thread_count_kept(threads):
    """The loops run on one thread; the caller's thread count is back afterwards."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for dtype, x_grad in ((torch.float64, True), (torch.float32, False)):
            _compare(3, 3, 7, 5, 4, dtype, x_grad, False)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_bigru_frozen_weights_still_give_input_grad():
    gru = nn.GRU(4, 3, batch_first=True, bidirectional=True).double()
    for name, p in gru.named_parameters():
        p.requires_grad_("bias" in name)
    x = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 6, 6, dtype=torch.float64)
    params = [x] + [p for p in gru.parameters() if p.requires_grad]
    got = torch.autograd.grad(gru_forward(gru, x), params, grad)
    want = torch.autograd.grad(gru(x)[0], params, grad)
    for a, c in zip(got, want):
        torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-11)
