"""The pooled attention kernel: the temporal mean of the attention output, exactly.

Checked against ``nn.MultiheadAttention`` followed by the (masked) mean, values and every
gradient, in float64. Dropout is checked against references that do not reuse the kernel's
mask: ``nn.MultiheadAttention``'s eval-mode weights (every kept weight scaled by 1/(1-p)), the
binomial law of the dropped weights (rate p, no mask shared between heads or blocks) and the
expectation over masks (the eval-mode output); its gradients given the mask are checked against
an explicit computation with that mask. Correctness only: timings live in
benchmarks/train_throughput.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from selfcross.models import Attention
from selfcross.models.kernels.pooled_attention import (
    CHUNK_BYTES,
    PooledAttentionWeights,
    chunk_rows,
    dropped_positions,
    pooled_key_weights,
    query_weights,
    sdpa_then_mean,
)


def _case(seed: int, b: int, tq: int, tk: int, heads: int, d: int, self_attn: bool, kmask: bool, qmask: bool):
    g = torch.Generator().manual_seed(seed)
    e = heads * d
    att = Attention(e, heads, dropout=0.0).double()
    with torch.no_grad():
        att.mha.in_proj_bias.normal_(generator=g)
        att.mha.out_proj.bias.normal_(generator=g)
    q = torch.randn(b, tq, e, dtype=torch.float64, generator=g, requires_grad=True)
    s = q if self_attn else torch.randn(b, tk, e, dtype=torch.float64, generator=g, requires_grad=True)

    def lengths_mask(n: int) -> torch.Tensor:
        keep = torch.randint(1, n + 1, (b,), generator=g)  # every row keeps >= 1 step
        return torch.arange(n)[None, :] < keep[:, None]

    key_pad = ~lengths_mask(s.shape[1]) if kmask else None
    query_valid = lengths_mask(tq) if qmask else None
    return att, q, s, key_pad, query_valid


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10**6),
    st.integers(1, 3),
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(1, 3),
    st.integers(1, 4),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_pooled_equals_mean_of_multihead_attention(seed, b, tq, tk, heads, d, self_attn, kmask, qmask, train):
    """Value and all gradients (inputs and parameters) equal the reference's to float64 rounding.

    Without dropout (p = 0), so ``train`` only checks that training mode changes nothing else;
    the dropout path is tested against independent references further down."""
    att, q, s, key_pad, query_valid = _case(seed, b, tq, tk, heads, d, self_attn, kmask, qmask)
    att.train(train)
    grad = torch.randn(b, heads * d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    inputs = [q] if s is q else [q, s]
    params = [*inputs, *att.parameters()]
    results = {}
    for impl in ("fast", "reference"):
        att.impl = impl
        out = att.pooled(q, s, key_pad, query_valid)
        results[impl] = (out, torch.autograd.grad(out, params, grad))
    torch.testing.assert_close(results["fast"][0], results["reference"][0], rtol=1e-10, atol=1e-12)
    for a, c in zip(results["fast"][1], results["reference"][1]):
        torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-11)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**40),
    st.integers(1, 7),
    st.integers(1, 8),
    st.integers(1, 8),
    st.integers(1, 4),
    st.sampled_from([0.1, 0.5]),
    st.integers(1, 7),
    st.booleans(),
)
def test_pooled_dropout_equals_explicit_dropout_with_the_kernels_mask(seed, n, tq, tk, d, p, rows, masked):
    """Given the kernel's own mask: the kernel = ``w^T (softmax(QK^T/sqrt d) * M / (1-p))`` with
    ``M`` zero at block ``i``'s ``dropped_positions(rows*Tq*Tk, p, seed + i)``, value and gradients
    (the hand-written backward). Whether that mask is a right dropout mask is tested below."""
    g = torch.Generator().manual_seed(seed % 2**31)
    q, k = (torch.randn(n, t, d, dtype=torch.float64, generator=g, requires_grad=True) for t in (tq, tk))
    w = torch.rand(n, 1, tq, dtype=torch.float64, generator=g)
    w = w / w.sum(dim=-1, keepdim=True)
    bias = None
    if masked:
        keep_n = torch.randint(1, tk + 1, (n,), generator=g)
        bias = torch.zeros(n, 1, tk, dtype=torch.float64)
        bias.masked_fill_(torch.arange(tk)[None, None, :] >= keep_n[:, None, None], float("-inf"))
    rows = min(rows, n)
    mask = torch.ones(n, tq, tk, dtype=torch.float64)
    for i, start in enumerate(range(0, n, rows)):
        block = mask[start : start + rows]
        block.view(-1)[dropped_positions(block.numel(), p, seed + i)] = 0.0
    ours = PooledAttentionWeights.apply(q, k, bias, w, p, seed, rows)
    scores = q @ k.transpose(1, 2) / math.sqrt(d) + (0 if bias is None else bias)
    want = w @ (torch.softmax(scores, -1) * mask / (1 - p))
    torch.testing.assert_close(ours, want, rtol=1e-10, atol=1e-12)
    go = torch.randn_like(want)
    for a, c in zip(torch.autograd.grad(ours, (q, k), go), torch.autograd.grad(want, (q, k), go)):
        torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-11)


def test_pooled_dropout_is_active_seeded_and_off_in_eval():
    att = Attention(8, 2, dropout=0.5).train()
    x = torch.randn(2, 6, 8)
    draws = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        draws.append(att.pooled(x, x))
    torch.testing.assert_close(draws[0], draws[1])
    assert not torch.allclose(draws[0], draws[2])
    att.eval()
    torch.testing.assert_close(att.pooled(x, x), att.mha(x, x, x, need_weights=False)[0].mean(dim=1))


def test_pooled_saves_no_float_attention_map():
    b, h, t, e = 2, 3, 17, 6
    att = Attention(e, h, dropout=0.1).train()
    x = torch.randn(b, t, e, requires_grad=True)
    saved: list[tuple[int, ...]] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.is_floating_point():
            saved.append(tuple(tensor.shape))
        return tensor

    for impl, expect_map in (("fast", False), ("reference", True)):
        att.impl = impl
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda s: s):
            att.pooled(x, x).sum()
        has_map = any(len(s) >= 2 and s[-2:] == (t, t) and math.prod(s) >= b * h * t * t for s in saved)
        assert has_map == expect_map, impl


def test_query_weights_sum_to_one():
    mask = torch.tensor([[True, True, False], [True, False, False]])
    torch.testing.assert_close(
        query_weights(mask, 2, 3, torch.float64, torch.device("cpu")),
        torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64),
    )
    assert torch.allclose(
        query_weights(None, 2, 4, torch.float32, torch.device("cpu")), torch.full((2, 4), 0.25)
    )


def test_blocks_do_not_change_the_eval_result():
    """Eval mode: any block size gives the same numbers (blocks only bound memory)."""
    g = torch.Generator().manual_seed(0)
    q, k = (torch.randn(6, t, 4, dtype=torch.float64, generator=g) for t in (5, 7))
    w = torch.full((6, 1, 5), 0.2, dtype=torch.float64)
    outs = [
        PooledAttentionWeights.apply(q, k, None, w, 0.0, 0, rows) for rows in (1, 4, chunk_rows(6, 5, 7, 8))
    ]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropped_positions_rate_and_independence(p):
    """Each weight is dropped with probability p, independently of its neighbour (4-sigma bounds)."""
    n = 400_000
    mask = torch.zeros(n, dtype=torch.bool)
    pos = dropped_positions(n, p, seed=12345)
    assert torch.all(pos[1:] > pos[:-1]) and int(pos[0]) >= 0 and int(pos[-1]) < n
    mask[pos] = True
    rate = mask.double().mean().item()
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n)
    both = (mask[1:] & mask[:-1]).double().mean().item()
    assert abs(both - p * p) < 4 * math.sqrt(p * p * (1 - p * p) / n)
    assert torch.equal(pos, dropped_positions(n, p, seed=12345))
    assert not torch.equal(pos[:100], dropped_positions(n, p, seed=12346)[:100])


@pytest.mark.parametrize("p", [0.1, 0.37])
def test_dropped_positions_gaps_are_geometric(p):
    """The gaps between dropped weights follow Geometric(p) (chi-square over the first gaps
    and the tail), so the inversion formula has no off-by-one or scale error."""
    from scipy.stats import chisquare

    pos = dropped_positions(3_000_000, p, seed=777)
    gaps = torch.diff(pos).numpy()
    top = int(np.ceil(np.log(1e-3) / np.log1p(-p)))  # bins 1..top, then the tail
    observed = np.bincount(np.minimum(gaps, top + 1), minlength=top + 2)[1:]
    probs = p * (1 - p) ** np.arange(top)
    expected = np.append(probs, (1 - p) ** top) * gaps.size
    assert chisquare(observed, expected).pvalue > 1e-4


def test_dropped_positions_edges():
    assert dropped_positions(0, 0.1, 1).numel() == 0
    assert dropped_positions(10, 0.0, 1).numel() == 0
    assert torch.equal(dropped_positions(5, 1.0, 1), torch.arange(5))
    for seed in range(50):  # tiny maps: positions stay inside, even with several draws
        pos = dropped_positions(3, 0.9, seed)
        assert pos.numel() == 0 or (int(pos.max()) < 3 and int(pos.min()) >= 0)


def test_accelerator_path_equals_cpu_kernel_without_dropout():
    """The CUDA branch (SDPA then mean) computes the same pooled output; checked here on CPU."""
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 3, t, 4, dtype=torch.float64, generator=g) for t in (6, 7, 7))
    pad = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])
    w = query_weights(torch.tensor([[True] * 6, [True] * 2 + [False] * 4]), 2, 6, torch.float64, q.device)
    got = sdpa_then_mean(q, k, v, pad, w, 0.0)
    scores = q @ k.transpose(-1, -2) / 2.0 + torch.where(pad, float("-inf"), 0.0)[:, None, None, :]
    want = torch.einsum("bhqd,bq->bhd", torch.softmax(scores, -1) @ v, w)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_two_threads_give_the_same_bits_as_one():
    """Blocks spread over Python threads run the same single-threaded ops: identical results."""
    g = torch.Generator().manual_seed(11)
    q, k = (torch.randn(9, t, 4, dtype=torch.float32, generator=g, requires_grad=True) for t in (13, 11))
    w = torch.full((9, 1, 13), 1 / 13)
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        a = PooledAttentionWeights.apply(q, k, None, w, 0.1, 77, 2)
        results.append((a, *torch.autograd.grad(a, (q, k), torch.ones_like(a))))
        assert torch.get_num_threads() == threads
    for one, two in zip(*results):
        assert torch.equal(one, two)



# ----------------------------------------------------------------- dropout, independent references
# The attention weights of ``nn.MultiheadAttention`` in eval mode, the binomial law of the dropped
# weights and the expectation over masks: none of them reuses the kernel's own mask.

P_DROP = 0.3
#: Chance that a correct kernel fails one of the statistical tests below on a new seed.
ALPHA = 1e-6


def _project(mha: nn.MultiheadAttention, x: torch.Tensor, part: int) -> torch.Tensor:
    """``x [B, T, E]`` -> queries (part 0) or keys (part 1) ``[B, h, T, d]``: ``mha``'s input
    projection as PyTorch documents it (rows ``[part*E, (part+1)*E)`` of ``in_proj_weight``)."""
    b, t, e = x.shape
    rows = slice(part * e, (part + 1) * e)
    y = F.linear(x, mha.in_proj_weight[rows], mha.in_proj_bias[rows])
    return y.view(b, t, mha.num_heads, e // mha.num_heads).transpose(1, 2)


def _kernel_attention_maps(mha, x, key_pad, draws: int, seed: int, chunk_bytes: int = CHUNK_BYTES):
    """``[draws, B, h, T, T]``: the attention weights after the kernel's dropout, one fresh
    mask per draw (seeded through torch's generator, as in training).

    The kernel returns only query-weighted sums of its weights; with the query weights one-hot
    at step ``r`` that sum is row ``r`` of the map itself. ``chunk_bytes=1`` makes every
    batch-head a block of its own, with its own block seed.
    """
    torch.manual_seed(seed)
    b, t, _ = x.shape
    q, k = _project(mha, x, 0), _project(mha, x, 1)
    one_hot = torch.eye(t, dtype=x.dtype)
    maps = []
    with torch.no_grad():
        for _ in range(draws):
            rows = [pooled_key_weights(q, k, key_pad, one_hot[r].expand(b, t), P_DROP, True, chunk_bytes)
                    for r in range(t)]
            maps.append(torch.stack(rows, dim=2))
    return torch.stack(maps)


def _dropout_case(seed: int = 0, batch: int = 3, t: int = 6, e: int = 8, heads: int = 2):
    """A float64 ``nn.MultiheadAttention`` (dropout ``P_DROP``), inputs ``[batch, t, e]``, a key
    padding mask (rows keep t, t-2, 1, t, t-2... keys) and its eval-mode weights ``[batch, h, t, t]``."""
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(e, heads, dropout=P_DROP, batch_first=True).double().eval()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
    x = torch.randn(batch, t, e, dtype=torch.float64)
    key_pad = torch.arange(t)[None, :] >= torch.tensor([t, t - 2, 1] * batch)[:batch, None]
    with torch.no_grad():
        _, weights = mha(x, x, x, key_padding_mask=key_pad, need_weights=True, average_attn_weights=False)
    return mha, x, key_pad, weights


def test_dropout_scales_kept_weights_by_one_over_keep_probability():
    """Every weight the kernel keeps is ``nn.MultiheadAttention``'s eval-mode weight / (1 - p);
    the others are exactly 0, and padded keys stay 0."""
    mha, x, key_pad, ref = _dropout_case()
    maps = _kernel_attention_maps(mha, x, key_pad, draws=20, seed=1)
    padded = key_pad[None, :, None, None, :].expand_as(maps)
    assert (ref[~padded[0]] > 1e-12).all()  # so that a 0 below is a dropped weight, not an underflow
    assert (maps[padded] == 0).all()
    kept = maps != 0
    assert kept.sum() < (~padded).sum()  # dropout did drop weights
    want = (ref / (1 - P_DROP)).expand_as(maps)
    torch.testing.assert_close(maps[kept], want[kept], rtol=1e-12, atol=0)


def test_dropout_drops_each_weight_with_probability_p():
    """The number of zeroed (unpadded) weights over many masks is Binomial(n, p): exact
    binomial test (scipy) at ``ALPHA``, and a binomial 99.99 % interval that excludes p +- 0.01."""
    from scipy.stats import binomtest

    mha, x, key_pad, _ = _dropout_case(batch=256)
    maps = _kernel_attention_maps(mha, x, key_pad, draws=20, seed=2)
    valid = ~key_pad[None, :, None, None, :].expand_as(maps)
    n = int(valid.sum())
    dropped = int((maps[valid] == 0).sum())
    result = binomtest(dropped, n, P_DROP)
    assert result.pvalue > ALPHA, (dropped, n)
    low, high = result.proportion_ci(0.9999)
    assert P_DROP - 0.01 < low and high < P_DROP + 0.01  # enough draws to see a wrong p


def test_dropout_masks_are_independent_across_batch_and_heads():
    """A weight and the weight at the same (query, key) of the next batch-head (another block,
    another block seed) are dropped together with probability p^2 (exact binomial test), so no
    mask is shared between heads, batch items or blocks."""
    from scipy.stats import binomtest

    mha, x, _, _ = _dropout_case()
    maps = _kernel_attention_maps(mha, x, None, draws=20, seed=3, chunk_bytes=1)
    zero = (maps == 0).flatten(1, 2)  # [draws, B*h, T, T]
    both = int((zero[:, 1:] & zero[:, :-1]).sum())
    n = zero[:, 1:].numel()
    assert binomtest(both, n, P_DROP**2).pvalue > ALPHA, (both, n)


def test_dropout_output_is_unbiased_over_masks():
    """The mean of the training-mode pooled output over many seeded masks approaches the
    eval-mode ``nn.MultiheadAttention`` output (masked mean over queries): every element
    within the Bonferroni z bound at ``ALPHA`` of its standard error estimated from the draws."""
    from scipy.stats import norm

    att = Attention(8, 2, dropout=P_DROP).double()
    mha, x, key_pad, _ = _dropout_case()
    att.mha.load_state_dict(mha.state_dict())
    source = torch.randn(3, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    key_pad = key_pad[:, :5]
    query_valid = torch.arange(6)[None, :] < torch.tensor([6, 3, 1])[:, None]
    att.eval()
    with torch.no_grad():
        full = att.mha(x, source, source, key_padding_mask=key_pad, need_weights=True)[0]
    w = query_valid[..., None].double()
    want = (full * w).sum(dim=1) / w.sum(dim=1)
    att.train()
    calls, copies = 8, 500  # each call: the batch repeated, every copy with its own mask
    torch.manual_seed(5)
    with torch.no_grad():
        outs = torch.stack([
            att.pooled(*(t.repeat(copies, *[1] * (t.dim() - 1)) for t in (x, source, key_pad, query_valid)))
            .view(copies, *want.shape)
            for _ in range(calls)
        ]).flatten(0, 1)
    assert att.impl == "fast"
    draws = outs.shape[0]
    se = outs.std(dim=0) / math.sqrt(draws)
    assert (se > 0).all()  # every element varies with the mask
    z = (outs.mean(dim=0) - want) / se
    bound = norm.isf(ALPHA / (2 * z.numel()))
    assert z.abs().max() < bound, z
