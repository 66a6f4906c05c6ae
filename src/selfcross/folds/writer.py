"""Write data roots in the fold layout, one file at a time and atomically.

Why atomic: preparations of real corpora run for hours; a crash or Ctrl-C must never leave
a half-written ``.npy`` that a later run reads as data. Each file is written to a temporary
name in the same folder and moved into place with :func:`os.replace` only when complete.

Used by the synthetic generator and by raw-media preparations (``selfcross.prepare``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from selfcross.errors import DataError
from selfcross.folds import layout


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def save_array(path: str | Path, array: np.ndarray) -> Path:
    """Save one ``.npy`` file atomically (temporary file, then :func:`os.replace`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_text(path: str | Path, lines: Sequence[str]) -> Path:
    """Write lines of text (one per line) atomically; lines must not contain newlines."""
    path = Path(path)
    bad = [s for s in lines if "\n" in s or "\r" in s]
    if bad:
        raise DataError(path, f"line {bad[0]!r} contains a newline")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        tmp.write_text("".join(f"{s}\n" for s in lines), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def open_array(path: str | Path, shape: tuple[int, ...], dtype: str | np.dtype) -> Iterator[np.memmap]:
    """Create a ``.npy`` file of ``shape`` to fill in chunks; it appears under ``path`` on success.

    For arrays too big for memory (the ``paper`` synthetic preset, full IEMOCAP audio at
    ~3.6 GB): yields a writable memory map of a temporary file; on normal exit the map is
    flushed and the file moved into place, on an exception it is deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
        yield mm
        mm.flush()
        del mm
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_split(
    fold_dir: str | Path,
    split: str,
    arrays: Mapping[str, np.ndarray],
    ids: Sequence[str] | None = None,
) -> list[Path]:
    """Write one split of a fold.

    Args:
        fold_dir: the fold folder (created if needed).
        split: ``train``, ``dev`` or ``test``.
        arrays: by key of :data:`layout.SPLIT_FILES` (``audio`` [N,T,F], ``audio_seqN`` [N],
            ``audio_prosody`` [N,P], ``video`` [N,T,F], ``video_seqN`` [N], ``text`` [N,T,F]
            or ``text_ids`` [N,T], ``label`` [N]); ``label`` is required.
        ids: optional utterance ids, one per row (written as ``S_ids.txt``).

    Returns:
        The paths written.

    Raises:
        DataError: unknown key, missing labels, or first dimensions that disagree.
    """
    fold_dir = Path(fold_dir)
    if split not in layout.SPLITS:
        raise DataError(fold_dir, f"unknown split {split!r}; expected one of {', '.join(layout.SPLITS)}")
    unknown = sorted(set(arrays) - (set(layout.SPLIT_FILES) - {"ids"}))
    if unknown:
        raise DataError(fold_dir, f"unknown array keys {unknown} for split {split}")
    if "label" not in arrays:
        raise DataError(fold_dir / layout.split_file(split, "label"), "labels are required")
    n = len(arrays["label"])
    for key, a in arrays.items():
        if len(a) != n:
            raise DataError(
                fold_dir / layout.split_file(split, key), f"has {len(a)} rows but the labels have {n}"
            )
    if ids is not None and len(ids) != n:
        raise DataError(fold_dir / layout.split_file(split, "ids"), f"{len(ids)} ids for {n} rows")
    written = [save_array(fold_dir / layout.split_file(split, k), a) for k, a in arrays.items()]
    if ids is not None:
        written.append(save_text(fold_dir / layout.split_file(split, "ids"), list(ids)))
    return written


def write_embedding(fold_dir: str | Path, embedding: np.ndarray) -> Path:
    """Write a fold's ``W_embedding.npy`` ([V, F] float; row 0 is the padding id)."""
    emb = np.asarray(embedding)
    if emb.ndim != 2:
        raise DataError(Path(fold_dir) / layout.EMBEDDING_FILE, f"must be 2-D [V, F], got shape {emb.shape}")
    return save_array(Path(fold_dir) / layout.EMBEDDING_FILE, emb)


def write_classes(root: str | Path, names: Sequence[str]) -> Path:
    """Write ``classes.txt`` (one class name per line, in label order) into a data root or fold."""
    names = [str(n).strip() for n in names]
    if not names or any(not n for n in names) or len(set(names)) != len(names):
        raise DataError(Path(root) / layout.CLASSES_FILE, f"names must be non-empty and unique: {names}")
    return save_text(Path(root) / layout.CLASSES_FILE, names)
