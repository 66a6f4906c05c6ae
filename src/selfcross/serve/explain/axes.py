"""The axis of each modality in an explanation: seconds, words or positions, with a label.

Audio frames are ``hop_ms`` apart and video frames ``1 / fps`` apart when the run saved its
feature settings (``RUN_DIR/features/features.json``); without them (synthetic data, the
authors' folds) the axis counts input frames. Text is the words when a vocabulary is
known. A branch with a time-mixing convolution also has a second axis, the *mixed
positions* (the convolution's outputs), which are not points in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from selfcross.features.text import PAD


@dataclass
class ModalityAxis:
    """One modality's axis over its input steps.

    Attributes:
        modality: ``audio``, ``video`` or ``text``.
        ticks: float seconds or step indices ``[T]`` (audio/video), or the words (text),
            over all ``T`` input steps (valid ones first, then padding).
        label: axis label naming the unit, e.g. ``"audio: time (s)"``.
        valid: number of valid input steps.
        mixed_len: number of mixed positions, or ``None`` when the branch does not mix time.
        mixed_label: label of the mixed-position axis.
    """

    modality: str
    ticks: Any
    label: str
    valid: int
    mixed_len: int | None = None
    mixed_label: str = ""

    @property
    def is_words(self) -> bool:
        return self.modality == "text" and len(self.ticks) > 0 and isinstance(self.ticks[0], str)


def _frame_step_seconds(modality: str, config: Any) -> float | None:
    if config is None:
        return None
    if modality == "audio":
        return float(config.hop_ms) / 1000.0
    if modality == "video":
        return 1.0 / float(config.fps)
    return None


def modality_axes(run: Any, utt: Any) -> dict[str, ModalityAxis]:
    """The axis of every modality of ``run`` for utterance ``utt``, over all ``T`` input steps.

    Steps past the valid length are padding (words ``<pad>``); the paper's preset attends to
    them too, so the figure shows them.
    """
    axes: dict[str, ModalityAxis] = {}
    for m in run.modalities:
        valid = int(utt.lengths[m][0])
        shape = run.config.model.shapes[m]
        steps, mixed = shape.seq_len, shape.mixed_len
        mixed_label = f"{m}: mixed position (of {mixed})" if mixed is not None else ""
        if m == "text":
            words = utt.words[:valid] if utt.words is not None else None
            if words is not None and len(words) == valid:
                ticks = list(words) + [PAD] * (steps - valid)
                axes[m] = ModalityAxis(m, ticks, "text: word", valid, mixed, mixed_label)
            else:
                axes[m] = ModalityAxis(m, np.arange(steps, dtype=float), "text: word position", valid,
                                       mixed, mixed_label)
            continue
        step = _frame_step_seconds(m, run.feature_configs.get(m))
        if step is None:
            frames = np.arange(steps, dtype=float)
            axes[m] = ModalityAxis(m, frames, f"{m}: input frame", valid, mixed, mixed_label)
        else:
            axes[m] = ModalityAxis(m, np.arange(steps) * step, f"{m}: time (s)", valid, mixed, mixed_label)
    return axes
