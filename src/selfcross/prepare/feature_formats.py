"""Readers of the feature files multimodal-sentiment researchers already have.

Each reader returns the file's contents as they are (one :class:`RawSplit` per official
split), naming the file and key of every array, so that :mod:`selfcross.prepare.feature_import`
can validate them and write a data root. Published layouts:

* ``mmsa``: MMSA's ``aligned_50.pkl`` / ``unaligned_*.pkl``: a dict ``train`` / ``valid`` /
  ``test``, each a dict with ``text``, ``audio``, ``vision`` [N, T, F] float arrays,
  ``audio_lengths`` / ``vision_lengths`` (unaligned files), ``id``, ``raw_text``,
  ``regression_labels`` [N] (CH-SIMS adds ``regression_labels_A/V/T``) and
  ``classification_labels``. MMSA's loader sets the audio's ``-inf`` values to 0; so does
  this reader (the count is reported).
* ``mult``: the MulT release's ``{mosi,mosei_senti,iemocap}_data.pkl``: the same three
  splits, each with ``vision``, ``audio``, ``text`` [N, T, F], ``labels`` and ``id``.
  Sentiment labels are [N, 1, 1] scores; IEMOCAP's are [N, 4, 2]: for each of neutral,
  happy, sad, angry a one-hot (no, yes) pair. MulT's audio holds ``-inf`` values that its
  own loader sets to 0; so does this reader (the count is reported).
* ``mfn``: a folder of HDF5 files ``{audio,video,text}_{train,valid,test}[_emb].h5`` and
  ``y_{train,valid,test}.h5``, one dataset ``d1`` each, zero padding at the front (the
  Memory Fusion Network release of CMU-MOSI, ICT-MMMO, YouTube, POM).

Pickles are read only when the caller trusts them, through a restricted unpickler that
rebuilds NumPy arrays, dicts, lists, strings and numbers and refuses anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.errors import ConfigError, DataError
from selfcross.safepickle import NUMPY_GLOBALS, RefusedGlobal, load_restricted

#: Formats understood by :func:`read_features`.
FORMATS: tuple[str, ...] = ("mmsa", "mult", "mfn")
#: The files' split names -> selfcross split names.
SOURCE_SPLITS: dict[str, str] = {"train": "train", "valid": "dev", "test": "test"}
#: MulT's IEMOCAP emotions, in the order of the label array's second axis.
MULT_IEMOCAP_CLASSES: tuple[str, ...] = ("neutral", "happy", "sad", "angry")
#: Key of each modality in the pickled formats.
PICKLE_KEYS: dict[str, str] = {"audio": "audio", "video": "vision", "text": "text"}
#: Where the mfn format keeps each modality: ``{stem}_{split}{suffix}.h5``, suffixes tried in order.
MFN_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "audio": ("audio", ("", "_emb")),
    "video": ("video", ("", "_emb")),
    "text": ("text", ("_emb", "")),
}


@dataclass
class Array:
    """An array with where it came from (``file`` and ``key``), for error messages."""

    data: Any
    file: Path
    key: str

    def error(self, problem: str) -> DataError:
        """A :class:`DataError` naming this array's file and key."""
        return DataError(self.file, f"key {self.key!r}: {problem}")


@dataclass
class RawSplit:
    """One official split as read: features, optional lengths, labels and ids, unvalidated."""

    name: str
    features: dict[str, Array]
    labels: Array
    lengths: dict[str, Array] = field(default_factory=dict)
    ids: Array | None = None


@dataclass
class RawDataset:
    """A whole file (or folder) as read.

    Attributes:
        label_kind: ``"scores"`` (sentiment scores per utterance) or ``"iemocap4"``
            (MulT's [N, 4, 2] one-hot pairs).
        notes: what the reader noticed or did (for the report).
    """

    format: str
    source: Path
    splits: dict[str, RawSplit]
    label_kind: str
    notes: list[str] = field(default_factory=list)


