"""The options every preparation entry point shares, as objects.

Why objects: the same feature settings (extractor configs, encoders, word vectors, speaker
normalisation, workers, progress) reach four entry points (:func:`prepare_iemocap`,
:func:`prepare_manifest`, :func:`prepare_corpus`, :func:`prepare_records`); passed one by
one they were typed ``Any`` and repeated in every signature. Here each is typed once, and
the command line builds each object in one place (:mod:`selfcross.cli.builders`).

This module imports no extractor (no torch, librosa, transformers): the CLI builds these
objects before it knows which extractors a command will run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from selfcross.errors import ConfigError

#: Built-in ``video_encoder`` names (an ``"hf:NAME_OR_PATH"`` or an image encoder module is
#: accepted besides them): ResNet-101 frame features, or no video modality.
VIDEO_ENCODERS: tuple[str, ...] = ("resnet101", "none")

if TYPE_CHECKING:  # annotations only: importing the extractors costs seconds
    import torch

    from selfcross.features.audio import AudioConfig
    from selfcross.features.pretrained import HFAudioConfig, HFTextConfig, HFVideoConfig
    from selfcross.features.text import TextConfig
    from selfcross.features.video import VideoConfig
    from selfcross.prepare.records import Problem, Skip

    AudioSettings = AudioConfig | HFAudioConfig
    VideoSettings = VideoConfig | HFVideoConfig
    TextSettings = TextConfig | HFTextConfig
    VideoEncoder = str | torch.nn.Module | None


@dataclass
class FeatureOptions:
    """How each modality's features are extracted (the same for every corpus).

    Attributes:
        glove: GloVe text file or ``"kumo-6b-50d"``; needed for text unless ``text_config``
            names a pretrained text encoder.
        audio_config: audio extractor settings (``None`` = the paper's 40 MFCC + deltas), or a
            pretrained speech encoder's.
        video_config: video extractor settings (``None`` = ResNet-101 at 3 frames/s), or a
            pretrained vision encoder's.
        text_config: word-id tokenizer settings (``None`` = the paper's), or a pretrained text
            encoder's.
        video_encoder: ``"resnet101"``, ``"none"`` (no video), ``"hf:NAME_OR_PATH"`` or an
            image encoder module ``[n, 3, crop, crop] -> [n, D]`` (tests inject a tiny one).
        speaker_norm: standardise each speaker's audio frames with the mean and std of all that
            speaker's valid frames (every split; transductive for test speakers, never labels).
        workers: feature extraction processes (1 = in this process).
        progress: tqdm progress bars.
        on_unreadable: a media file that cannot be decoded (truncated, empty, not audio):
            ``"error"`` stops there, naming it; ``"skip"`` leaves the row out (listed in the
            report); ``None`` = the entry point's default (a manifest stops; IEMOCAP, CREMA-D
            and MELD, which hold a few such files, skip).
    """

    glove: str | Path | None = None
    audio_config: AudioSettings | None = None
    video_config: VideoSettings | None = None
    text_config: TextSettings | None = None
    video_encoder: VideoEncoder = "resnet101"
    speaker_norm: bool = False
    workers: int = 1
    progress: bool = True
    on_unreadable: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.on_unreadable not in (None, "error", "skip"):
            raise ConfigError(f"on_unreadable must be 'error' or 'skip', got {self.on_unreadable!r}")

    @property
    def uses_video(self) -> bool:
        """Whether the video modality can be prepared (an encoder is named, not ``"none"``)."""
        return self.video_encoder is not None and not (
            isinstance(self.video_encoder, str) and self.video_encoder == "none")


@dataclass
class FoldOptions:
    """How the utterances are split into folds.

    Attributes:
        n_folds: speaker-independent folds to make (``None`` = the corpus's default, 5 for a
            manifest) when there is no official split.
        split_column: manifest column with an official train/dev/test split (one fold);
            excludes ``n_folds``.
        group_column: speaker column used for grouping (absent = one group per row).
        dev_fraction: share of the training speakers held out as dev.
        fold_seed: seed of the speaker shuffling (grouped folds).
        allow_shared_speakers: with an official split, accept a speaker in two splits (noted
            in the report).
    """

    n_folds: int | None = None
    split_column: str | None = None
    group_column: str | None = "speaker"
    dev_fraction: float = 0.1
    fold_seed: int = 0
    allow_shared_speakers: bool = False

    def __post_init__(self) -> None:
        if self.n_folds is not None and self.split_column is not None:
            raise ConfigError("give either --folds K or --split-column COLUMN, not both")


@dataclass
class CorpusNotes:
    """What the preparation report says about the corpus, and what its adapter left out.

    Attributes:
        title: the report's title.
        source: where the corpus was read from.
        notes: extra lines for the report.
        skipped: utterances the adapter already left out (with the reason).
        problems: malformed input lines the adapter found.
    """

    title: str = "Data preparation"
    source: str = ""
    notes: Sequence[str] = ()
    skipped: Sequence[Skip] = ()
    problems: Sequence[Problem] = ()


__all__ = ["VIDEO_ENCODERS", "CorpusNotes", "FeatureOptions", "FoldOptions"]
