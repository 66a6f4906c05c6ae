"""Fusion of the attention vectors: statistical pooling (the paper) and its replacements.

Input: the temporal means of every attention output stacked as ``[B, N, E]``.

- ``stat`` (SP, the paper): ``[std, mean]`` across the ``N`` vectors -> ``[B, 2E]``. The std
  is unbiased (n-1). The order is std first because the authors' code unpacks
  ``torch.std_mean`` (which returns ``(std, mean)``) into variables named the other way;
  imported weights only work with this order.
- ``concat`` (our noSP choice): the vectors side by side -> ``[B, N*E]``; keeps every vector.
- ``mean``: the mean only -> ``[B, E]``.
- ``N == 1`` (uni-modal self model): SP is undefined (the n-1 std of one vector is NaN),
  so the single vector is fed on unchanged -> ``[B, E]``, whatever ``kind`` says.
"""

from __future__ import annotations

import torch
from torch import nn

from selfcross.config import POOLINGS
from selfcross.errors import ConfigError


class Pooling(nn.Module):
    """Pool ``[B, N, E]`` attention vectors into ``[B, out_dim]`` (no parameters)."""

    def __init__(self, kind: str, n_vectors: int, embed_dim: int) -> None:
        super().__init__()
        if kind not in POOLINGS:
            raise ConfigError(f"pooling {kind!r} is not one of {', '.join(POOLINGS)}")
        if n_vectors < 1:
            raise ConfigError("pooling needs at least one attention vector")
        self.kind = kind if n_vectors > 1 else "identity"
        self.n_vectors = n_vectors
        self.embed_dim = embed_dim

    @property
    def out_dim(self) -> int:
        """Width of the pooled vector (the head's input size)."""
        if self.kind == "stat":
            return 2 * self.embed_dim
        if self.kind == "concat":
            return self.n_vectors * self.embed_dim
        return self.embed_dim

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """``[B, N, E]`` -> ``[B, out_dim]``."""
        if self.kind == "stat":
            std, mean = torch.std_mean(vectors, dim=1, correction=1)
            return torch.cat((std, mean), dim=1)
        if self.kind == "concat":
            return vectors.flatten(1)
        if self.kind == "mean":
            return vectors.mean(dim=1)
        return vectors[:, 0]

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, n_vectors={self.n_vectors}, embed_dim={self.embed_dim}"
