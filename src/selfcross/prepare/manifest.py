"""Any labelled corpus of clips -> a data root, from one CSV manifest.

Why a manifest: every corpus has its own layout, but what a preparation needs from it is
the same short list per utterance (id, label, media files, words, speaker, and maybe an
official split). A manifest is that list as a CSV, so any corpus a user has on disk can be
prepared without code, and the corpus adapters (:mod:`selfcross.prepare.adapters`) only
write a manifest. Feature extraction, cache, folds and report are the generic machinery
of :mod:`selfcross.prepare.pipeline`.

Manifest columns (header row required, UTF-8, any column order, extra columns ignored):

========== ===========================================================================
``id``     unique utterance id (required)
``label``  class name (required)
``audio``  audio file, or a video whose audio track is used (wav/flac/ogg/mp4/avi/...)
``video``  video file
``transcript`` the words spoken
``speaker`` speaker identity (the default ``--group-column``)
``split``  ``train``, ``dev`` (or ``val``/``valid``/``validation``) or ``test``
========== ===========================================================================

A modality whose column is absent (or empty in every row) is absent from the data root.
Relative paths are resolved against the manifest's folder.

Folds:

* ``split_column`` given: one fold (``fold01``) with the official split. A speaker in two
  splits is an error unless ``allow_shared_speakers`` (MELD's official split shares its
  main characters; the report then says how many speakers are shared).
* otherwise ``n_folds`` speaker-independent folds, grouped by the group column and
  stratified by label (:class:`sklearn.model_selection.StratifiedGroupKFold`): fold k tests
  on the k-th part; dev = whole speakers of the other parts (about ``dev_fraction`` of
  them, again grouped and stratified); the rest trains. Without a group column every row
  is its own group and the report says the folds are *not* speaker independent.

Validation (each error names the manifest, the 1-based CSV line and the problem):
missing columns, empty ids or labels, duplicate ids, labels outside ``class_names``,
unknown split names, a speaker in two splits, and media files that do not exist
(``on_missing="error"``, the default; ``"skip"`` leaves such rows out and lists them in
the report). Mixed sample rates and stereo audio are *not* errors: every waveform is
mixed down to mono (mean of the channels) and resampled to the audio config's rate (soxr)
by :func:`selfcross.features.audio.load_audio`; the report counts the rates and channel
layouts it found.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.errors import ConfigError, DataError
from selfcross.labels import CLASS_SETS, MODALITIES
from selfcross.prepare.pipeline import (  # noqa: F401 - VIDEO_ENCODERS: public here too
    VIDEO_ENCODERS,
    FoldPlan,
    PrepareResult,
    Skip,
    UtteranceRecord,
    prepare_records,
    video_encoder_setup,
)

log = logging.getLogger("selfcross.folds")

#: Column of each modality's media (or words) in a manifest.
MODALITY_COLUMNS: dict[str, str] = {"audio": "audio", "video": "video", "text": "transcript"}
#: Accepted split names -> canonical split.
SPLIT_NAMES: dict[str, str] = {
    "train": "train", "training": "train",
    "dev": "dev", "val": "dev", "valid": "dev", "validation": "dev",
    "test": "test", "testing": "test",
}
#: Reason recorded for rows left out with ``on_missing="skip"``.
SKIP_MISSING_FILE = "media file missing (manifest)"


@dataclass
class Manifest:
    """A validated manifest: records, which modalities it has, and what was noticed.

    Attributes:
        path: the CSV file.
        records: one :class:`UtteranceRecord` per kept row (``group`` = the row's speaker
            group until folds are planned).
        modalities: modalities with a non-empty column, canonical order.
        class_names: label order (given, or sorted labels of the manifest).
        splits: utterance id -> ``train``/``dev``/``test`` (empty without a split column).
        skipped: rows left out (missing media with ``on_missing="skip"``).
        notes: facts for the report (audio formats found, shared speakers, ...).
        lines: utterance id -> 1-based CSV line (for error messages).
        speaker_column: the column the speakers came from (``None``: none, every row is its
            own speaker).
    """

    path: Path
    records: list[UtteranceRecord]
    modalities: tuple[str, ...]
    class_names: tuple[str, ...]
    splits: dict[str, str] = field(default_factory=dict)
    skipped: list[Skip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)
    speaker_column: str | None = None


def parse_labels(spec: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"a,b,c"``, a class-set key of :data:`selfcross.labels.CLASS_SETS` (``ravdess8``) or
    a sequence -> class names in order; ``None`` stays ``None`` (labels read from the data)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec in CLASS_SETS:
            return CLASS_SETS[spec].names
        names = tuple(s.strip() for s in spec.split(",") if s.strip())
    else:
        names = tuple(str(s).strip() for s in spec)
    if not names:
        raise ConfigError("--labels is empty: give class names separated by commas")
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise ConfigError(f"--labels names {dup[0]!r} twice")
    return names


def _resolve(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


@dataclass(frozen=True)
class _Columns:
    """A manifest's header: where each column is, and the speaker-group column in use."""

    header: list[str]
    index: dict[str, int]
    group: str | None

    def cell(self, row: list[str], name: str) -> str:
        """The stripped cell of ``name`` in ``row`` ("" when the column or the cell is absent)."""
        i = self.index.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""


