"""Read processed folds (FACTS.md §1 layout) into memory-mapped splits that hand out batches.

Why this shape: full IEMOCAP audio is ~3.6 GB per fold, so arrays are memory-mapped
(``np.load(mmap_mode="r")``) and only the rows of a batch are read. Text may come as word
vectors (``S_text.npy`` [N, T, F]) or as word ids (``S_nlp_trans.npy`` [N, T]) plus one
``W_embedding.npy`` [V, F]; ids are expanded through the embedding batch by batch, never
all at once, and both forms give identical batches.

Everything is validated here, at the boundary, so the models never see silently wrong
numbers: each problem is a :class:`~selfcross.errors.DataError` naming the file and what
is wrong. Validation cost: shapes, dtypes, labels, lengths and ids are cheap; the NaN/inf
check reads every float array once, in chunks of ~32 MB (a few seconds per GB from a warm
page cache; full IEMOCAP audio, video and text vectors ~6 GB per fold). Pass
``check_values=False`` to skip it for data you have already checked
(``selfcross validate-data``).

Zero-video-length utterances are dropped, as the authors' loader did, whenever video is
read: video attention over zero frames is undefined. Runs without video keep them (nothing
in those runs is undefined), so their test splits hold a few more utterances than runs with
video. The authors' own check missed the case where only index 0 was empty; here every
zero-length utterance is dropped. The count is on :attr:`Split.n_dropped` and logged.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross.errors import DataError
from selfcross.folds import layout
from selfcross.labels import IEMOCAP7, MODALITIES, parse_modalities

log = logging.getLogger("selfcross.folds")

#: Bytes per chunk when scanning float arrays for NaN/inf and non-zero rows.
SCAN_CHUNK_BYTES = 32 * 2**20


def load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    """Open a ``.npy`` file (memory-mapped by default); any damage becomes a :class:`DataError`.

    Truncated files (``np.load`` raises ``ValueError`` when the data is shorter than the
    header says), non-``.npy`` files and pickled object arrays are all rejected.
    """
    if not path.is_file():
        raise DataError(path, "file is missing")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as e:
        raise DataError(path, f"not a readable .npy file (truncated or corrupt?): {e}") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(path, "not a single .npy array")
    if arr.dtype.kind not in "biuf":
        raise DataError(path, f"has dtype {arr.dtype}; expected numbers")
    return arr


def _scan(arr: np.ndarray, path: Path, check_finite: bool, count_rows: bool) -> np.ndarray | None:
    """One chunked pass over ``arr`` [N, T, F]: raise on NaN/inf, count non-zero rows per item.

    Returns the int64 [N] count of time steps with any non-zero feature if ``count_rows``.
    """
    n = arr.shape[0]
    counts = np.zeros(n, dtype=np.int64) if count_rows else None
    if not check_finite and not count_rows:
        return None
    row_bytes = max(1, int(np.prod(arr.shape[1:])) * arr.itemsize)
    step = max(1, SCAN_CHUNK_BYTES // row_bytes)
    for start in range(0, n, step):
        chunk = np.asarray(arr[start : start + step])
        if check_finite and chunk.dtype.kind == "f" and not np.isfinite(chunk).all():
            bad = start + int(np.argwhere(~np.isfinite(chunk))[0][0])
            raise DataError(path, f"contains NaN or inf values (first at row {bad})")
        if counts is not None:
            nonzero = (chunk != 0).reshape(len(chunk), chunk.shape[1], -1)  # [T, L, F] rows too
            counts[start : start + len(chunk)] = nonzero.any(axis=2).sum(axis=1)
    return counts


def _first_existing(*paths: Path) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def read_class_names(fold_dir: Path) -> tuple[str, ...]:
    """Class names from ``classes.txt`` in the fold or its data root; IEMOCAP's 7 if absent."""
    path = _first_existing(fold_dir / layout.CLASSES_FILE, fold_dir.parent / layout.CLASSES_FILE)
    if path is None:
        return IEMOCAP7.names
    try:
        names = tuple(s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip())
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot be read as UTF-8 text: {e}") from None
    if not names:
        raise DataError(path, "lists no class names")
    if len(set(names)) != len(names):
        raise DataError(path, "lists a class name twice")
    return names


