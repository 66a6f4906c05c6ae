"""Per-modality encoders: optional time-mixing 1x1 convolution, then a bidirectional GRU.

Why a convolution *over time*: the authors treat the time steps of audio (1000) and video
(32) as the Conv1d's input channels, so each of the 500 / 25 output steps is a learned
weighted sum of *all* input frames. After it, a "time step" no longer corresponds to an
input frame, so sequence lengths mean nothing downstream of the convolution. That is why
the ``improved`` switches act on the input frames (zeroing the padding) for such branches
and use lengths (packing, key-padding masks, masked means) only where time is not mixed
(the text branch in the paper's shapes). See ``docs/improved.md``.

``time_mixing="pool"`` (the ``strong`` preset) replaces the convolution by an
order-preserving average over windows of ``pool_stride`` valid frames: step ``j`` still
describes frames ``j*s .. j*s+s-1``, so lengths survive (``ceil(length / s)``) and the
length-aware switches apply to audio too. ``"none"`` feeds the frames to the GRU as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from selfcross.config import TIME_MIXINGS
from selfcross.models.augment import SpecMask, WordDropout
from selfcross.models.kernels import gru_forward


def valid_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Boolean ``[B, steps]``: ``True`` at valid positions ``t < lengths[b]``."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def pool_time(x: torch.Tensor, stride: int, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Average ``x [B, T, F]`` over consecutive windows of ``stride`` steps -> ``[B, ceil(T/s), F]``.

    With ``lengths`` only valid steps enter each mean (a window with no valid step gives
    zeros); without, the last window averages the steps it has (never zeros from padding
    added here).
    """
    b, t, f = x.shape
    steps = -(-t // stride)
    keep = torch.ones(b, t, dtype=x.dtype, device=x.device)
    if lengths is not None:
        keep = valid_mask(lengths, t).to(x.dtype)
    pad = steps * stride - t
    x = F.pad(x * keep.unsqueeze(-1), (0, 0, 0, pad))
    keep = F.pad(keep, (0, pad))
    total = x.view(b, steps, stride, f).sum(2)
    count = keep.view(b, steps, stride).sum(2).clamp(min=1)
    return total / count.unsqueeze(-1)


class ModalityEncoder(nn.Module):
    """Encode one modality ``[B, T, F]`` into ``[B, T', 2 * hidden]``.

    ``T' = mixed_len`` when the branch has a time-mixing convolution (audio/video in the
    paper), else ``T' = T`` (text).

    Args:
        seq_len: padded input length ``T`` (the convolution's input channels).
        feat_dim: features per step ``F`` (the GRU's input size).
        mixed_len: output steps of the 1x1 ``Conv1d`` over time, or ``None`` for no conv.
        hidden: GRU units per direction.
        input_dropout: dropout on the input vectors (training only; the paper: 0.25 on
            word vectors, 0 elsewhere).
        mask_padding: zero the padded input frames before anything else (needs lengths).
        packed_gru: run the GRU on packed sequences (only where time is not mixed).
        time_mixing: for a branch with ``mixed_len``: ``conv`` (the paper's 1x1 Conv1d over
            time), ``pool`` (average over windows of ``pool_stride`` valid frames) or
            ``none`` (frames as they are). Branches without ``mixed_len`` never mix time.
        pool_stride: window of ``time_mixing="pool"``.
        spec_mask: SpecAugment-style masks on the input frames (training only).
        word_dropout: probability of zeroing a whole input step (training only; for words).
    """

    def __init__(
        self,
        seq_len: int,
        feat_dim: int,
        mixed_len: int | None,
        hidden: int,
        input_dropout: float = 0.0,
        mask_padding: bool = False,
        packed_gru: bool = False,
        time_mixing: str = "conv",
        pool_stride: int = 1,
        spec_mask: SpecMask | None = None,
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if time_mixing not in TIME_MIXINGS:
            raise ValueError(f"time_mixing {time_mixing!r} is not one of {', '.join(TIME_MIXINGS)}")
        self.seq_len = seq_len
        self.feat_dim = feat_dim
        self.mixed_len = mixed_len
        self.mask_padding = mask_padding
        self.packed_gru = packed_gru
        self.pool_stride = pool_stride if (mixed_len is not None and time_mixing == "pool") else 1
        self.spec_mask = spec_mask if spec_mask is not None else SpecMask()
        self.word_dropout = WordDropout(word_dropout)
        self.dropout = nn.Dropout(input_dropout)
        use_conv = mixed_len is not None and time_mixing == "conv"
        self.conv = nn.Conv1d(seq_len, mixed_len, kernel_size=1) if use_conv else None
        self.gru = nn.GRU(feat_dim, hidden, num_layers=1, batch_first=True, bidirectional=True)

    @property
    def out_len(self) -> int:
        """Output time steps ``T'``."""
        if self.conv is not None:
            return int(self.conv.out_channels)
        return -(-self.seq_len // self.pool_stride)

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output steps for valid input ``lengths`` (only meaningful without a conv)."""
        return torch.div(lengths + self.pool_stride - 1, self.pool_stride, rounding_mode="floor")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, T, F]``, ``lengths [B]`` (valid steps) -> ``[B, T', 2 * hidden]``.

        With ``packed_gru`` (and no conv) the outputs at padded steps are zeros and the
        backward direction starts at each sequence's last valid step.
        """
        if self.mask_padding and lengths is not None:
            x = x * valid_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
        x = self.dropout(self.word_dropout(self.spec_mask(x, lengths)))
        if self.conv is not None:
            # time steps are the channels: [B, T, F] -> [B, T', F]
            return gru_forward(self.gru, self.conv(x))  # = self.gru(...)[0], faster on CPU
        if self.pool_stride > 1:
            x = pool_time(x, self.pool_stride, lengths)
            lengths = None if lengths is None else self.out_lengths(lengths)
        if self.packed_gru and lengths is not None:
            # pack_padded_sequence rejects length 0: an empty sequence reads its first (zero) step
            lens = lengths.clamp(min=1).to("cpu", torch.int64)
            packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=x.shape[1])
            return out
        return gru_forward(self.gru, x)
