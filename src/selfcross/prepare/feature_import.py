"""Published feature files (MMSA, MulT, MFN) -> a selfcross data root with one official fold.

What is written (``OUT/fold01`` in the fold layout, :mod:`selfcross.folds.layout`): for each
split the feature sequences with their padding at the back, ``S_audio_seqN`` /
``S_video_seqN`` lengths, ``S_label`` classes, ``S_score`` sentiment scores when the file has
scores, ``S_ids``; ``OUT/classes.txt``; and ``OUT/prepare_report.md``.

Lengths come from the file where it gives them (MMSA's unaligned ``*_lengths``), else from
the all-zero padding steps; the padding side (front or back) is detected per modality from
the data and reported. Front padding (MFN) is moved to the back, where the fold layout and
the length-aware model switches expect it. Feature sizes are whatever the file holds; the
trainer takes the model's input shapes from the data.

Every array is validated before anything is written: a missing split or key, feature arrays
whose row count differs from the labels', NaN or infinite features, labels of the wrong
shape, lengths out of range -> a :class:`DataError` naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfcross.errors import ConfigError, DataError
from selfcross.folds import layout
from selfcross.folds.writer import save_text, write_classes, write_split
from selfcross.labels import MODALITIES, parse_modalities
from selfcross.prepare.feature_formats import MULT_IEMOCAP_CLASSES, Array, RawDataset, RawSplit, read_features
from selfcross.sentiment import bin_scores, get_binning

#: Binning used when the file has scores and ``labels`` is not given.
DEFAULT_BINNING = "sentiment2"
#: Name of the report written into the data root.
REPORT_NAME = "prepare_report.md"


@dataclass
class Padding:
    """How one modality's lengths were found: ``side`` is front/back/none, ``source`` file/zeros."""

    side: str
    source: str
    seq_len: int
    feat_dim: int
    zero_length: int = 0
    front_steps: int = 0
    back_steps: int = 0


@dataclass
class ImportResult:
    """What :func:`import_features` wrote."""

    root: Path
    fold: Path
    report: Path
    modalities: tuple[str, ...]
    class_names: tuple[str, ...]
    padding: dict[str, Padding]
    counts: dict[str, dict[str, int]]
    has_scores: bool
    notes: list[str] = field(default_factory=list)
    #: rows in the file per split (``counts`` holds the rows kept)
    source_rows: dict[str, int] = field(default_factory=dict)
    #: why rows were left out, per split: reason -> rows
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    #: the options that change what is learned, in words (binning, centre)
    learned_from: list[str] = field(default_factory=list)
    #: where ``S_ids.txt`` came from: ``file`` or ``split_index`` (``train_0``, ...)
    ids_source: str = "file"


# ------------------------------------------------------------------------------- checks
def _features(a: Array, n_labels: int, labels_key: str) -> np.ndarray:
    x = a.data
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise a.error(f"expected an [N, T, F] array, got {_describe(x)}")
    if x.dtype.kind not in "fiu":
        raise a.error(f"expected numbers, got dtype {x.dtype}")
    if x.shape[0] != n_labels:
        raise a.error(f"has {x.shape[0]} rows but {labels_key!r} has {n_labels} (N differs across keys)")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        row = int(np.argwhere(~np.isfinite(x))[0][0])
        what = "NaN" if np.isnan(x).any() else "infinite"
        raise a.error(f"contains {what} values (first at row {row})")
    return x


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"shape {list(x.shape)} ({x.dtype})"
    return f"a {type(x).__name__}"


def _scores(a: Array) -> np.ndarray:
    y = np.asarray(a.data) if isinstance(a.data, (np.ndarray, list)) else None
    if y is None or y.dtype.kind not in "fiu" or y.ndim == 0 or int(np.prod(y.shape[1:])) != 1:
        raise a.error(f"expected one score per utterance ([N], [N, 1] or [N, 1, 1]), got {_describe(a.data)}")
    y = y.reshape(-1).astype(np.float64)
    if not np.isfinite(y).all():
        row = int(np.argwhere(~np.isfinite(y))[0][0])
        raise a.error(f"contains NaN or infinite scores (first at row {row})")
    return y