@dataclass
class Split:
    """One split of a fold: labels, lengths, ids, and memory-mapped inputs read per batch.

    Rows dropped for zero video length are invisible: ``len(split)`` and batch indices
    count kept rows only.

    Attributes:
        name: ``train``, ``dev`` or ``test``.
        labels: int64 [n] class indices.
        ids: utterance ids [n] (from ``S_ids.txt``) or ``None``.
        n_dropped: rows dropped because their video length is 0.
        dropped_ids: ids of the dropped rows (row numbers as strings when there are no ids).
        prosody: memory-mapped ``S_audio_prosody.npy`` [n_raw, P] if present (not used by the
            models; indexed by raw row, see :attr:`rows`).
        rows: int64 [n] row numbers of the kept utterances in the files.
        scores: float64 [n] sentiment scores (``S_score.npy``) or ``None``.
    """

    name: str
    fold_dir: Path
    labels: np.ndarray
    rows: np.ndarray
    lengths: dict[str, np.ndarray]
    ids: list[str] | None = None
    n_dropped: int = 0
    dropped_ids: list[str] = field(default_factory=list)
    prosody: np.ndarray | None = None
    scores: np.ndarray | None = None
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _text_ids: np.ndarray | None = field(default=None, repr=False)
    _embedding: np.ndarray | None = field(default=None, repr=False)
    _ram: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities this split can serve, in canonical order."""
        have = set(self._arrays) | ({"text"} if self._text_ids is not None else set())
        return tuple(m for m in MODALITIES if m in have)

    def _check_modalities(self, modalities: Sequence[str] | str | None) -> tuple[str, ...]:
        if modalities is None:
            return self.modalities
        mods = parse_modalities(modalities if isinstance(modalities, str) else tuple(modalities))
        missing = [m for m in mods if m not in self.modalities]
        if missing:
            raise DataError(self.fold_dir, f"modalities {missing} were not read from this fold")
        return mods

    def _read_rows(self, modality: str, rows: np.ndarray) -> np.ndarray:
        """Rows of one modality from the files, as float32 [b, T, F] (ids expanded)."""
        # Reading in file order is kinder to the page cache; put the batch order back after.
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        if modality == "text" and self._text_ids is not None:
            assert self._embedding is not None
            data = self._embedding[np.asarray(self._text_ids[sorted_rows], dtype=np.int64)]
        else:
            data = np.asarray(self._arrays[modality][sorted_rows], dtype=np.float32)
        out = np.empty_like(data, dtype=np.float32)
        out[order] = data
        return out

    def get_batch(
        self,
        index: np.ndarray | Sequence[int],
        modalities: Sequence[str] | str | None = None,
        text_as_ids: bool = False,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Inputs and lengths of the utterances at ``index`` (positions among kept rows).

        Args:
            index: int [b] positions in ``0 .. len(self) - 1`` (any order, repeats allowed).
            modalities: subset of :attr:`modalities` (names or letters); ``None`` = all.
            text_as_ids: give text as its int64 [b, T] word ids, not expanded (for a model
                that owns its word vectors); text stored as vectors is then a :class:`DataError`.

        Returns:
            ``(inputs, lengths)``: ``inputs[m]`` float32 [b, T_m, F_m] (text ids expanded
            through ``W_embedding`` unless ``text_as_ids``), ``lengths[m]`` int64 [b] valid steps.
        """
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"batch index out of range for split {self.name!r} of {n} utterances")
        mods = self._check_modalities(modalities)
        inputs: dict[str, np.ndarray] = {}
        for m in mods:
            if m == "text" and text_as_ids:
                inputs[m] = self._word_ids_or_refuse(idx)
            elif m in self._ram:
                inputs[m] = self._ram[m][idx]
            else:
                inputs[m] = self._read_rows(m, self.rows[idx])
        lengths = {m: self.lengths[m][idx] for m in mods}
        return inputs, lengths

    def _word_ids_or_refuse(self, idx: np.ndarray) -> np.ndarray:
        ids = self.word_ids(idx)
        if ids is None:
            vectors = layout.split_file(self.name, "text")
            raise DataError(self.fold_dir, f"text is stored as word vectors ({vectors}); tuning word "
                            "vectors needs word ids (S_nlp_trans.npy + W_embedding.npy)")
        return ids

    def word_ids(self, index: np.ndarray | Sequence[int]) -> np.ndarray | None:
        """int64 [b, T] word ids of the utterances at ``index``, or ``None`` when text is not ids."""
        if self._text_ids is None:
            return None
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        return np.asarray(self._text_ids[self.rows[idx]], dtype=np.int64)

    def load_all(self, modalities: Sequence[str] | str | None = None) -> Split:
        """Read the kept rows of ``modalities`` into RAM (float32) so batches skip the disk.

        Only for data that fits in memory (the ``small`` synthetic preset: a few MB);
        full IEMOCAP is better served from the memory maps. Returns ``self``.
        """
        for m in self._check_modalities(modalities):
            if m not in self._ram:
                self._ram[m] = np.ascontiguousarray(self._read_rows(m, self.rows))
        return self

    def class_counts(self, n_classes: int) -> np.ndarray:
        """int64 [n_classes] number of utterances per class."""
        return np.bincount(self.labels, minlength=n_classes).astype(np.int64)


