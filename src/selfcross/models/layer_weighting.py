"""Learned softmax-weighted sum of stacked encoder layers (SUPERB's featurizer).

Why: which hidden layer of a self-supervised speech model carries emotion is not known in
advance (middle-to-upper layers, varying by model). SUPERB (Yang et al., Interspeech 2021)
freezes the encoder, keeps every layer and lets the downstream model learn one weight per
layer: ``sum_l softmax(w)_l * h_l``. The weights start equal (``w = 0``) and are trained with
the rest of the model; they are saved with it (``layer_mixers.<modality>.weights``).
"""

from __future__ import annotations

import torch
from torch import nn


class LayerWeighting(nn.Module):
    """``[B, T, L, F] -> [B, T, F]``: softmax-weighted sum over the ``L`` stacked layers.

    Args:
        layers: number of stacked layers ``L``.
    """

    def __init__(self, layers: int) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"LayerWeighting needs at least one layer, got {layers}")
        self.weights = nn.Parameter(torch.zeros(layers))

    def layer_weights(self) -> torch.Tensor:
        """The current mixing weights ``softmax(w)`` (``[L]``, sum 1)."""
        return torch.softmax(self.weights, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix ``x [B, T, L, F]`` over its layer axis."""
        return torch.einsum("btlf,l->btf", x, self.layer_weights().to(x.dtype))
