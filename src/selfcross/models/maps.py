"""Attention maps of a fusion model: the weights every block puts on every key.

Why a module of its own: the fast pooled-attention kernel (what the model runs) computes the
temporal mean of each block's output without ever building the ``[Tq, Tk]`` weights. The
maps are therefore recomputed here through the reference path, ``nn.MultiheadAttention``
with ``need_weights=True`` and the block's own parameters and masks.

What a map means: the model uses only the mean over (valid) queries of a block's output,
and that output is linear in the weights, so the block's pooled vector is exactly
``out_proj(concat_h(sum_k received[h, k] * V_h[k]))`` where ``received[h, k]`` is the mean
over queries of the weights key ``k`` receives in head ``h``
(:func:`pooled_from_received` computes it; the tests check it against the model).

Time-mixing branches (audio and video in the paper) attend over the *outputs of a 1x1
convolution over time*: key ``j`` is a learned weighted sum of all input frames, then a
BiGRU step. :func:`project_to_frames` maps weights on those mixed positions back onto input
frames through the convolution's weights (the GRU in between is not inverted).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class BlockMaps:
    """The attention of one block for a batch.

    Attributes:
        name, target, source: the block (see :func:`selfcross.models.model.attention_pairs`).
        weights: ``[B, H, Tq, Tk]`` per-head weights (each row sums to 1 over keys).
        query_valid: ``[B, Tq]`` bool, the queries the model averages over.
        key_valid: ``[B, Tk]`` bool, the keys the softmax may use.
        received: ``[B, H, Tk]`` the weight each key receives, averaged over valid queries.
    """

    name: str
    target: str
    source: str
    weights: torch.Tensor
    query_valid: torch.Tensor
    key_valid: torch.Tensor
    received: torch.Tensor


def _valid(mask: torch.Tensor | None, batch: int, steps: int, device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    return mask


@torch.no_grad()
def attention_maps(
    model: nn.Module,
    audio: torch.Tensor | None = None,
    video: torch.Tensor | None = None,
    text: torch.Tensor | None = None,
    lengths: dict[str, torch.Tensor] | None = None,
) -> list[BlockMaps]:
    """Per-head attention weights of every block of a :class:`FusionModel`, in stacking order.

    Inputs are those of the model's ``forward`` (standardized arrays ``[B, T, F]``). The model
    should be in eval mode (attention dropout would make the weights random).
    """
    encoded, key_masks, mean_masks = model.attention_inputs(audio, video, text, lengths)
    maps = []
    for name, target, source in model.pairs:
        mha = model.attentions[name].mha
        q, kv = encoded[target], encoded[source]
        _, weights = mha(
            q, kv, kv, key_padding_mask=key_masks[source], need_weights=True, average_attn_weights=False
        )
        batch, tq, tk = q.shape[0], q.shape[1], kv.shape[1]
        query_valid = _valid(mean_masks[target], batch, tq, q.device)
        key_mask = key_masks[source]
        key_valid = _valid(None if key_mask is None else ~key_mask, batch, tk, q.device)
        w = query_valid[:, None, :, None].to(weights.dtype)
        received = (weights * w).sum(dim=2) / w.sum(dim=2)
        maps.append(BlockMaps(name, target, source, weights, query_valid, key_valid, received))
    return maps


def pooled_from_received(
    mha: nn.MultiheadAttention, source: torch.Tensor, received: torch.Tensor
) -> torch.Tensor:
    """A block's pooled output ``[B, E]`` rebuilt from its received weights ``[B, H, Tk]``.

    ``source [B, Tk, E]`` is what the block attends to (the source encoder's output). This is
    the identity that makes the maps an explanation of the model's numbers: the pooled
    vector is the head-wise weighted sum of the values, through the output projection.
    """
    embed = mha.embed_dim
    heads = mha.num_heads
    w_v = mha.in_proj_weight[2 * embed :]
    b_v = mha.in_proj_bias[2 * embed :]
    values = (source @ w_v.T + b_v).unflatten(-1, (heads, embed // heads))  # [B, Tk, H, d]
    mixed = torch.einsum("bhk,bkhd->bhd", received.to(values.dtype), values).flatten(1)
    return mha.out_proj(mixed)


def project_to_frames(conv: nn.Conv1d, received: torch.Tensor) -> torch.Tensor:
    """Weights on mixed positions ``[..., T']`` -> signed coefficients on input frames ``[..., T]``.

    The attention-weighted mix of the convolution's outputs, ``sum_j a_j conv(x)_j``, equals
    ``sum_i c_i x_i + const`` with ``c = a @ W`` (``W [T', T]`` the 1x1 kernel): ``c_i`` is the
    share of input frame ``i`` in what the block attends to, before the GRU.
    """
    kernel = conv.weight[:, :, 0]  # [T', T]: out step x input frame
    return received.to(kernel.dtype) @ kernel