@dataclass
class Fold:
    """A fold folder: three splits sharing class names, modalities and shapes.

    Attributes:
        path: the fold folder.
        train, dev, test: the splits.
        class_names: label order (``classes.txt`` or IEMOCAP's 7).
        modalities: modalities read (requested and present), canonical order.
        shapes: ``{modality: (T, F)}`` per-utterance input shape (``(T, L, F)`` for audio or
            video holding ``L`` stacked encoder layers).
        text_form: ``"ids"`` (ids + ``W_embedding.npy``), ``"vectors"`` or ``None``.
        embedding_path: the ``W_embedding.npy`` used for the ids form.
        embedding: its float32 [V, F] matrix (``None`` without the ids form).
    """

    path: Path
    train: Split
    dev: Split
    test: Split
    class_names: tuple[str, ...]
    modalities: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    text_form: str | None = None
    embedding_path: Path | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def splits(self) -> dict[str, Split]:
        """``{"train": ..., "dev": ..., "test": ...}``."""
        return {"train": self.train, "dev": self.dev, "test": self.test}

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


def _modality_files(fold_dir: Path, split: str, modality: str, text_form: str | None) -> list[Path]:
    if modality == "text":
        key = "text_ids" if text_form == "ids" else "text"
        return [fold_dir / layout.split_file(split, key)]
    return [fold_dir / layout.split_file(split, modality)]


def _available(
    fold_dir: Path, requested: tuple[str, ...] | None
) -> tuple[tuple[str, ...], str | None, Path | None]:
    """Which modalities to read, the text form and the embedding path; raise on missing files."""
    emb = _first_existing(fold_dir / layout.EMBEDDING_FILE, fold_dir.parent / layout.EMBEDDING_FILE)
    text_form: str | None = None
    ids_files = [fold_dir / layout.split_file(s, "text_ids") for s in layout.SPLITS]
    vec_files = [fold_dir / layout.split_file(s, "text") for s in layout.SPLITS]
    if any(p.is_file() for p in ids_files) and (emb is not None or not any(p.is_file() for p in vec_files)):
        text_form = "ids"
    elif any(p.is_file() for p in vec_files):
        text_form = "vectors"
    chosen: list[str] = []
    for m in MODALITIES:
        files = [f for s in layout.SPLITS for f in _modality_files(fold_dir, s, m, text_form)]
        present = [f.is_file() for f in files]
        if requested is not None and m not in requested:
            continue
        wanted = requested is not None
        if not any(present) and not wanted:
            continue
        missing = [f for f, p in zip(files, present) if not p]
        if missing:
            why = (f"modality {m!r} was requested; {_present_modalities(fold_dir)}" if wanted
                   else f"modality {m!r} exists in other splits")
            raise DataError(missing[0], f"file is missing ({why})")
        if m == "text" and text_form == "ids" and emb is None:
            raise DataError(fold_dir / layout.EMBEDDING_FILE, "file is missing (text is given as word ids)")
        chosen.append(m)
    if not chosen:
        raise DataError(
            fold_dir,
            "no modality files found (expected e.g. train_audio_mfcc.npy, train_video.npy, "
            "train_text.npy or train_nlp_trans.npy)",
        )
    return tuple(chosen), text_form, (emb if text_form == "ids" and "text" in chosen else None)


def _present_modalities(fold_dir: Path) -> str:
    """``"this fold has: a, t"``: the modalities with a training file, as option letters."""
    names = {"audio": ["audio"], "video": ["video"], "text": ["text", "text_ids"]}
    have = [m[0] for m in MODALITIES
            if any((fold_dir / layout.split_file("train", k)).is_file() for k in names[m])]
    return f"this fold has: {', '.join(have) or 'no modality files'}"


