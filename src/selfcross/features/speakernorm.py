"""Speaker normalisation: each speaker's audio frames standardised with that speaker's statistics.

Why: on acted corpora much of the frame-level variance is who speaks (pitch range, vocal
tract, loudness), not how they feel. Standardising every feature with the mean and standard
deviation of the speaker's own valid frames (all of the speaker's clips, every split, never
a label) removes that offset. Using a test speaker's unlabelled clips is *transductive*: the
statistics see the test recordings (not their labels) before evaluation.

``speaker_stats.npz`` (no pickle) holds per-speaker frame counts, means and variances:
in the data root for every speaker, and in each fold folder for that fold's training
speakers, which is what prediction pools when no clip of the new speaker is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfcross.errors import DataError
from selfcross.numerics import MIN_STD

#: File name of the statistics in a data root, a fold folder and ``RUN_DIR/features/``.
SPEAKER_STATS = "speaker_stats.npz"


@dataclass
class SpeakerStats:
    """Per-speaker frame statistics of one feature stream.

    Attributes:
        speakers: speaker ids, row order of the arrays.
        frames: int64 ``[S]`` valid frames counted per speaker.
        mean: float64 ``[S, F]``.
        var: float64 ``[S, F]`` (population variance).
    """

    speakers: tuple[str, ...]
    frames: np.ndarray
    mean: np.ndarray
    var: np.ndarray

    @classmethod
    def from_frames(cls, by_speaker: dict[str, Iterable[np.ndarray]]) -> SpeakerStats:
        """Statistics from ``speaker -> valid frames [n, F]`` of each of the speaker's clips."""
        names, counts, means, variances = [], [], [], []
        for spk, clips in by_speaker.items():
            frames = [np.asarray(c, dtype=np.float64) for c in clips]
            frames = [f for f in frames if len(f)]
            if not frames:
                continue
            x = np.concatenate(frames, axis=0)
            names.append(spk)
            counts.append(len(x))
            means.append(x.mean(axis=0))
            variances.append(x.var(axis=0))
        if not names:
            raise DataError(None, "no valid audio frames to estimate speaker statistics from")
        return cls(tuple(names), np.array(counts, np.int64), np.stack(means), np.stack(variances))

    def subset(self, speakers: Iterable[str]) -> SpeakerStats:
        """The rows of ``speakers`` (in this object's order)."""
        keep = set(speakers)
        rows = [i for i, s in enumerate(self.speakers) if s in keep]
        return SpeakerStats(tuple(self.speakers[i] for i in rows), self.frames[rows], self.mean[rows],
                            self.var[rows])

    def of(self, speaker: str) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of one speaker (float64 ``[F]``)."""
        i = self.speakers.index(speaker)
        return self.mean[i], np.sqrt(self.var[i])

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of all speakers' frames together (exactly, from counts and moments)."""
        w = self.frames[:, None].astype(np.float64)
        mean = (w * self.mean).sum(axis=0) / w.sum()
        var = (w * (self.var + (self.mean - mean) ** 2)).sum(axis=0) / w.sum()
        return mean, np.sqrt(var)

    def save(self, path: str | Path) -> Path:
        """Write the statistics as an ``.npz`` of plain arrays."""
        path = Path(path)
        np.savez(path, speakers=np.array(self.speakers, dtype=str), frames=self.frames, mean=self.mean,
                 var=self.var)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SpeakerStats:
        """Read :meth:`save` output (no pickle)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(tuple(str(s) for s in z["speakers"]), z["frames"], z["mean"], z["var"])
        except (OSError, KeyError, ValueError) as e:
            raise DataError(path, f"not a speaker statistics file ({e})") from None


def normalise(frames: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(frames - mean) / std`` in float64, as float32; near-constant features are only centred."""
    scale = np.where(std < MIN_STD, 1.0, std)
    return ((np.asarray(frames, np.float64) - mean) / scale).astype(np.float32)


def speakers_of(ids: Sequence[str], speaker_by_id: dict[str, str]) -> list[str]:
    """Speakers of ``ids`` in first-seen order."""
    return list(dict.fromkeys(speaker_by_id[i] for i in ids))
