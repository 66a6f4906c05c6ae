"""openSMILE low-level-descriptor frames (eGeMAPSv02, ComParE_2016) through audEERING's package.

Why low-level descriptors and not functionals: the models read frame sequences, so each
10 ms frame's descriptors are kept (the functionals of these sets are per-utterance
statistics of the same descriptors). ComParE_2016 defines first-order deltas of its 65
descriptors as a separate feature level; they are appended column-wise, frame by frame.
eGeMAPSv02 defines none.

``opensmile`` is an optional extra; without it a clear one-line error names the extra.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from selfcross.errors import ConfigError, DataError

#: ``AudioConfig.features`` -> openSMILE feature set name.
FEATURE_SETS: dict[str, str] = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}
#: Descriptors per frame of each set's low-level-descriptor level (without deltas).
LLD_COUNTS: dict[str, int] = {"egemaps": 25, "compare": 65}


def descriptor_count(features: str, deltas: int) -> int:
    """Columns per frame: the set's descriptors, twice with ComParE deltas."""
    return LLD_COUNTS[features] * (2 if deltas else 1)


def import_opensmile(features: str) -> Any:
    """The ``opensmile`` module, or a :class:`ConfigError` naming the extra."""
    try:
        import opensmile
    except ImportError:
        raise ConfigError(
            f"audio features {features!r} need openSMILE: pip install 'selfcross[opensmile]'"
        ) from None
    return opensmile


class SmileDescriptors:
    """Waveform -> ``float32 [frames, descriptors]`` openSMILE low-level descriptors.

    Args:
        features: ``egemaps`` or ``compare``.
        deltas: ``compare`` only: 1 appends the LowLevelDescriptors_Deltas level.
        sample_rate: rate of the waveforms given (Hz).

    Attributes:
        names: descriptor names in column order (openSMILE's, e.g. ``F0final_sma``).
    """

    def __init__(self, features: str, deltas: int, sample_rate: int) -> None:
        smile = import_opensmile(features)
        fs = getattr(smile.FeatureSet, FEATURE_SETS[features])
        levels = [smile.FeatureLevel.LowLevelDescriptors]
        if deltas:
            levels.append(smile.FeatureLevel.LowLevelDescriptors_Deltas)
        self.sample_rate = sample_rate
        self._smiles = [smile.Smile(feature_set=fs, feature_level=lv) for lv in levels]
        self.names: tuple[str, ...] = tuple(n for s in self._smiles for n in s.feature_names)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """Descriptors of a mono float32 waveform; ``[0, F]`` when it is too short for a frame."""
        tables = []
        with warnings.catch_warnings():
            # openSMILE fills a too-short segment with NaN and warns; reported below as a DataError
            warnings.filterwarnings("ignore", message="Segment too short", category=UserWarning)
            for s in self._smiles:
                tables.append(s.process_signal(y, self.sample_rate).to_numpy(dtype=np.float32))
        # The deltas level emits a frame or two more at the end of the clip (its flush); the
        # frames line up from the start, so the common prefix is kept.
        n = min(len(t) for t in tables)
        out = np.concatenate([t[:n] for t in tables], axis=1)
        if n and not np.all(np.isfinite(out)):
            if len(y) < self.sample_rate // 10:
                return np.zeros((0, len(self.names)), dtype=np.float32)
            raise DataError(None, "openSMILE returned NaN or infinite descriptors")
        return out