def _rank(arr: np.ndarray, path: Path, ndim: int, what: str) -> None:
    if arr.ndim != ndim:
        raise DataError(path, f"has shape {arr.shape}; expected {ndim}-D {what}")


def _integer_vector(arr: np.ndarray, path: Path, n: int, what: str) -> np.ndarray:
    """A 1-D [n] integer-valued array as int64 (integral floats accepted)."""
    _rank(arr, path, 1, f"[N] {what}")
    if arr.shape[0] != n:
        raise DataError(path, f"has {arr.shape[0]} rows but the labels have {n}")
    a = np.asarray(arr)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise DataError(path, f"{what} must be integers; found non-integer values")
    return a.astype(np.int64)


def _read_labels(fold_dir: Path, split: str, n_classes: int) -> tuple[np.ndarray, Path]:
    """The split's labels as int64 ``[N]`` (N > 0, each in ``0..n_classes-1``) and their file."""
    lp = fold_dir / layout.split_file(split, "label")
    raw = load_npy(lp)
    _rank(raw, lp, 1, "[N] labels")
    n = raw.shape[0]
    if n == 0:
        raise DataError(lp, "the split is empty (0 utterances)")
    labels = _integer_vector(raw, lp, n, "labels")
    if labels.min() < 0 or labels.max() >= n_classes:
        bad = int(labels[(labels < 0) | (labels >= n_classes)][0])
        raise DataError(lp, f"label {bad} is out of range 0..{n_classes - 1} ({n_classes} classes)")
    return labels, lp


def _check_kind(arr: np.ndarray, path: Path, word_ids: bool, stacked_ok: bool = False) -> None:
    """``[N, T]`` integer word ids, or an ``[N, T, F]`` floating sequence (``[N, T, L, F]``
    stacked encoder layers too when ``stacked_ok``)."""
    if word_ids:
        _rank(arr, path, 2, "[N, T] word ids")
        if arr.dtype.kind not in "iu":
            raise DataError(path, f"word ids must be integers, got dtype {arr.dtype}")
    else:
        if not (stacked_ok and arr.ndim == 4):
            _rank(arr, path, 3, "[N, T, F] sequence")
        if arr.dtype.kind != "f":
            raise DataError(path, f"features must be floating point, got dtype {arr.dtype}")


def _word_id_counts(path: Path, arr: np.ndarray, embedding: np.ndarray) -> np.ndarray:
    """Check word ids against the embedding's rows; returns the valid (non-zero) counts."""
    ids = np.asarray(arr)
    if ids.size and (ids.min() < 0 or ids.max() >= embedding.shape[0]):
        raise DataError(
            path,
            f"word id {int(ids.max() if ids.max() >= embedding.shape[0] else ids.min())} is "
            f"outside the embedding's {embedding.shape[0]} rows",
        )
    return (ids != 0).sum(axis=1).astype(np.int64)


def _read_modalities(
    fold_dir: Path,
    split: str,
    modalities: tuple[str, ...],
    text_form: str | None,
    embedding: np.ndarray | None,
    n: int,
    label_file: str,
    check_values: bool,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray | None]:
    """Open and check every modality's array: ``(arrays, lengths, text_ids)``.

    ``lengths`` holds the counts read from the data (word ids, or non-padding frames where no
    ``seqN`` file gives them); ``text_ids`` is the ``[N, T]`` id array of the ``ids`` text form.
    """
    arrays: dict[str, np.ndarray] = {}
    lengths: dict[str, np.ndarray] = {}
    text_ids = None
    for m in modalities:
        (path,) = _modality_files(fold_dir, split, m, text_form)
        arr = load_npy(path)
        word_ids = m == "text" and text_form == "ids"
        _check_kind(arr, path, word_ids, stacked_ok=m != "text")
        if arr.shape[0] != n:
            raise DataError(path, f"has {arr.shape[0]} rows but {label_file} has {n}")
        if word_ids:
            assert embedding is not None
            lengths[m] = _word_id_counts(path, arr, embedding)
            text_ids = arr
            continue
        seq_key = layout.LENGTH_KEYS.get(m)
        has_seq = seq_key is not None and (fold_dir / layout.split_file(split, seq_key)).is_file()
        counts = _scan(arr, path, check_values, count_rows=not has_seq)
        arrays[m] = arr
        if counts is not None:
            lengths[m] = counts
    return arrays, lengths, text_ids