@dataclass
class _Rows:
    """What the rows of a manifest gave: kept records, their splits and lines, skipped rows."""

    records: list[UtteranceRecord] = field(default_factory=list)
    splits: dict[str, str] = field(default_factory=dict)
    skipped: list[Skip] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    #: modality -> whether any row (kept or not) gives it a value
    has_value: dict[str, bool] = field(default_factory=dict)


def _read_csv_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise DataError(path, f"is not UTF-8 text ({e})") from None
    except csv.Error as e:
        raise DataError(path, f"is not a readable CSV file ({e})") from None


def _read_header(
    path: Path, rows: list[list[str]], split_column: str | None, group_column: str | None
) -> _Columns:
    if not rows or not any(c.strip() for c in rows[0]):
        raise DataError(path, "is empty: the first line must be a header with at least id,label")
    header = [c.strip() for c in rows[0]]
    dup_cols = [c for c, n in Counter(header).items() if n > 1 and c]
    if dup_cols:
        raise DataError(path, f"line 1: column {dup_cols[0]!r} appears twice in the header")
    col = {c: i for i, c in enumerate(header)}
    need = ["id", "label"] + ([split_column] if split_column else [])
    missing_cols = [c for c in need if c not in col]
    if missing_cols:
        raise DataError(path, f"line 1: missing column(s) {', '.join(missing_cols)} "
                              f"(header: {', '.join(header)})")
    # "speaker" is the default: a manifest without it simply has one group per row
    if group_column is not None and group_column not in col and group_column != "speaker":
        raise DataError(path, f"line 1: group column {group_column!r} is not in the header "
                              f"({', '.join(header)})")
    return _Columns(header, col, group_column if group_column in col else None)


def _row_identity(
    path: Path, lineno: int, row: list[str], cols: _Columns, seen: dict[str, int],
    wanted: tuple[str, ...] | None, split_column: str | None,
) -> tuple[str, str, str, str]:
    """(id, label, split, speaker) of one row, each checked; records the id in ``seen``."""
    if len(row) > len(cols.header):
        raise DataError(path, f"line {lineno}: {len(row)} fields but the header has {len(cols.header)}")
    utt, label = cols.cell(row, "id"), cols.cell(row, "label")
    if not utt:
        raise DataError(path, f"line {lineno}: empty id")
    if utt in seen:
        raise DataError(path, f"line {lineno}: duplicate id {utt!r} (first on line {seen[utt]})")
    seen[utt] = lineno
    if not label:
        raise DataError(path, f"line {lineno}: utterance {utt!r} has an empty label")
    if wanted is not None and label not in wanted:
        raise DataError(path, f"line {lineno}: utterance {utt!r} has label {label!r}, not one of "
                              f"{', '.join(wanted)}")
    split = ""
    if split_column:
        raw = cols.cell(row, split_column)
        split = SPLIT_NAMES.get(raw.lower(), "")
        if not split:
            raise DataError(path, f"line {lineno}: utterance {utt!r} has split {raw!r} in column "
                                  f"{split_column!r}; use train, dev (val) or test")
    speaker = cols.cell(row, cols.group) if cols.group else ""
    if cols.group and not speaker:
        raise DataError(path, f"line {lineno}: utterance {utt!r} has an empty {cols.group!r}")
    return utt, label, split, speaker


