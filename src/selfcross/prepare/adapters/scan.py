"""What a corpus adapter hands on: manifest rows and how to prepare them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CorpusScan:
    """What an adapter found: manifest rows and how to prepare them.

    Attributes:
        corpus: corpus name (``ravdess``...).
        rows: one dict per utterance with the manifest columns (``id``, ``label``,
            ``speaker``, ``audio``, ``video``, ``transcript``, ``split``); missing = ``None``.
        class_names: label order of the data root.
        media: modalities with at least one file (``audio``/``video``); text is always
            available (transcripts or statement texts).
        split_column: ``"split"`` for an official split, else ``None`` (grouped folds).
        default_folds: folds when there is no split and the user gives none.
        allow_shared_speakers: the official split shares speakers (MELD).
        on_missing: ``"skip"`` where the corpus is known to miss a few media files.
        text_informative: whether the words carry emotion (not for fixed-sentence corpora).
        notes: report lines (what was found, ignored, merged).
    """

    corpus: str
    rows: list[dict[str, Any]]
    class_names: tuple[str, ...]
    media: tuple[str, ...]
    split_column: str | None = None
    default_folds: int | None = 5
    allow_shared_speakers: bool = False
    on_missing: str = "error"
    text_informative: bool = True
    notes: list[str] = field(default_factory=list)