def _iemocap_classes(a: Array) -> np.ndarray:
    y = a.data
    if not isinstance(y, np.ndarray) or y.shape[1:] != (4, 2):
        raise a.error(f"expected MulT IEMOCAP labels [N, 4, 2], got {_describe(y)}")
    yes = y[:, :, 1] == 1
    bad = np.flatnonzero(yes.sum(axis=1) != 1)
    if bad.size:
        raise a.error(f"row {int(bad[0])} marks {int(yes[bad[0]].sum())} emotions; exactly one is needed")
    return yes.argmax(axis=1).astype(np.int64)


def _given_lengths(a: Array, n: int, steps: int) -> np.ndarray:
    v = np.asarray(a.data)
    if v.shape != (n,) or v.dtype.kind not in "fiu" or (v != np.round(v)).any():
        raise a.error(f"expected [N={n}] integer lengths, got {_describe(v)}")
    if v.min() < 0 or v.max() > steps:
        raise a.error(f"lengths must lie in 0..{steps} (found {int(v.min())}..{int(v.max())})")
    return v.astype(np.int64)


def _ids(a: Array | None, n: int) -> list[str] | None:
    if a is None:
        return None
    v = np.asarray(a.data)
    if v.ndim not in (1, 2) or v.shape[0] != n:
        raise a.error(f"expected [N={n}] ids, got {_describe(v)}")
    rows = v.reshape(n, -1)
    return ["_".join(x.decode() if isinstance(x, bytes) else str(x) for x in row) for row in rows]


# ---------------------------------------------------------------------------- padding
def padding_runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leading and trailing all-zero steps of each sequence of ``x`` [N, T, F] (T for all-zero)."""
    nonzero = (x != 0).any(axis=2)
    steps = x.shape[1]
    anything = nonzero.any(axis=1)
    lead = np.where(anything, nonzero.argmax(axis=1), steps)
    trail = np.where(anything, nonzero[:, ::-1].argmax(axis=1), steps)
    return lead.astype(np.int64), trail.astype(np.int64)


def detect_side(arrays: list[np.ndarray]) -> tuple[str, int, int]:
    """``(side, front, back)``: all-zero steps at the start and at the end of the sequences
    (all-zero sequences left out), and the side with more of them (``none`` if neither has any).

    Why totals of steps rather than counts of sequences: real features also have short runs of
    zero steps at either end (a face not found, an unvoiced word); padding makes the long runs.
    """
    front = back = 0
    for x in arrays:
        lead, trail = padding_runs(x)
        real = lead < x.shape[1]
        front += int(lead[real].sum())
        back += int(trail[real].sum())
    if front == back == 0:
        return "none", 0, 0
    return ("front" if front > back else "back"), front, back


def to_back_padding(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Move each sequence's last ``lengths[i]`` steps to the start and zero the rest."""
    steps = x.shape[1]
    t = np.arange(steps)[None, :]
    source = np.clip(t + (steps - lengths)[:, None], 0, steps - 1)
    out = np.take_along_axis(x, source[:, :, None], axis=1)
    out[t >= lengths[:, None]] = 0
    return out


# --------------------------------------------------------------------------- assembly
@dataclass
class _Checked:
    features: dict[str, np.ndarray]
    given: dict[str, np.ndarray]
    scores: np.ndarray | None
    classes: np.ndarray | None
    ids: list[str] | None


def _check_split(raw: RawSplit, kind: str, mods: tuple[str, ...]) -> _Checked:
    if kind == "scores":
        scores, classes = _scores(raw.labels), None
        n = scores.size
    else:
        scores, classes = None, _iemocap_classes(raw.labels)
        n = classes.size
    feats = {m: _features(raw.features[m], n, raw.labels.key) for m in mods}
    given = {m: _given_lengths(a, n, feats[m].shape[1]) for m, a in raw.lengths.items() if m in mods}
    return _Checked(feats, given, scores, classes, _ids(raw.ids, n))


def _check_sizes(raw: RawDataset, checked: dict[str, _Checked], mods: tuple[str, ...]) -> None:
    for m in mods:
        dims = {s: c.features[m].shape[2] for s, c in checked.items()}
        odd = next((s for s, d in dims.items() if d != dims["train"]), None)
        if odd is not None:
            raise raw.splits[odd].features[m].error(
                f"has {dims[odd]} features per step but the training split has {dims['train']}")


