"""Corpus adapters: a public corpus in its published layout -> a manifest -> a data root.

Why adapters only write manifests: the corpus-specific knowledge (file-name codes, label
codes, sentence texts, official splits) is small; everything after the manifest (checks,
features, cache, folds, report) is :func:`selfcross.prepare.manifest.prepare_manifest`, the
same for every corpus. The manifest is kept as ``OUT_ROOT/manifest.csv``, so a user can
inspect or edit it and rerun ``selfcross prepare-manifest`` on it.

Adapters (see docs/datasets.md for licences and downloads):

* ``ravdess`` -> :func:`selfcross.prepare.adapters.ravdess.scan_ravdess`
* ``crema-d`` -> :func:`selfcross.prepare.adapters.cremad.scan_cremad`
* ``meld``    -> :func:`selfcross.prepare.adapters.meld.scan_meld`
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfcross.errors import ConfigError, SelfcrossError

#: Corpus names accepted by ``selfcross prepare``.
CORPORA: tuple[str, ...] = ("ravdess", "crema-d", "meld")
#: Manifest file an adapter writes inside ``OUT_ROOT``.
MANIFEST_NAME = "manifest.csv"


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


def default_modalities(
    scan: CorpusScan, glove: Any, use_video: bool, text_encoder: bool = False
) -> tuple[str, ...]:
    """Modalities an adapter prepares when the user names none: every medium found (video only
    with an encoder) plus text when word vectors or a pretrained text encoder are given."""
    mods = [m for m in ("audio", "video") if m in scan.media and (m != "video" or use_video)]
    if glove is not None or text_encoder:
        mods.append("text")
    return tuple(mods)


def prepare_scan(
    scan: CorpusScan,
    out_root: str | Path,
    *,
    glove: str | Path | None = None,
    modalities: Sequence[str] | str | None = None,
    n_folds: int | None = None,
    video_encoder: Any = "resnet101",
    manifest_only: bool = False,
    **kwargs: Any,
) -> Any:
    """Write ``OUT_ROOT/manifest.csv`` from ``scan`` and prepare it.

    Only the columns of the prepared modalities are written (so a text-only preparation
    of MELD ignores missing mp4s). ``kwargs`` go to
    :func:`~selfcross.prepare.manifest.prepare_manifest` (``workers``, ``audio_config``...).

    Returns:
        The :class:`~selfcross.prepare.pipeline.PrepareResult`, or the manifest path when
        ``manifest_only``.
    """
    from selfcross.labels import parse_modalities
    from selfcross.prepare.manifest import MODALITY_COLUMNS, write_manifest

    use_video = not (isinstance(video_encoder, str) and video_encoder == "none") and video_encoder is not None
    if modalities is None:
        from selfcross.features.pretrained import is_hf_config

        mods = default_modalities(scan, glove, use_video, is_hf_config(kwargs.get("text_config")))
    else:
        mods = parse_modalities(modalities if isinstance(modalities, str) else tuple(modalities))
    if not mods:
        raise ConfigError(f"{scan.corpus}: nothing to prepare: no audio or video found"
                          + ("" if glove is not None else " and no --glove for the text"))
    lacking = [m for m in mods if m != "text" and m not in scan.media]
    if lacking:
        raise ConfigError(f"{scan.corpus}: no {' or '.join(lacking)} files found under the source folder")
    if scan.split_column is not None and n_folds is not None:
        raise ConfigError(f"{scan.corpus} has an official split: --folds does not apply")
    cols = ["id", "label", "speaker"] + [MODALITY_COLUMNS[m] for m in mods]
    if scan.split_column:
        cols.append(scan.split_column)
    out_root = Path(out_root)
    fresh = {p for p in (out_root, out_root / MANIFEST_NAME) if not p.exists()}
    path = write_manifest(out_root / MANIFEST_NAME, scan.rows, cols)
    if manifest_only:
        return path
    try:
        return _prepare_written(scan, path, out_root, mods, n_folds, glove, video_encoder, kwargs)
    except SelfcrossError:
        _remove_fresh(fresh, out_root)
        raise


def _remove_fresh(fresh: set[Path], out_root: Path) -> None:
    """Undo what a failed preparation created: a new manifest, and the output folder if it is empty."""
    manifest = out_root / MANIFEST_NAME
    if manifest in fresh:
        manifest.unlink(missing_ok=True)
    if out_root in fresh and out_root.is_dir() and not any(out_root.iterdir()):
        out_root.rmdir()


def _prepare_written(scan: CorpusScan, path: Path, out_root: Path, mods: tuple[str, ...],
                     n_folds: int | None, glove: Any, video_encoder: Any, kwargs: dict[str, Any]) -> Any:
    from selfcross.prepare.manifest import prepare_manifest

    notes = list(scan.notes)
    # corpora known to miss a few files also hold a few undecodable ones (CREMA-D, MELD)
    kwargs = {"on_unreadable": scan.on_missing, **kwargs}
    if "text" in mods and not scan.text_informative:
        notes.append("Text: the corpus's fixed sentences carry no emotion; text is prepared only "
                     "because word vectors were given.")
    return prepare_manifest(
        path, out_root, n_folds=None if scan.split_column else (n_folds or scan.default_folds),
        split_column=scan.split_column, group_column="speaker", class_names=scan.class_names,
        glove=glove, modalities=mods, video_encoder=video_encoder,
        on_missing=scan.on_missing, allow_shared_speakers=scan.allow_shared_speakers,
        title=f"{scan.corpus} preparation", notes=notes, **kwargs,
    )


def scan_corpus(corpus: str, src: str | Path, **options: Any) -> CorpusScan:
    """Dispatch to the adapter of ``corpus`` (one of :data:`CORPORA`)."""
    if corpus == "ravdess":
        from selfcross.prepare.adapters.ravdess import scan_ravdess

        return scan_ravdess(src, **options)
    if corpus == "crema-d":
        from selfcross.prepare.adapters.cremad import scan_cremad

        return scan_cremad(src, **options)
    if corpus == "meld":
        from selfcross.prepare.adapters.meld import scan_meld

        return scan_meld(src, **options)
    raise ConfigError(f"unknown corpus {corpus!r}: use one of {', '.join(CORPORA)}")


def prepare_corpus(corpus: str, src: str | Path, out_root: str | Path, *,
                   scan_options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """``scan_corpus`` + ``prepare_scan``: the whole ``selfcross prepare CORPUS SRC OUT_ROOT``."""
    return prepare_scan(scan_corpus(corpus, src, **(scan_options or {})), out_root, **kwargs)


__all__ = ["CORPORA", "MANIFEST_NAME", "CorpusScan", "default_modalities", "prepare_corpus",
           "prepare_scan", "scan_corpus"]
