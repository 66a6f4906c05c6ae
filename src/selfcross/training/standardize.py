"""Per-feature standardization fitted on the training split only (the ``improved`` preset).

Why: the authors compute audio standardization and then discard it, so their models see
raw MFCC values (docs/paper.md, Training). ``improved`` fixes this for every modality the model uses:
mean and standard deviation per feature, estimated on the **training split only** (using
dev/test would leak), over **valid frames only** (zero padding would drag the mean toward
0 and shrink the std). The statistics are stored in ``model.safetensors`` under
``standardizer.<modality>.mean|std`` and applied unchanged at evaluation.

Padding stays exactly zero after the transform, so a ``paper``-style model that attends
padding still sees zeros there, and masks in the ``improved`` model agree with the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from selfcross.errors import CheckpointError
from selfcross.numerics import MIN_STD

#: Key prefix of the standardizer tensors inside ``model.safetensors``.
PREFIX = "standardizer."



def valid_mask(lengths: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    """Boolean ``[N, T]`` mask of valid (non-padding) frames of ``x`` ``[N, T, F]``.

    Frames ``t < lengths[i]`` are valid (padding is at the end, as in the fold layout).
    Without lengths, a frame is valid when any of its features is non-zero.
    """
    if lengths is None:
        return np.any(x != 0, axis=tuple(range(2, x.ndim)))
    t = np.arange(x.shape[1])
    return t[None, :] < np.asarray(lengths).reshape(-1, 1)


class Standardizer:
    """Per-modality, per-feature ``(x - mean) / std`` on valid frames.

    Attributes:
        stats: modality -> ``(mean [F], std [F])`` float64 arrays (``[L, F]`` for stacked
            encoder layers: each layer is standardized on its own).
    """

    def __init__(self, stats: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.stats = {
            m: (np.asarray(mu, np.float64), np.asarray(sd, np.float64)) for m, (mu, sd) in stats.items()
        }

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities this standardizer transforms."""
        return tuple(self.stats)

    @classmethod
    def fit(cls, split: Any, modalities: Sequence[str], chunk: int = 256) -> Standardizer:
        """Estimate the statistics on one split (the training split), chunk by chunk.

        Args:
            split: a :class:`selfcross.data.Split` (``len``, ``get_batch``).
            modalities: modalities to fit.
            chunk: utterances read at a time (memory-mapped folds are never loaded whole).

        Uses Chan et al.'s pairwise combination of (count, mean, M2) in float64, which is
        stable for large counts of raw MFCC values.
        """
        acc: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        n = len(split)
        for start in range(0, n, chunk):
            index = np.arange(start, min(n, start + chunk))
            inputs, lengths = split.get_batch(index, tuple(modalities))
            for m in modalities:
                x = np.asarray(inputs[m])
                frames = x[valid_mask(lengths.get(m), x)].astype(np.float64)  # [n_valid, F]
                if frames.shape[0] == 0:
                    continue
                cnt_b = frames.shape[0]
                mean_b = frames.mean(axis=0)
                m2_b = ((frames - mean_b) ** 2).sum(axis=0)
                if m not in acc:
                    acc[m] = (cnt_b, mean_b, m2_b)
                    continue
                cnt_a, mean_a, m2_a = acc[m]
                cnt = cnt_a + cnt_b
                delta = mean_b - mean_a
                acc[m] = (cnt, mean_a + delta * cnt_b / cnt, m2_a + m2_b + delta**2 * cnt_a * cnt_b / cnt)
        stats = {}
        for m in modalities:
            if m not in acc:  # no valid frame at all: identity transform
                frame = np.asarray(split.get_batch(np.arange(1), (m,))[0][m]).shape[2:]
                stats[m] = (np.zeros(frame), np.ones(frame))
                continue
            cnt, mean, m2 = acc[m]
            std = np.sqrt(m2 / cnt)
            stats[m] = (mean, np.where(std < MIN_STD, 1.0, std))
        return cls(stats)

    def transform(
        self, inputs: Mapping[str, np.ndarray], lengths: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Standardize each ``[N, T, F]`` array; padding frames stay zero; dtype is kept.

        Modalities without statistics pass through unchanged.
        """
        out = dict(inputs)
        for m, (mean, std) in self.stats.items():
            if m not in inputs:
                continue
            x = np.asarray(inputs[m])
            mask = valid_mask(lengths.get(m), x).reshape(x.shape[:2] + (1,) * (x.ndim - 2))
            y = (x - mean.astype(x.dtype)) / std.astype(x.dtype)
            out[m] = np.where(mask, y, np.zeros((), x.dtype)).astype(x.dtype, copy=False)
        return out

    def pop(self, modality: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Remove and return one modality's ``(mean, std)`` (``None`` if it has none)."""
        return self.stats.pop(modality, None)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors for ``model.safetensors``: ``standardizer.<m>.mean`` / ``.std`` (float64)."""
        out = {}
        for m, (mean, std) in self.stats.items():
            out[f"{PREFIX}{m}.mean"] = torch.from_numpy(mean.copy())
            out[f"{PREFIX}{m}.std"] = torch.from_numpy(std.copy())
        return out

    @classmethod
    def from_state_dict(cls, tensors: Mapping[str, torch.Tensor], source: str = "") -> Standardizer | None:
        """Rebuild from the ``standardizer.*`` tensors of ``tensors`` (``None`` if there are none).

        Raises:
            CheckpointError: a mean without its std (or the reverse), or mismatched sizes.
        """
        parts: dict[str, dict[str, np.ndarray]] = {}
        for key, t in tensors.items():
            if not key.startswith(PREFIX):
                continue
            m, _, what = key[len(PREFIX) :].rpartition(".")
            if what not in ("mean", "std") or not m:
                raise CheckpointError(f"{source}: unexpected standardizer tensor {key!r}")
            parts.setdefault(m, {})[what] = t.detach().cpu().double().numpy()
        if not parts:
            return None
        stats = {}
        for m, d in parts.items():
            if set(d) != {"mean", "std"} or d["mean"].shape != d["std"].shape:
                raise CheckpointError(
                    f"{source}: standardizer for {m!r} needs 'mean' and 'std' of the same shape, "
                    f"found {sorted(d)}"
                )
            stats[m] = (d["mean"], d["std"])
        return cls(stats)


def standardized_table(table: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """A word-vector table whose rows are already standardized (row 0, padding, stays zero).

    Looking ids up in it gives what standardizing the looked-up vectors gives (up to float
    rounding), so a model that tunes its word vectors starts from the inputs the
    frozen-vector model sees.
    """
    out = (np.asarray(table, np.float64) - mean) / std
    out[0] = 0.0
    return out