def _row_media(
    row: list[str], cols: _Columns, present: set[str], base: Path, has_value: dict[str, bool]
) -> tuple[dict[str, Path | None], str | None, list[str]]:
    """(media files, transcript, problems) of one row; marks the modalities it gives."""
    media: dict[str, Path | None] = {"audio": None, "video": None}
    missing_here: list[str] = []
    for m in ("audio", "video"):
        if m not in present:
            continue
        v = cols.cell(row, MODALITY_COLUMNS[m])
        if not v:
            missing_here.append(f"no {m} file given")
            continue
        has_value[m] = True
        p = _resolve(v, base)
        if p.is_dir():
            missing_here.append(f"{m} file {p} is a folder, not a file")
        elif not p.is_file():
            missing_here.append(f"{m} file {p} does not exist")
        media[m] = p
    transcript = cols.cell(row, "transcript") if "text" in present else None
    if transcript:
        has_value["text"] = True
    return media, transcript, missing_here


def _read_rows(
    path: Path, rows: list[list[str]], cols: _Columns, present: set[str],
    wanted: tuple[str, ...] | None, split_column: str | None, on_missing: str,
) -> _Rows:
    """Check every non-blank row; a row with missing media raises or is skipped (``on_missing``)."""
    out = _Rows(has_value=dict.fromkeys(present, False))
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue  # blank line
        utt, label, split, speaker = _row_identity(path, lineno, row, cols, out.seen, wanted, split_column)
        media, transcript, missing_here = _row_media(row, cols, present, path.parent, out.has_value)
        if missing_here:
            if on_missing == "error":
                raise DataError(path, f"line {lineno}: utterance {utt!r}: {'; '.join(missing_here)} "
                                      "(--skip-missing leaves such rows out and lists them in the report)")
            out.skipped.append(Skip(utt, SKIP_MISSING_FILE, f"line {lineno}: {'; '.join(missing_here)}"))
            continue
        out.records.append(UtteranceRecord(
            id=utt, label=label, speaker=speaker or utt, group=speaker or utt,
            audio=media["audio"], video=media["video"], transcript=transcript,
        ))
        out.lines[utt] = lineno
        if split:
            out.splits[utt] = split
    if not out.records:
        raise DataError(path, "no usable rows" + (f" ({len(out.skipped)} left out for missing media)"
                                                  if out.skipped else ""))
    return out


def read_manifest(
    path: str | Path,
    *,
    class_names: Sequence[str] | str | None = None,
    split_column: str | None = None,
    group_column: str | None = "speaker",
    on_missing: str = "error",
    allow_shared_speakers: bool = False,
    probe_audio: bool = True,
    modalities: Sequence[str] | None = None,
) -> Manifest:
    """Read and validate a manifest CSV (nothing is decoded; see the module doc).

    Args:
        path: the CSV file.
        class_names: label order (``"a,b,c"``, a class-set key, or names); labels outside
            it are an error. ``None`` = the sorted set of labels found.
        split_column: column holding the official split; ``None`` = no split (folds later).
        group_column: column of the speaker groups (``None`` or absent = one group per row).
        on_missing: ``"error"`` (default) or ``"skip"`` for media files that do not exist.
        allow_shared_speakers: with ``split_column``, accept a speaker in two splits
            (noted in the report) instead of raising.
        probe_audio: read the header of each wav/flac/ogg file to report sample rates and
            channel counts (cheap; headers only).
        modalities: only these modalities' columns are read and checked (``None`` = all);
            e.g. a text-only preparation ignores missing video files.

    Raises:
        DataError: naming the manifest and line for every malformed row.
    """
    path = Path(path)
    if on_missing not in ("error", "skip"):
        raise ConfigError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    if not path.is_file():
        raise DataError(path, "no such manifest file")
    wanted = parse_labels(class_names)
    rows = _read_csv_rows(path)
    cols = _read_header(path, rows, split_column, group_column)
    present = {m for m, c in MODALITY_COLUMNS.items()
               if c in cols.index and (modalities is None or m in modalities)}
    got = _read_rows(path, rows, cols, present, wanted, split_column, on_missing)
    # a modality column that is empty in every row is treated as absent
    found = tuple(m for m in MODALITIES if m in present and got.has_value[m])
    names = wanted if wanted is not None else tuple(sorted({r.label for r in got.records}))
    man = Manifest(path, got.records, found, names, got.splits, got.skipped, [], got.lines, cols.group)
    if not cols.group:
        man.notes.append("No speaker/group column: every utterance is its own group, so folds are "
                         "NOT speaker independent.")
    if split_column:
        _check_split_speakers(man, allow_shared_speakers, cols.group)
    if probe_audio and "audio" in found:
        man.notes.extend(audio_format_notes([r.audio for r in got.records if r.audio is not None]))
    return man