def _sequence_lengths(
    fold_dir: Path, split: str, modalities: tuple[str, ...], lengths: dict[str, np.ndarray], n: int
) -> np.ndarray | None:
    """Fill ``lengths`` for audio / video from the ``seqN`` files (clipped to T: a longer
    original was cut); returns the video lengths whenever the fold has video (read or not),
    for the drop rule."""
    video_len = None
    for m, key in layout.LENGTH_KEYS.items():
        sp = fold_dir / layout.split_file(split, key)
        has_modality_file = (fold_dir / layout.split_file(split, m)).is_file()
        if not has_modality_file or m not in modalities:
            continue
        if sp.is_file():
            seq = _integer_vector(load_npy(sp), sp, n, "sequence lengths")
            if seq.size and seq.min() < 0:
                raise DataError(sp, f"has a negative length ({int(seq.min())})")
            t = load_npy(fold_dir / layout.split_file(split, m)).shape[1]
            seq = np.minimum(seq, t)
        else:
            seq = lengths[m]
        lengths[m] = seq
        if m == "video":
            video_len = seq
    return video_len


def _read_ids(fold_dir: Path, split: str, n: int, label_file: str) -> list[str] | None:
    """The utterance ids of the optional ``S_ids.txt`` (one per line), or ``None``."""
    ip = fold_dir / layout.split_file(split, "ids")
    if not ip.is_file():
        return None
    try:
        ids_list = ip.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(ip, f"cannot be read as UTF-8 text: {e}") from None
    if len(ids_list) != n:
        raise DataError(ip, f"has {len(ids_list)} lines but {label_file} has {n} utterances")
    return ids_list


def _read_prosody(fold_dir: Path, split: str, n: int, label_file: str) -> np.ndarray | None:
    """The optional ``[N, P]`` prosody array, or ``None``."""
    pp = fold_dir / layout.split_file(split, "audio_prosody")
    if not pp.is_file():
        return None
    prosody = load_npy(pp)
    _rank(prosody, pp, 2, "[N, P] prosody")
    if prosody.shape[0] != n:
        raise DataError(pp, f"has {prosody.shape[0]} rows but {label_file} has {n}")
    return prosody


def _kept_rows(
    fold_dir: Path, split: str, video_len: np.ndarray | None, ids_list: list[str] | None, n: int
) -> tuple[np.ndarray, list[str]]:
    """Rows kept by the drop rule (zero video length is dropped) and the dropped ids."""
    keep = np.ones(n, dtype=bool) if video_len is None else video_len > 0
    rows = np.flatnonzero(keep).astype(np.int64)
    n_dropped = int(n - rows.size)
    dropped_ids = [ids_list[i] if ids_list else str(i) for i in np.flatnonzero(~keep)]
    if n_dropped:
        log.warning("%s/%s: dropped %d utterance(s) with zero video length (nothing for video attention "
                    "to attend to; the authors' loader drops them too)", fold_dir.name, split, n_dropped)
    if rows.size == 0:
        raise DataError(fold_dir / layout.split_file(split, "video_seqN"),
                        "the split is empty after dropping zero-video-length utterances")
    return rows, dropped_ids


def _read_scores(path: Path, n: int, check_values: bool) -> np.ndarray | None:
    """``S_score.npy`` as float64 [n], or ``None`` when the split has no scores."""
    if not path.is_file():
        return None
    scores = load_npy(path, mmap=False)
    _rank(scores, path, 1, "[N] scores")
    if scores.shape[0] != n:
        raise DataError(path, f"has {scores.shape[0]} rows but the labels have {n}")
    if check_values and not np.isfinite(scores).all():
        raise DataError(path, "contains NaN or inf scores")
    return scores.astype(np.float64)


