"""One attention block: a thin wrapper around ``nn.MultiheadAttention``.

Two entry points:

- :meth:`Attention.pooled` (what the model uses): the temporal mean of the output,
  ``(query [B, Tq, E], source [B, Tk, E], key_padding_mask, query_mask) -> [B, E]``.
- :meth:`Attention.forward`: the whole output ``[B, Tq, E]``.

By default :meth:`~Attention.pooled` runs the fast kernel
(:mod:`selfcross.models.kernels.pooled_attention`), which computes that mean exactly without
building the ``[B, Tq, E]`` output. Under ``set_kernels(model, "reference")`` both entry points
call ``nn.MultiheadAttention`` with ``need_weights=True`` exactly as the authors' code does.

Parameter names (``mha.in_proj_weight`` [3E, E], ``mha.in_proj_bias`` [3E],
``mha.out_proj.weight`` [E, E], ``mha.out_proj.bias`` [E]) are part of the checkpoint
format (``selfcross.serve.compat`` maps the authors' names onto them).
"""

from __future__ import annotations

import torch
from torch import nn

from selfcross.models.kernels import fast_pooled_mha, set_kernels, uses_reference


class Attention(nn.Module):
    """Multi-head attention where ``query`` attends to ``source`` (keys = values = source).

    Args:
        embed_dim: vector width ``E`` (``2 * hidden`` for a BiGRU encoder).
        heads: number of heads (must divide ``embed_dim``).
        dropout: dropout on the attention weights (training only).
    """

    def __init__(self, embed_dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(embed_dim, heads, dropout=dropout, batch_first=True)

    @property
    def impl(self) -> str:
        """This block's kernel set, ``"fast"`` or ``"reference"`` (see ``set_kernels``)."""
        return "reference" if uses_reference(self.mha) else "fast"

    @impl.setter
    def impl(self, impl: str) -> None:
        set_kernels(self, impl)

    def forward(
        self,
        query: torch.Tensor,
        source: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``query [B, Tq, E]``, ``source [B, Tk, E]`` -> ``[B, Tq, E]``.

        ``key_padding_mask [B, Tk]`` is ``True`` at positions to ignore; every row must
        keep at least one key (else the softmax is undefined).
        """
        reference = uses_reference(self.mha)
        out, _ = self.mha(query, source, source, key_padding_mask=key_padding_mask, need_weights=reference)
        return out

    def pooled(
        self,
        query: torch.Tensor,
        source: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The temporal mean of :meth:`forward`'s output: ``[B, Tq, E]``, ``[B, Tk, E]`` -> ``[B, E]``.

        ``query_mask [B, Tq]`` (``True`` = valid step) makes it the mean over valid steps.
        Why a method of its own: the model only ever uses this mean, which the fast kernel
        computes exactly without the full output; ``reference`` averages the authors' output.
        """
        if not uses_reference(self.mha):
            return fast_pooled_mha(self.mha, query, source, key_padding_mask, query_mask)
        out = self(query, source, key_padding_mask)
        if query_mask is None:
            return out.mean(dim=1)
        w = query_mask.unsqueeze(-1).to(out.dtype)
        return (out * w).sum(dim=1) / w.sum(dim=1)
