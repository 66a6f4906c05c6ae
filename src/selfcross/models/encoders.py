"""Per-modality encoders: optional time-mixing 1x1 convolution, then a bidirectional GRU.

Why a convolution *over time*: the authors treat the time steps of audio (1000) and video
(32) as the Conv1d's input channels, so each of the 500 / 25 output steps is a learned
weighted sum of *all* input frames. After it, a "time step" no longer corresponds to an
input frame, so sequence lengths mean nothing downstream of the convolution. That is why
the ``improved`` switches act on the input frames (zeroing the padding) for such branches
and use lengths (packing, key-padding masks, masked means) only where time is not mixed
(the text branch in the paper's shapes). See ``docs/improved.md``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from selfcross.models.kernels import gru_forward


def valid_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Boolean ``[B, steps]``: ``True`` at valid positions ``t < lengths[b]``."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


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
    ) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.feat_dim = feat_dim
        self.mixed_len = mixed_len
        self.mask_padding = mask_padding
        self.packed_gru = packed_gru
        self.dropout = nn.Dropout(input_dropout)
        self.conv = nn.Conv1d(seq_len, mixed_len, kernel_size=1) if mixed_len is not None else None
        self.gru = nn.GRU(feat_dim, hidden, num_layers=1, batch_first=True, bidirectional=True)

    @property
    def mixes_time(self) -> bool:
        """True when a convolution mixes time steps (lengths are meaningless after it)."""
        return self.conv is not None

    def needs_lengths(self) -> bool:
        """Whether the active switches use this branch's lengths."""
        return self.mask_padding or (self.packed_gru and not self.mixes_time)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, T, F]``, ``lengths [B]`` (valid steps) -> ``[B, T', 2 * hidden]``.

        With ``packed_gru`` (and no conv) the outputs at padded steps are zeros and the
        backward direction starts at each sequence's last valid step.
        """
        if self.mask_padding and lengths is not None:
            x = x * valid_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
        x = self.dropout(x)
        if self.conv is not None:
            # time steps are the channels: [B, T, F] -> [B, T', F]
            return gru_forward(self.gru, self.conv(x))  # = self.gru(...)[0], faster on CPU
        if self.packed_gru and lengths is not None:
            # pack_padded_sequence rejects length 0: an empty sequence reads its first (zero) step
            lens = lengths.clamp(min=1).to("cpu", torch.int64)
            packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=x.shape[1])
            return out
        return gru_forward(self.gru, x)