def label_warnings(records: Sequence[UtteranceRecord], given: bool, n_folds: int) -> list[str]:
    """Labels that look like mistakes: classes too small to appear in every test fold, and
    (when no class list was given) labels outside the known class set that holds the others.

    Why: without ``--labels`` every distinct string becomes a class, so a typo such as
    ``joyful`` among RAVDESS labels silently makes a one-clip class.
    """
    counts = Counter(r.label for r in records)
    out = []
    need = max(3, n_folds)
    rare = sorted(c for c, n in counts.items() if n < need)
    if rare:
        listed = ", ".join(f"{c!r} ({counts[c]})" for c in rare)
        out.append(f"class(es) with fewer than {need} items: {listed}; some test folds will have "
                   "none of them (a typo in the label column?)")
    if not given:
        # the set holding most of the labels; among equals the smallest (iemocap4 before iemocap7)
        best = max(CLASS_SETS.values(), key=lambda cs: (len(set(cs.names) & set(counts)), -len(cs)))
        inside = set(best.names) & set(counts)
        outside = sorted(set(counts) - set(best.names))
        if outside and len(inside) >= max(2, len(counts) / 2):
            out.append(f"label(s) {', '.join(map(repr, outside))} are not in the {best.key} class set "
                       f"({', '.join(best.names)}) that holds the others; give --labels {best.key} to make "
                       "such labels an error")
    return out


def _check_split_speakers(man: Manifest, allow: bool, gcol: str | None) -> None:
    if not gcol:
        return
    where: dict[str, dict[str, str]] = {}
    for r in man.records:
        where.setdefault(r.speaker, {}).setdefault(man.splits[r.id], r.id)
    shared = {s: v for s, v in where.items() if len(v) > 1}
    if not shared:
        man.notes.append("Official split: no speaker is in two splits.")
        return
    if not allow:
        s, v = sorted(shared.items())[0]
        (a, ua), (b, ub) = list(v.items())[:2]
        raise DataError(man.path, f"line {man.lines[ub]}: speaker {s!r} is in split {b!r} (utterance "
                                  f"{ub!r}) and in split {a!r} (line {man.lines[ua]}, {ua!r}); the split "
                                  f"would not be speaker independent (allow it with "
                                  f"--allow-shared-speakers)")
    shown = ", ".join(sorted(shared)[:8]) + (" ..." if len(shared) > 8 else "")
    man.notes.append(f"Official split is NOT speaker independent: {len(shared)} of {len(where)} "
                     f"speakers appear in more than one split ({shown}).")