def load_feature_pickle(path: Path, trust_pickle: bool) -> Any:
    """Unpickle a feature file with the restricted unpickler, only when trusted."""
    if path.is_dir():
        raise DataError(path, "is a folder; this format reads one .pkl file "
                              "(mfn reads a folder of .h5 files)")
    if not path.is_file():
        raise DataError(path, "file is missing")
    _refuse_non_pickle(path)
    if not trust_pickle:
        raise DataError(path, "is a pickle; unpickling runs code named by the file, so it is read only "
                              "with --trust-pickle (Python: trust_pickle=True), and then only its NumPy "
                              "arrays, dicts, lists, strings and numbers")
    try:
        with path.open("rb") as f:
            return load_restricted(f, NUMPY_GLOBALS)
    except RefusedGlobal as e:
        raise DataError(path, f"refused: the pickle asks for {e.qualified}, which is not a NumPy array, "
                              "dict, list, string or number; nothing from it was run or loaded") from None
    except Exception as e:  # any other failure is a damaged file, not a bug of ours
        raise DataError(path, f"not a readable pickle ({type(e).__name__}: {e})") from None


def _refuse_non_pickle(path: Path) -> None:
    """A file that cannot be a pickle (text such as a CSV, an HDF5 file) is named for what it is.

    Why: every protocol-2+ pickle starts with the PROTO opcode (0x80); protocols 0-1 start
    with an opcode such as ``(`` or ``}``. A CSV or HDF5 file would otherwise be called
    "a pickle" in the trust message, sending the user the wrong way."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF"):
        raise DataError(path, "is an HDF5 file, not a pickle; this format reads a pickle (the MFN "
                              "release, a folder of .h5 files, is read by `import-features mfn FOLDER`)")
    if head[:1] not in (b"\x80", b"(", b"}", b"]", b"c"):
        kind = "a text file (CSV?)" if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head) \
            else "not a pickle"
        raise DataError(path, f"is {kind}, not a pickle: this format reads the pickle file "
                              "its project publishes (see `selfcross import-features --help`)")


def _split_dict(top: Any, path: Path, source_split: str) -> dict[str, Any]:
    if not isinstance(top, dict):
        raise DataError(path, f"holds a {type(top).__name__}, expected a dict of splits train/valid/test")
    if source_split not in top:
        raise DataError(path, f"key {source_split!r} is missing (the split; found {sorted(map(str, top))})")
    part = top[source_split]
    if not isinstance(part, dict):
        raise DataError(path, f"key {source_split!r}: holds a {type(part).__name__}, expected a dict")
    return part


def _get(part: dict[str, Any], path: Path, split: str, key: str, required: bool = True) -> Array | None:
    if key not in part:
        if required:
            raise DataError(path, f"key '{split}/{key}' is missing (found {sorted(map(str, part))})")
        return None
    return Array(part[key], path, f"{split}/{key}")


def read_mmsa(path: Path, trust_pickle: bool) -> RawDataset:
    """Read an MMSA feature pickle (see the module docstring)."""
    top = load_feature_pickle(path, trust_pickle)
    splits: dict[str, RawSplit] = {}
    for src, name in SOURCE_SPLITS.items():
        part = _split_dict(top, path, src)
        feats = {m: _get(part, path, src, k) for m, k in PICKLE_KEYS.items()}
        lengths = {m: a for m in ("audio", "video")
                   if (a := _get(part, path, src, f"{PICKLE_KEYS[m]}_lengths", required=False))}
        splits[name] = RawSplit(name, feats, _get(part, path, src, "regression_labels"),  # type: ignore[arg-type]
                                lengths, _get(part, path, src, "id", required=False))
    notes = [n for s in splits.values() if (n := _zero_minus_inf(s.features["audio"], "MMSA"))]
    train = _split_dict(top, path, "train")
    unimodal = sorted(k for k in train if str(k).startswith("regression_labels_"))
    if unimodal:
        notes.append(f"Unimodal labels {', '.join(unimodal)} are present and not used (the multimodal "
                     "`regression_labels` are the scores).")
    return RawDataset("mmsa", path, splits, "scores", notes)


def read_mult(path: Path, trust_pickle: bool) -> RawDataset:
    """Read a MulT feature pickle (see the module docstring)."""
    top = load_feature_pickle(path, trust_pickle)
    splits: dict[str, RawSplit] = {}
    for src, name in SOURCE_SPLITS.items():
        part = _split_dict(top, path, src)
        feats = {m: _get(part, path, src, k) for m, k in PICKLE_KEYS.items()}
        splits[name] = RawSplit(name, feats, _get(part, path, src, "labels"),  # type: ignore[arg-type]
                                ids=_get(part, path, src, "id", required=False))
    shape = np.shape(splits["train"].labels.data)
    kind = "iemocap4" if len(shape) == 3 and shape[1:] == (4, 2) else "scores"
    notes = [n for s in splits.values() if (n := _zero_minus_inf(s.features["audio"], "MulT"))]
    return RawDataset("mult", path, splits, kind, notes)


def _zero_minus_inf(audio: Array, toolkit: str) -> str:
    """Set ``-inf`` audio values to 0, as the toolkit's own loader does; say how many there were."""
    a = audio.data
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
        return ""
    bad = np.isneginf(a)
    if not bad.any():
        return ""
    audio.data = np.where(bad, 0.0, a).astype(a.dtype)
    return f"{audio.key}: {int(bad.sum())} -inf values set to 0 (as {toolkit}'s data loader does)."


