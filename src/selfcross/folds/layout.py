"""File names of the processed fold layout (docs/paper.md, Data), defined once.

Why here: the reader, the writer, the synthetic generator, the raw-media preparations and
the trainer (which copies ``W_embedding.npy`` into run folders) must agree on every name.

A fold folder holds, for each split ``S`` in ``train``, ``dev``, ``test``::

    S_audio_mfcc.npy    float [N, T, F]   audio frames, zero padded
    S_audio_seqN.npy    int   [N]         valid audio frames (optional)
    S_audio_prosody.npy float [N, P]      prosody vector (optional, never used by the models)
    S_video.npy         float [N, T, F]   video frame features, zero padded
    S_video_seqN.npy    int   [N]         valid video frames (optional)
    S_text.npy          float [N, T, F]   word vectors          } text: either form
    S_nlp_trans.npy     int   [N, T]      word ids, 0 = padding } (+ W_embedding.npy)
    S_label.npy         int   [N]         class index
    S_score.npy         float [N]         sentiment score (optional; for ``--task regression``)
    S_ids.txt           text, N lines     utterance ids (optional)

plus ``W_embedding.npy`` float [V, F] (one per fold; looked up in the fold, then the data
root) and an optional ``classes.txt`` (fold, then data root). A data root holds
``fold01 .. foldK``.
"""

from __future__ import annotations

import re

#: The three splits of every fold, in order.
SPLITS: tuple[str, ...] = ("train", "dev", "test")

#: Per-split file suffixes by key; the file name is ``f"{split}_{suffix}"``.
SPLIT_FILES: dict[str, str] = {
    "audio": "audio_mfcc.npy",
    "audio_seqN": "audio_seqN.npy",
    "audio_prosody": "audio_prosody.npy",
    "video": "video.npy",
    "video_seqN": "video_seqN.npy",
    "text": "text.npy",
    "text_ids": "nlp_trans.npy",
    "label": "label.npy",
    "score": "score.npy",
    "ids": "ids.txt",
}

#: Word-vector table for the ids form of text (one per fold; else in the data root).
EMBEDDING_FILE = "W_embedding.npy"
#: Optional class-name list, one name per line in label order (fold, else data root).
CLASSES_FILE = "classes.txt"
#: Optional vocabulary (line i = word of id i), written by text preparation.
VOCAB_FILE = "vocab.txt"

#: Keys whose arrays must be ``[N, T, F]`` float sequences.
SEQUENCE_KEYS: tuple[str, ...] = ("audio", "video", "text")
#: Length file for each modality that has one (text lengths come from the ids / vectors).
LENGTH_KEYS: dict[str, str] = {"audio": "audio_seqN", "video": "video_seqN"}

_FOLD_RE = re.compile(r"^fold(\d+)$")


def split_file(split: str, key: str) -> str:
    """File name of array ``key`` (a key of :data:`SPLIT_FILES`) for ``split``.

    >>> split_file("train", "audio")
    'train_audio_mfcc.npy'
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return f"{split}_{SPLIT_FILES[key]}"


def fold_name(k: int) -> str:
    """Folder name of fold ``k`` (1-based): ``fold01``, ``fold02``, ..."""
    return f"fold{k:02d}"


def fold_number(name: str) -> int | None:
    """The number of a fold folder name (``"fold03" -> 3``), or ``None`` if not a fold name."""
    m = _FOLD_RE.match(name)
    return int(m.group(1)) if m else None
