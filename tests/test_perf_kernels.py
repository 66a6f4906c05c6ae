"""Fast kernels: same function as PyTorch's modules, no [B, h, T, T] kept alive.

Correctness only: no timing assertions (timings live in benchmarks/train_throughput.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from selfcross.errors import ConfigError
from selfcross.models.kernels import gru_forward, set_kernels
from selfcross.models.kernels.pooled_attention import chunk_rows
from selfcross.serve.compat import from_reference

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reference"


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 10_000), st.integers(1, 600), st.integers(1, 600), st.sampled_from([4, 8]))
def test_chunk_rows_bounds(n, tq, tk, itemsize):
    """Blocks hold at least one head, never more than all, and stay near the byte budget."""
    rows = chunk_rows(n, tq, tk, itemsize, chunk_bytes=1 << 20)
    assert 1 <= rows <= n
    assert rows == 1 or rows * tq * tk * itemsize <= 1 << 20




def test_bigru_falls_back_where_it_does_not_apply():
    gru = nn.GRU(3, 2, batch_first=True, bidirectional=False)
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(gru_forward(gru, x), gru(x)[0])
    gru2 = nn.GRU(3, 2, batch_first=True, bidirectional=True)
    set_kernels(gru2, "reference")
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