def _h5py() -> Any:
    try:
        import h5py
    except ModuleNotFoundError:
        raise ConfigError("reading the mfn format (HDF5) needs h5py: pip install 'selfcross[hdf5]'") from None
    return h5py


def _read_h5(path: Path, key: str = "d1") -> Array:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise DataError(path, f"key {key!r} is missing (found {sorted(f.keys())})")
            return Array(np.asarray(f[key][()]), path, key)
    except OSError as e:
        raise DataError(path, f"not a readable HDF5 file ({e})") from None


def _mfn_file(folder: Path, modality: str, src: str) -> Path | None:
    stem, suffixes = MFN_FILES[modality]
    return next((p for s in suffixes if (p := folder / f"{stem}_{src}{s}.h5").is_file()), None)


def read_mfn(folder: Path) -> RawDataset:
    """Read an MFN feature folder (see the module docstring); a modality is read only if
    every split has its file (the report says which were left out)."""
    if not folder.is_dir():
        raise DataError(folder, "no such folder (the mfn format is a folder of .h5 files)")
    found = {m: {src: _mfn_file(folder, m, src) for src in SOURCE_SPLITS} for m in MFN_FILES}
    notes = []
    mods = [m for m, per in found.items() if all(per.values())]
    for m, per in found.items():
        have = [s for s, p in per.items() if p]
        if have and m not in mods:
            notes.append(f"{m}: files only for split(s) {', '.join(have)}; not imported.")
    if not mods:
        raise DataError(folder, "no modality has all of its files (expected e.g. audio_train.h5, "
                                "audio_valid.h5, audio_test.h5)")
    splits = {}
    for src, name in SOURCE_SPLITS.items():
        y = folder / f"y_{src}.h5"
        if not y.is_file():
            raise DataError(y, "file is missing (the labels of split " f"{src!r})")
        feats = {m: _read_h5(found[m][src]) for m in mods}  # type: ignore[arg-type]
        splits[name] = RawSplit(name, feats, _read_h5(y))
    return RawDataset("mfn", folder, splits, "scores", notes)


def read_features(fmt: str, src: str | Path, trust_pickle: bool = False) -> RawDataset:
    """Read ``src`` in format ``fmt`` (one of :data:`FORMATS`)."""
    src = Path(src)
    if fmt == "mmsa":
        return read_mmsa(src, trust_pickle)
    if fmt == "mult":
        return read_mult(src, trust_pickle)
    if fmt == "mfn":
        return read_mfn(src)
    raise ConfigError(f"unknown feature format {fmt!r}: use one of {', '.join(FORMATS)}")
