"""The CPU BiGRU kernel computes what ``nn.GRU`` computes: outputs and every gradient."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from selfcross.models.kernels import gru as fast_rnn
from selfcross.models.kernels.gru import fast_gru_applies, gru_forward

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


def _out_and_grads(gru: nn.GRU, x: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
    out = gru_forward(gru, x)
    return [out.detach(), *torch.autograd.grad(out, [*gru.parameters(), x], grad)]


def _gru_case(seed: int = 5) -> tuple[nn.GRU, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    gru = nn.GRU(7, 12, batch_first=True, bidirectional=True)
    x = torch.randn(4, 23, 7, requires_grad=True)
    return gru, x, torch.randn(4, 23, 24)


def test_bigru_two_threads_give_the_same_bits(monkeypatch):
    """Two threads run the two directions at once; each direction's ops are the same."""
    gru, x, grad = _gru_case()
    one = _out_and_grads(gru, x, grad)
    splits = []

    def counting_run_split(fn, n_items, threads=None):
        splits.append((n_items, threads))
        fast_rnn.run_split.__wrapped__(fn, n_items, threads)

    counting_run_split.__wrapped__ = fast_rnn.run_split
    monkeypatch.setattr(fast_rnn, "run_split", counting_run_split)
    monkeypatch.setattr(fast_rnn, "SPLIT_MIN_STEPS", x.shape[1])  # this short sequence splits too
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = _out_and_grads(gru, x, grad)
    finally:
        torch.set_num_threads(before)
    assert splits == [(2, 2)] * 3  # forward (layout, loops) and backward ran on two threads
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_bigru_scripted_loops_equal_python_loops(monkeypatch):
    """The TorchScript loops compute exactly what the Python functions they compile do."""
    assert not isinstance(fast_rnn._loops()[0], type(fast_rnn._forward_loop))  # really scripted here
    gru, x, grad = _gru_case(6)
    scripted = _out_and_grads(gru, x, grad)
    monkeypatch.setitem(fast_rnn._SCRIPTED, "forward", fast_rnn._forward_loop)
    monkeypatch.setitem(fast_rnn._SCRIPTED, "backward", fast_rnn._backward_loop)
    python = _out_and_grads(gru, x, grad)
    for a, b in zip(scripted, python):
        assert torch.equal(a, b)


def test_bigru_without_torchscript_warns_and_runs_python_loops(monkeypatch, caplog):
    def refuse(fn):
        raise RuntimeError("no TorchScript in this build")

    monkeypatch.setattr(fast_rnn, "_SCRIPTED", {})
    monkeypatch.setattr(torch.jit, "script", refuse)
    with caplog.at_level("WARNING", logger="selfcross.models.kernels.gru"):
        loops = fast_rnn._loops()
    assert loops == (fast_rnn._forward_loop, fast_rnn._backward_loop)
    assert "no TorchScript in this build" in caplog.text
    _compare(2, 3, 6, 4, 5, torch.float64, True, False)


def test_bigru_two_threads_under_inference_mode(monkeypatch):
    """Prediction runs under ``torch.inference_mode``; the direction threads follow it."""
    gru, x, _ = _gru_case(7)
    with torch.no_grad():
        want = gru(x)[0]
    monkeypatch.setattr(fast_rnn, "SPLIT_MIN_STEPS", 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch.inference_mode():
            got = gru_forward(gru, x.detach())
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_bigru_scripting_shows_no_deprecation_notice(monkeypatch):
    """``torch.jit.script``'s deprecation warning (Deprecation- or FutureWarning, by torch
    version) is an implementation detail and must not reach users of the model."""
    import warnings

    monkeypatch.setattr(fast_rnn, "_SCRIPTED", {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fwd, bwd = fast_rnn._loops()
    # the scripted path ran (the Python fallback would show no notice either)
    assert isinstance(fwd, torch.jit.ScriptFunction) and isinstance(bwd, torch.jit.ScriptFunction)
    assert not [w for w in caught if "torch.jit.script" in str(w.message)]


def test_bigru_without_torchscript_runs_the_python_loops_and_says_so(monkeypatch, caplog):
    def no_script(fn):
        raise RuntimeError("TorchScript removed")

    monkeypatch.setattr(fast_rnn, "_SCRIPTED", {})
    monkeypatch.setattr(torch.jit, "script", no_script)
    caplog.set_level("WARNING", logger=fast_rnn._LOG.name)
    assert fast_rnn._loops() == (fast_rnn._forward_loop, fast_rnn._backward_loop)
    assert "TorchScript unavailable (TorchScript removed)" in caplog.text
    monkeypatch.setattr(fast_rnn, "_SCRIPTED", {})
    _compare(3, 2, 5, 4, 3, torch.float64, True, False)  # the Python loops give the same results
