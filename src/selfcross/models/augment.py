"""Training-only input augmentation: SpecAugment-style masks on frames, word dropout on text.

Why: real emotion corpora are small (RAVDESS: ~1,000 training clips), and a BiGRU with
attention memorises them within a few epochs. Masking random spans of time steps and of
feature channels (Park et al., Interspeech 2019) and dropping whole words make the model
rely on more than one cue. Both act only in ``train()`` mode and only on valid steps;
evaluation sees the inputs unchanged. Masked values become 0, which is the feature mean
after train-split standardization.
"""

from __future__ import annotations

import torch
from torch import nn


def span_mask(
    n_spans: int, max_width: int, extent: torch.Tensor, size: int, batch: int, device: torch.device
) -> torch.Tensor:
    """Boolean ``[batch, size]``: ``True`` inside ``n_spans`` random spans per row.

    Each span has a width drawn uniformly from ``0..max_width`` and a start drawn uniformly
    so that it lies inside ``0..extent[b]`` (the row's valid extent).
    """
    out = torch.zeros(batch, size, dtype=torch.bool, device=device)
    if n_spans <= 0 or max_width <= 0:
        return out
    pos = torch.arange(size, device=device).unsqueeze(0)
    extent = extent.to(device).clamp(min=0)
    for _ in range(n_spans):
        width = torch.randint(0, max_width + 1, (batch,), device=device).minimum(extent)
        start = (torch.rand(batch, device=device) * (extent - width + 1).float()).long()
        out |= (pos >= start.unsqueeze(1)) & (pos < (start + width).unsqueeze(1))
    return out


class SpecMask(nn.Module):
    """Zero ``time_masks`` spans of up to ``time_width`` steps and ``feat_masks`` spans of up
    to ``feat_width`` feature channels of every ``[B, T, F]`` input (training only)."""

    def __init__(
        self, time_masks: int = 0, time_width: int = 0, feat_masks: int = 0, feat_width: int = 0
    ) -> None:
        super().__init__()
        self.time_masks, self.time_width = time_masks, time_width
        self.feat_masks, self.feat_width = feat_masks, feat_width

    @property
    def active(self) -> bool:
        """Whether any mask is configured."""
        return (self.time_masks > 0 and self.time_width > 0) or (self.feat_masks > 0 and self.feat_width > 0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, T, F]`` -> ``x`` with the masked spans set to 0 (identity in eval mode)."""
        if not (self.training and self.active):
            return x
        b, t, f = x.shape
        valid = lengths if lengths is not None else torch.full((b,), t, device=x.device)
        drop_t = span_mask(self.time_masks, self.time_width, valid, t, b, x.device)
        drop_f = span_mask(
            self.feat_masks, self.feat_width, torch.full((b,), f, device=x.device), f, b, x.device
        )
        keep = ~(drop_t.unsqueeze(2) | drop_f.unsqueeze(1))
        return x * keep.to(x.dtype)


class WordDropout(nn.Module):
    """Zero each whole word vector with probability ``p`` (training only; no rescaling, so a
    dropped word looks like padding rather than a louder word)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, F]`` -> ``x`` with random time steps zeroed (identity in eval mode)."""
        if not self.training or self.p <= 0:
            return x
        keep = torch.rand(x.shape[0], x.shape[1], 1, device=x.device) >= self.p
        return x * keep.to(x.dtype)