def audio_format_notes(files: Sequence[Path]) -> list[str]:
    """Report lines on the sample rates and channel counts of the audio files.

    Only headers of soundfile-readable files are read; other containers (mp4...) are
    counted as "decoded by PyAV". Why not an error: every file is mixed down to mono and
    resampled on extraction, so mixed formats are fine, but a user should see them.
    """
    import soundfile as sf

    from selfcross.features.audio import SOUNDFILE_EXTENSIONS

    rates: Counter[int] = Counter()
    channels: Counter[int] = Counter()
    other = 0
    for f in files:
        if f.suffix.lower() not in SOUNDFILE_EXTENSIONS:
            other += 1
            continue
        try:
            info = sf.info(str(f))
        except (RuntimeError, sf.LibsndfileError, TypeError, ValueError):
            other += 1  # unreadable headers are reported as skips by the extraction
            continue
        rates[int(info.samplerate)] += 1
        channels[int(info.channels)] += 1
    notes = []
    if rates:
        r = ", ".join(f"{k} Hz: {v}" for k, v in sorted(rates.items()))
        c = ", ".join(f"{k} channel(s): {v}" for k, v in sorted(channels.items()))
        notes.append(f"Audio files found: {r}; {c}. Every waveform is mixed down to mono (channel "
                     "mean) and resampled (soxr) to the audio config's sample rate before MFCCs.")
    if other:
        notes.append(f"{other} audio source(s) in other containers (or with unreadable headers) are "
                     "decoded by PyAV (first audio track), mixed down and resampled the same way.")
    return notes


# --------------------------------------------------------------------------- folds


def plan_split_fold(man: Manifest) -> list[FoldPlan]:
    """One fold from the official split (``fold01``: train / dev / test as given)."""
    parts: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for r in man.records:
        parts[man.splits[r.id]].append(r.id)
    empty = [k for k, v in parts.items() if not v]
    if empty:
        raise DataError(man.path, f"the split column has no {' / '.join(empty)} utterance: each of "
                                  "train, dev and test needs at least one")
    dev_speakers = sorted({r.speaker for r in man.records if man.splits[r.id] == "dev"})
    return [FoldPlan(["test"], parts["train"], parts["dev"], parts["test"], dev_speakers)]


def plan_stratified_group_folds(
    records: Sequence[UtteranceRecord], n_folds: int, dev_fraction: float = 0.1, seed: int = 0
) -> list[FoldPlan]:
    """``n_folds`` speaker-independent folds, stratified by label.

    Fold k tests on the k-th part of a :class:`~sklearn.model_selection.StratifiedGroupKFold`
    over speakers; its dev set is one part of a second ``StratifiedGroupKFold`` over the
    remaining speakers with ``round(1 / dev_fraction)`` parts (at least 2, at most the
    number of remaining speakers), the part chosen rotating with k. Everything else trains.
    No speaker is in two splits of a fold, and every speaker is tested exactly once.

    Raises:
        DataError: fewer speakers than ``n_folds`` (or than 2 for dev), ``n_folds < 2``.
    """
    if n_folds < 2:
        raise DataError(None, f"need at least 2 folds, got {n_folds}")
    if not 0 < dev_fraction < 1:
        raise DataError(None, f"dev_fraction must be in (0, 1), got {dev_fraction}")
    speakers = np.array([r.speaker for r in records])
    labels = np.array([r.label for r in records])
    n_spk = len(set(speakers.tolist()))
    if n_spk < n_folds:
        raise DataError(None, f"{n_spk} speaker group(s) cannot make {n_folds} speaker-independent folds: "
                              f"use --folds {n_spk} or fewer (each fold tests on its own speakers)")
    ids = [r.id for r in records]
    plans = []
    for k, (pool_idx, test_idx) in enumerate(_group_splits(labels, speakers, n_folds, seed)):
        pool_spk = speakers[pool_idx]
        n_pool_spk = len(set(pool_spk.tolist()))
        if n_pool_spk < 2:
            raise DataError(None, f"fold {k + 1}: the training part has one speaker; dev needs another")
        n_dev_parts = min(max(2, round(1 / dev_fraction)), n_pool_spk)
        parts = _group_splits(labels[pool_idx], pool_spk, n_dev_parts, seed + 1 + k)
        train_rel, dev_rel = parts[k % len(parts)]
        dev_idx = pool_idx[dev_rel]
        dev_set = set(dev_idx.tolist())
        test_spk = sorted(set(speakers[test_idx].tolist()))
        plans.append(FoldPlan(
            test_groups=test_spk,
            train=[ids[i] for i in pool_idx if i not in dev_set],
            dev=[ids[i] for i in dev_idx],
            test=[ids[i] for i in test_idx],
            dev_speakers=sorted(set(speakers[dev_idx].tolist())),
        ))
    return plans