def _lengths(checked: dict[str, _Checked], m: str) -> tuple[dict[str, np.ndarray], Padding]:
    """Valid steps of modality ``m`` per split, and how they were found."""
    arrays = [c.features[m] for c in checked.values()]
    side, front, back = detect_side(arrays)
    steps, dim = arrays[0].shape[1], arrays[0].shape[2]
    out = {}
    for s, c in checked.items():
        if m in c.given:
            out[s] = c.given[m]
            continue
        lead, trail = padding_runs(c.features[m])
        out[s] = steps - (lead if side == "front" else trail if side == "back" else np.zeros_like(lead))
    source = "file" if all(m in c.given for c in checked.values()) else "zero steps"
    zero = sum(int((v == 0).sum()) for v in out.values())
    return out, Padding(side, source, steps, dim, zero, front, back)


def _modalities(raw: RawDataset, requested: str | tuple[str, ...] | None) -> tuple[str, ...]:
    have = tuple(m for m in MODALITIES if m in raw.splits["train"].features)
    if requested is None:
        return have
    mods = parse_modalities(requested)
    missing = [m for m in mods if m not in have]
    if missing:
        raise DataError(raw.source, f"has no {' or '.join(missing)} features (it has {', '.join(have)})")
    return mods


def _class_labels(
    raw: RawDataset, checked: dict[str, _Checked], labels: str | None, center: float
) -> tuple[tuple[str, ...], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Class names, class indices per split, rows kept per split."""
    if raw.label_kind == "iemocap4":
        if labels is not None:
            raise ConfigError(f"{raw.source}: holds emotion classes, not scores; --labels does not apply")
        return MULT_IEMOCAP_CLASSES, {s: c.classes for s, c in checked.items()}, {  # type: ignore[misc]
            s: np.ones(c.classes.size, dtype=bool) for s, c in checked.items()  # type: ignore[union-attr]
        }
    binning = get_binning(labels or DEFAULT_BINNING)
    per = {s: bin_scores(c.scores - center, binning.key) for s, c in checked.items()}  # type: ignore[operator]
    return binning.names, {s: p[0] for s, p in per.items()}, {s: p[1] for s, p in per.items()}


def _split_arrays(
    c: _Checked, keep: np.ndarray, classes: np.ndarray, lengths: dict[str, np.ndarray],
    padding: dict[str, Padding], center: float,
) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """The fold-layout arrays of one split (kept rows; padding moved to the back) and its ids."""
    arrays = {"label": classes[keep]}
    if c.scores is not None:
        arrays["score"] = (c.scores - center)[keep].astype(np.float32)
    for m, ln in lengths.items():
        x = c.features[m][keep].astype(np.float32)
        arrays[m] = to_back_padding(x, ln[keep]) if padding[m].side == "front" else x
        if m in layout.LENGTH_KEYS:
            arrays[layout.LENGTH_KEYS[m]] = ln[keep]
    return arrays, [i for i, k in zip(c.ids, keep) if k] if c.ids is not None else None


def split_index_ids(split: str, n: int) -> list[str]:
    """Ids for a file without them: the split and the row's position in the file's split
    (``train_0``, ``test_17``), stable across binnings that leave rows out."""
    return [f"{split}_{i}" for i in range(n)]


def _one_class_check(root: Path, names: tuple[str, ...], classes: dict[str, np.ndarray],
                     keep: dict[str, np.ndarray], scores: dict[str, np.ndarray | None],
                     labels: str | None, center: float) -> None:
    """:class:`DataError` when a split's kept labels hold a single class.

    Why: a binning that puts every score in one class (``sentiment2`` on ratings 1..5 without
    ``--center``) yields data on which every model scores accuracy 1.0 and learns nothing.
    """
    for s, y in classes.items():
        present = np.unique(y[keep[s]])
        if len(names) < 2 or present.size != 1:
            continue
        sc = scores.get(s)
        if sc is None:  # the file's own classes: no option made them
            raise DataError(root, f"every {s} row has class {names[int(present[0])]!r}; a classifier "
                                  "cannot learn from one class")
        option = f"--labels {labels or DEFAULT_BINNING}"
        seen = (f"; its scores{f' minus --center {center:g}' if center else ''} "
                f"run {float((sc - center).min()):g}..{float((sc - center).max()):g}")
        raise DataError(root, f"{option} puts every {s} row in class {names[int(present[0])]!r}{seen}; "
                              "bin the scores around the scale's midpoint with --center (e.g. --center 3 "
                              "for ratings 1..5)")


def _fill_ids(checked: dict[str, _Checked], classes: dict[str, np.ndarray]) -> str:
    """Give every split without ids :func:`split_index_ids`; returns where the ids came from."""
    source = "file" if all(c.ids is not None for c in checked.values()) else "split_index"
    for s, c in checked.items():
        if c.ids is None:
            c.ids = split_index_ids(s, classes[s].size)
    return source


def _import_notes(labels: str | None, dropped: dict[str, dict[str, int]], ids_source: str) -> list[str]:
    """Report notes on rows left out and on ids made up for a file without them."""
    notes = []
    if dropped:
        notes.append(f"{labels} has no class for score 0: those rows were left out "
                     f"({', '.join(f'{s} {sum(d.values())}' for s, d in dropped.items())}).")
    if ids_source == "split_index":
        notes.append("The file holds no utterance ids: S_ids.txt names each row by its split and its "
                     "position in the file's split (train_0, dev_3, test_17).")
    return notes


def _learned_from(labels: str | None, center: float, kind: str) -> list[str]:
    """The import options that change what a model learns, in words (printed and reported)."""
    if kind != "scores":
        return ["labels: the file's emotion classes"]
    key = labels or DEFAULT_BINNING
    rule = {"sentiment2": "negative (< 0) vs non-negative (>= 0)",
            "sentiment2-non0": "negative (< 0) vs positive (> 0); score 0 left out",
            }.get(key, "round(clip(score)) per class")
    default = "" if labels else " (default)"
    return [f"--labels {key}{default}: {rule}",
            f"--center {center:g}: " + (f"{center:g} subtracted from every score before binning"
                                        if center else "scores binned as stored (nothing subtracted)")]


def import_features(
    fmt: str,
    src: str | Path,
    out: str | Path,
    *,
    labels: str | None = None,
    center: float = 0.0,
    modalities: str | tuple[str, ...] | None = None,
    trust_pickle: bool = False,
    overwrite: bool = False,
) -> ImportResult:
    """Import published feature files as a data root with one fold (the official split).

    Args:
        fmt: ``mmsa``, ``mult`` or ``mfn`` (see :mod:`selfcross.prepare.feature_formats`).
        src: the pickle file (mmsa, mult) or the folder of ``.h5`` files (mfn).
        out: the data root to create (must not exist or be empty unless ``overwrite``).
        labels: binning of the scores into classes (:data:`selfcross.sentiment.BINNINGS`;
            default ``sentiment2``); not for MulT's IEMOCAP, whose labels are classes.
        center: subtracted from every score before binning and storing (e.g. 3 for ratings
            1..5, so that ``sentiment2`` splits at the scale's midpoint).
        modalities: which to import (names or letters); default: every one the file has.
        trust_pickle: allow reading a pickle (through the restricted unpickler).
        overwrite: write into a non-empty ``out``.

    Raises:
        DataError: a missing split or key, mismatched N, NaN/inf features, labels of the
            wrong shape, refused pickle... (the file and key are named; nothing is written).
        ConfigError: bad options, or ``out`` not empty.
    """
    root = Path(out)
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and not overwrite)):
        raise ConfigError(f"{root}: exists and is not an empty folder; choose another OUT or "
                          "pass --overwrite")
    raw = read_features(fmt, src, trust_pickle=trust_pickle)
    mods = _modalities(raw, modalities)
    checked = {s: _check_split(raw.splits[s], raw.label_kind, mods) for s in layout.SPLITS}
    _check_sizes(raw, checked, mods)
    padding, lengths = {}, {}
    for m in mods:
        lengths[m], padding[m] = _lengths(checked, m)
    names, classes, keep = _class_labels(raw, checked, labels, center)
    _one_class_check(raw.source, names, classes, keep, {s: c.scores for s, c in checked.items()},
                     labels, center)
    ids_source = _fill_ids(checked, classes)

    fold = root / layout.fold_name(1)
    counts = {}
    for s, c in checked.items():
        arrays, ids = _split_arrays(c, keep[s], classes[s], {m: lengths[m][s] for m in mods}, padding, center)
        write_split(fold, s, arrays, ids)
        per_class = np.bincount(arrays["label"], minlength=len(names))
        counts[s] = {names[i]: int(v) for i, v in enumerate(per_class)}
    write_classes(root, names)
    dropped = {s: {"score 0": int((~k).sum())} for s, k in keep.items() if (~k).any()}
    notes = [*raw.notes, *_import_notes(labels, dropped, ids_source)]
    result = ImportResult(root, fold, root / REPORT_NAME, mods, names, padding, counts,
                          raw.label_kind == "scores", notes,
                          source_rows={s: int(k.size) for s, k in keep.items()}, dropped=dropped,
                          learned_from=_learned_from(labels, center, raw.label_kind), ids_source=ids_source)
    _write_report(result, raw, labels or (DEFAULT_BINNING if raw.label_kind == "scores" else None), center,
                  {s: c.scores for s, c in checked.items()})
    return result


def _write_report(result: ImportResult, raw: RawDataset, labels: str | None, center: float,
                  scores: dict[str, np.ndarray | None]) -> None:
    lines = [f"# Imported features ({raw.format})", "", f"Source: `{raw.source}`  ",
             f"Fold: `{result.fold.name}` = the official split (train / valid / test -> "
             "train / dev / test).", ""]
    lines += ["## Modalities", "", "Padding side: the end of the sequences with more all-zero steps "
              "(counts below); zero steps inside a sequence are kept as data.", "",
              "| modality | steps T | features F | lengths from | padding | zero steps front / back "
              "| zero-length |",
              "|---|---|---|---|---|---|---|"]
    for m, p in result.padding.items():
        side = {"front": "front (moved to the back)", "back": "back", "none": "none found"}[p.side]
        lines.append(f"| {m} | {p.seq_len} | {p.feat_dim} | {p.source} | {side} | "
                     f"{p.front_steps} / {p.back_steps} | {p.zero_length} |")
    lines += ["", "## Options that change what is learned", ""] + [f"- {w}" for w in result.learned_from]
    lines += ["", "## Classes per split", ""]
    if labels:
        lines += [f"Classes: binning `{labels}` of the scores"
                  + (f" minus {center:g}" if center else "") + " (see selfcross.sentiment).", ""]
    lines += ["| split | " + " | ".join(result.class_names) + " | kept | in the file |",
              "|---|" + "---|" * (len(result.class_names) + 2)]
    for s, per in result.counts.items():
        lines.append(f"| {s} | " + " | ".join(str(v) for v in per.values())
                     + f" | {sum(per.values())} | {result.source_rows.get(s, sum(per.values()))} |")
    if result.has_scores:
        lines += ["", "## Scores (as stored)", "", "| split | min | mean | max | zero |",
                  "|---|---|---|---|---|"]
        for s, y in scores.items():
            y = y - center  # type: ignore[operator]
            lines.append(f"| {s} | {y.min():g} | {y.mean():.3f} | {y.max():g} | {int((y == 0).sum())} |")
    lines += ["", "## Notes", ""] + ([f"- {n}" for n in result.notes] or ["None."])
    for p in result.padding.values():
        if p.side == "none" and p.source != "file":
            lines.append("- A modality without zero padding gets its full length T for every utterance.")
            break
    save_text(result.report, lines)


def summarize(result: ImportResult) -> str:
    """Lines for the command line: where, the options that change what is learned, the rows
    kept per split (and why others were left out), the classes, modalities and ids."""
    mods = ", ".join(f"{m} {p.seq_len}x{p.feat_dim} (padding {p.side}, lengths from {p.source})"
                     for m, p in result.padding.items())
    kept = []
    for s, per in result.counts.items():
        why = "; ".join(f"{n} left out: {reason}" for reason, n in result.dropped.get(s, {}).items())
        kept.append(f"{s} {sum(per.values())} of {result.source_rows.get(s, sum(per.values()))}"
                    + (f" ({why})" if why else ""))
    classes = "; ".join(f"{s} " + ", ".join(f"{n} {c}" for c, n in per.items())
                        for s, per in result.counts.items())
    lines = [f"wrote {result.fold}", *(f"  {w}" for w in result.learned_from),
             f"  rows kept: {', '.join(kept)}", f"  classes: {classes}", f"  modalities: {mods}"]
    lines += [f"  note: {n}" for n in result.notes]
    lines.append(f"  report: {result.report}")
    return "\n".join(lines)


__all__ = ["ImportResult", "Padding", "detect_side", "import_features", "padding_runs", "split_index_ids",
           "summarize", "to_back_padding"]