def _read_split(
    fold_dir: Path,
    split: str,
    modalities: tuple[str, ...],
    text_form: str | None,
    embedding: np.ndarray | None,
    n_classes: int,
    check_values: bool,
) -> Split:
    labels, lp = _read_labels(fold_dir, split, n_classes)
    n = labels.shape[0]
    arrays, lengths, text_ids = _read_modalities(
        fold_dir, split, modalities, text_form, embedding, n, lp.name, check_values
    )
    video_len = _sequence_lengths(fold_dir, split, modalities, lengths, n)
    ids_list = _read_ids(fold_dir, split, n, lp.name)
    prosody = _read_prosody(fold_dir, split, n, lp.name)
    scores = _read_scores(fold_dir / layout.split_file(split, "score"), n, check_values)
    rows, dropped_ids = _kept_rows(fold_dir, split, video_len, ids_list, n)
    return Split(
        name=split,
        fold_dir=fold_dir,
        labels=labels[rows],
        rows=rows,
        lengths={m: lengths[m][rows] for m in modalities},
        ids=[ids_list[i] for i in rows] if ids_list is not None else None,
        n_dropped=int(n - rows.size),
        dropped_ids=dropped_ids,
        prosody=prosody,
        scores=None if scores is None else scores[rows],
        _arrays=arrays,
        _text_ids=text_ids,
        _embedding=embedding,
    )


def read_fold(
    path: str | Path, modalities: Sequence[str] | str | None = None, check_values: bool = True
) -> Fold:
    """Open and validate one fold folder.

    Args:
        path: the fold folder (``train_*.npy``, ``dev_*.npy``, ``test_*.npy``).
        modalities: names or letters (``"atv"``, ``("audio", "text")``); ``None`` = every
            modality whose files exist. A requested modality whose file is missing is an error.
        check_values: scan float arrays for NaN/inf (reads each once, in chunks; see module doc).

    Returns:
        A :class:`Fold` whose splits read memory-mapped arrays batch by batch.

    Raises:
        DataError: naming the file and the problem (missing, truncated, wrong rank, shape
            mismatch between files or splits, labels out of range, NaN/inf, empty split...).
    """
    fold_dir = Path(path)
    if not fold_dir.is_dir():
        raise DataError(fold_dir, "is not a folder" if fold_dir.exists() else "no such fold folder")
    _refuse_data_root(fold_dir)
    requested = None if modalities is None else parse_modalities(
        modalities if isinstance(modalities, str) else tuple(modalities)
    )
    class_names = read_class_names(fold_dir)
    mods, text_form, emb_path = _available(fold_dir, requested)
    for s in layout.SPLITS:
        lp = fold_dir / layout.split_file(s, "label")
        if not lp.is_file():
            raise DataError(lp, "file is missing (every split needs labels)")

    embedding = None if emb_path is None else _read_embedding(emb_path, check_values)
    splits = {s: _read_split(fold_dir, s, mods, text_form, embedding, len(class_names), check_values)
              for s in layout.SPLITS}
    shapes = _common_shapes(fold_dir, splits, mods, text_form, embedding)
    return Fold(
        path=fold_dir,
        train=splits["train"],
        dev=splits["dev"],
        test=splits["test"],
        class_names=class_names,
        modalities=mods,
        shapes=shapes,
        text_form=text_form if "text" in mods else None,
        embedding_path=emb_path,
        embedding=embedding,
    )


def _read_embedding(emb_path: Path, check_values: bool) -> np.ndarray:
    """The ``[V, F]`` word-vector matrix, in RAM as float32 (it is small)."""
    e = load_npy(emb_path)
    _rank(e, emb_path, 2, "[V, F] embedding")
    if e.dtype.kind != "f":
        raise DataError(emb_path, f"embedding must be floating point, got dtype {e.dtype}")
    embedding = np.ascontiguousarray(e, dtype=np.float32)
    if check_values and not np.isfinite(embedding).all():
        raise DataError(emb_path, "contains NaN or inf values")
    return embedding


def _common_shapes(
    fold_dir: Path, splits: dict[str, Split], mods: tuple[str, ...], text_form: str | None,
    embedding: np.ndarray | None,
) -> dict[str, tuple[int, ...]]:
    """Each modality's per-utterance shape, which every split must share."""
    shapes: dict[str, tuple[int, ...]] = {}
    for m in mods:
        seen: dict[tuple[int, ...], str] = {}
        for s, sp in splits.items():
            if m == "text" and text_form == "ids":
                assert sp._text_ids is not None and embedding is not None
                shp = (int(sp._text_ids.shape[1]), int(embedding.shape[1]))
            else:
                a = sp._arrays[m]
                shp = tuple(int(v) for v in a.shape[1:])
            seen.setdefault(shp, s)
        if len(seen) > 1:
            (s0, first), (s1, other) = ((v, k) for k, v in list(seen.items())[:2])
            (f,) = _modality_files(fold_dir, s1, m, text_form)
            raise DataError(f, f"{m} has per-utterance shape {list(other)} in {s1} but "
                               f"{list(first)} in {s0}")
        shapes[m] = next(iter(seen))
    return shapes