def _group_splits(
    labels: np.ndarray, groups: np.ndarray, n: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``StratifiedGroupKFold`` splits; plain ``GroupKFold`` when every class has fewer than ``n``
    members (sklearn cannot stratify then; only tiny corpora get there)."""
    import warnings

    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    x = np.zeros(len(labels))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        try:
            sgkf = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
            return list(sgkf.split(x, labels, groups))
        except ValueError:
            gkf = GroupKFold(n_splits=n, shuffle=True, random_state=seed)
            return list(gkf.split(x, labels, groups))


# --------------------------------------------------------------------------- preparation


def _manifest_modalities(
    man: Manifest, wanted: tuple[str, ...] | None, glove: Any, text_config: Any
) -> tuple[str, ...]:
    """The modalities to prepare: those asked for (each must be in the manifest) or all it has."""
    from selfcross.features.pretrained import is_hf_config

    if wanted is None:
        mods = man.modalities
    else:
        mods = wanted
        lacking = [m for m in mods if m not in man.modalities]
        if lacking:
            raise ConfigError(f"{man.path}: the manifest has no {', '.join(lacking)} column (or it is "
                              f"empty); it has {', '.join(man.modalities) or 'no media'}")
    if not mods:
        raise ConfigError(f"{man.path}: no modality to prepare (the manifest has "
                          f"{', '.join(man.modalities) or 'no media column'})")
    if "text" in mods and glove is None and not is_hf_config(text_config):
        raise ConfigError("the manifest has transcripts: give --glove FILE (or kumo-6b-50d) or "
                          "--text-encoder hf:NAME, or choose --modalities without t")
    return mods


def _plan_manifest_folds(
    man: Manifest, split_column: str | None, n_folds: int | None, group_column: str | None,
    dev_fraction: float, fold_seed: int,
) -> tuple[list[FoldPlan], list[UtteranceRecord], str]:
    """(folds, records grouped for the report's class table, the report's line on the folds)."""
    records = man.records
    if split_column is not None:
        folds = plan_split_fold(man)
        records = [replace(r, group=man.splits[r.id]) for r in records]
        fold_note = f"One fold from the official split in column {split_column!r}."
    else:
        k = 5 if n_folds is None else int(n_folds)
        folds = plan_stratified_group_folds(records, k, dev_fraction, fold_seed)
        test_fold = {i: f"fold{j:02d}" for j, p in enumerate(folds, start=1) for i in p.test}
        records = [replace(r, group=test_fold[r.id]) for r in records]
        fold_note = (f"{k} folds grouped by {group_column!r} and stratified by label (sklearn "
                     f"StratifiedGroupKFold, seed {fold_seed}); the class table's groups are the test "
                     "folds and the folds table lists each fold's test speakers.")
    return folds, records, fold_note


def prepare_manifest(
    manifest: str | Path,
    out_root: str | Path,
    *,
    n_folds: int | None = None,
    split_column: str | None = None,
    group_column: str | None = "speaker",
    class_names: Sequence[str] | str | None = None,
    glove: str | Path | None = None,
    modalities: Sequence[str] | str | None = None,
    video_encoder: Any = "resnet101",
    audio_config: Any = None,
    video_config: Any = None,
    text_config: Any = None,
    workers: int = 1,
    progress: bool = True,
    dev_fraction: float = 0.1,
    fold_seed: int = 0,
    on_missing: str = "error",
    allow_shared_speakers: bool = False,
    title: str = "Manifest preparation",
    notes: Sequence[str] = (),
    speaker_norm: bool = False,
    on_unreadable: str = "error",
) -> PrepareResult:
    """Manifest CSV -> data root (``fold01..foldK``, ``S_ids.txt``, ``classes.txt``, report).

    Args:
        manifest: the CSV (see the module doc for its columns).
        out_root: data root to write; its ``.cache`` makes a rerun resume.
        n_folds: speaker-independent folds to make (default 5) when there is no split column.
        split_column: column with the official train/dev/test split (one fold); excludes
            ``n_folds``.
        group_column: speaker column (default ``speaker``; absent = one group per row).
        class_names: label order (``"a,b,c"`` or a class-set key); ``None`` = sorted labels.
        glove: GloVe text file or ``"kumo-6b-50d"``; required when text is used, unless
            ``text_config`` names a pretrained text encoder.
        modalities: subset to use (``"at"``, ``("audio",)``); ``None`` = every modality the
            manifest has (video only when ``video_encoder`` is not ``"none"``).
        video_encoder: ``"resnet101"``, ``"none"``, ``"hf:NAME_OR_PATH"`` (a transformers vision
            encoder) or an image encoder module ``[n, 3, crop, crop] -> [n, D]``.
        audio_config, video_config, text_config: extractor settings (paper defaults).
        workers: feature extraction processes.
        progress: tqdm progress bars.
        dev_fraction: share of the training speakers held out as dev (grouped folds).
        fold_seed: seed of the fold shuffling (grouped folds).
        on_missing: ``"error"`` or ``"skip"`` for rows whose media file does not exist.
        allow_shared_speakers: accept a speaker in two official splits (noted in the report).
        title, notes: report title and extra lines.
        speaker_norm: standardise each speaker's audio frames with that speaker's own
            statistics (all their clips, every split; transductive, never labels); needs the
            speaker column.
        on_unreadable: ``"error"`` (default) stops at a media file that cannot be decoded
            (truncated, empty, not audio), naming it; ``"skip"`` leaves such rows out (listed
            in the report). Silent clips and clips shorter than one analysis window are kept
            (or, without a single frame, left out) with a warning on the console.

    Raises:
        DataError: malformed manifest (naming file and line), too few speakers for the folds.
        ConfigError: contradictory options (both ``n_folds`` and ``split_column``, a requested
            modality the manifest lacks, text without word vectors).
    """
    from selfcross.labels import parse_modalities

    use_video, encoder, video_config = video_encoder_setup(video_encoder, video_config)
    wanted: tuple[str, ...] | None = None
    if modalities is not None:
        wanted = parse_modalities(modalities if isinstance(modalities, str) else tuple(modalities))
        if "video" in wanted and not use_video:
            raise ConfigError("video was requested but --video-encoder is none")
    if n_folds is not None and split_column is not None:
        raise ConfigError("give either --folds K or --split-column COLUMN, not both")
    man = read_manifest(manifest, class_names=class_names, split_column=split_column,
                        group_column=group_column, on_missing=on_missing,
                        allow_shared_speakers=allow_shared_speakers,
                        modalities=wanted or tuple(m for m in MODALITIES if m != "video" or use_video))
    if speaker_norm and man.speaker_column is None:
        raise DataError(man.path, f"line 1: speaker normalisation needs a {group_column or 'speaker'!r} "
                                  "column of speaker ids; the header has none")
    mods = _manifest_modalities(man, wanted, glove, text_config)
    folds, records, fold_note = _plan_manifest_folds(man, split_column, n_folds, group_column,
                                                     dev_fraction, fold_seed)
    warnings = label_warnings(man.records, given=class_names is not None, n_folds=len(folds))
    for w in warnings:
        log.warning("%s: %s", man.path, w)
    all_notes = [fold_note, f"Manifest: {man.path.resolve()} ({len(man.records)} rows used, "
                 f"{len(man.skipped)} left out).", *(f"**Warning:** {w}" for w in warnings),
                 *man.notes, *notes]
    return prepare_records(
        records, out_root, man.class_names, glove=glove, modalities=mods,
        audio_config=audio_config, video_config=video_config, text_config=text_config,
        video_encoder=encoder, workers=workers, progress=progress, folds=folds,
        dev_fraction=dev_fraction, skipped=man.skipped, problems=[], title=title,
        notes=all_notes, source=str(man.path.resolve()), speaker_norm=speaker_norm,
        on_unreadable=on_unreadable,
    )


def write_manifest(path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Path:
    """Write a manifest CSV (UTF-8, header = ``columns``, ``None`` cells empty); used by adapters."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else str(r[c]) for c in columns])
    tmp.replace(path)
    return path


__all__ = [
    "MODALITY_COLUMNS",
    "Manifest",
    "audio_format_notes",
    "parse_labels",
    "plan_split_fold",
    "plan_stratified_group_folds",
    "prepare_manifest",
    "read_manifest",
    "write_manifest",
]