def fold_modalities(path: str | Path) -> tuple[str, ...]:
    """The modalities whose files a fold folder holds (canonical order), without reading them."""
    fold_dir = Path(path)
    if not fold_dir.is_dir():
        raise DataError(fold_dir, "is not a folder" if fold_dir.exists() else "no such fold folder")
    _refuse_data_root(fold_dir)
    return _available(fold_dir, None)[0]


def _refuse_data_root(path: Path) -> None:
    """A data root given where one fold is expected: say which fold folders to pass instead."""
    if is_fold(path):
        return
    folds = sorted(p.name for p in path.iterdir() if p.is_dir() and layout.fold_number(p.name) is not None)
    if folds:
        span = folds[0] if len(folds) == 1 else f"{folds[0]}..{folds[-1]}"
        raise DataError(path, f"is a data root, not a fold: pass {path / folds[0]} (folds: {span})")


def is_fold(path: str | Path) -> bool:
    """Whether ``path`` looks like a fold folder (has ``train_label.npy``)."""
    return (Path(path) / layout.split_file("train", "label")).is_file()


def list_folds(root: str | Path) -> list[Path]:
    """The fold folders of a data root, ``fold01 .. foldK`` in order.

    Raises:
        DataError: the root is not a folder, holds no fold folders, or their numbers are
            not contiguous from 1 (a gap or a duplicate such as ``fold1`` and ``fold01``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "no such data root folder")
    found: dict[int, Path] = {}
    for p in sorted(root.iterdir()):
        k = layout.fold_number(p.name)
        if k is None or not p.is_dir():
            continue
        if k in found:
            raise DataError(p, f"fold number {k} appears twice ({found[k].name} and {p.name})")
        found[k] = p
    if not found:
        raise DataError(root, f"holds no fold folders (fold01, fold02, ...) and is not a fold folder "
                              f"itself (no {layout.split_file('train', 'label')})")
    expected = list(range(1, max(found) + 1))
    missing = [k for k in expected if k not in found]
    if missing or 0 in found:
        gap = layout.fold_name(missing[0]) if missing else "fold00"
        raise DataError(root, f"fold folders are not contiguous from fold01: {gap} is missing"
                        if missing else "fold numbers must start at 1 (found fold00)")
    return [found[k] for k in expected]


def fingerprint(fold_dir: str | Path, sample_bytes: int = 4096, samples: int = 8) -> str:
    """A sha256 identifying a fold's contents, cheap even for a 3.6 GB audio file.

    Hashes, for every file in the fold (plus a data-root ``classes.txt`` / ``W_embedding.npy``
    the fold relies on): its name, its size, its first and last ``sample_bytes`` and
    ``samples`` evenly spaced blocks. Modification times are NOT used, so copying a fold
    keeps its fingerprint. Two folds differing only in bytes between samples collide; this is
    a provenance check, not an integrity check.
    """
    fold_dir = Path(fold_dir)
    if not fold_dir.is_dir():
        raise DataError(fold_dir, "no such fold folder")
    files = sorted(p for p in fold_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    for name in (layout.CLASSES_FILE, layout.EMBEDDING_FILE):
        if not (fold_dir / name).is_file() and (fold_dir.parent / name).is_file():
            files.append(fold_dir.parent / name)
    h = hashlib.sha256()
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.name}\0{size}\0".encode())
        offsets = {0, max(0, size - sample_bytes)}
        offsets |= {(size * i) // (samples + 1) for i in range(1, samples + 1)}
        with open(p, "rb") as f:
            for off in sorted(offsets):
                f.seek(off)
                h.update(f.read(sample_bytes))
    return h.hexdigest()


def root_fingerprint(root: str | Path) -> str:
    """A sha256 identifying a whole data root: its folds' names and :func:`fingerprint` s. A fold
    folder stands for the data root it is a fold of (else for itself alone), so that runs given
    one fold and runs given its root form one study."""
    root = Path(root)
    folds = [root]
    if is_fold(root):
        try:
            siblings = list_folds(root.parent)
        except DataError:
            siblings = []
        if root in siblings:
            folds = siblings
    else:
        folds = list_folds(root)
    h = hashlib.sha256()
    for fold in folds:
        h.update(f"{fold.name}\0{fingerprint(fold)}\0".encode())
    return h.hexdigest()
