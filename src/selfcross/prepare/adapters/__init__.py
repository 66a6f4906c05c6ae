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
from dataclasses import replace
from pathlib import Path
from typing import Any

from selfcross.errors import ConfigError, SelfcrossError
from selfcross.features.pretrained import is_hf_config
from selfcross.labels import parse_modalities
from selfcross.prepare.adapters.cremad import scan_cremad
from selfcross.prepare.adapters.meld import scan_meld
from selfcross.prepare.adapters.ravdess import scan_ravdess
from selfcross.prepare.adapters.scan import CorpusScan
from selfcross.prepare.manifest import MODALITY_COLUMNS, prepare_manifest, write_manifest
from selfcross.prepare.options import CorpusNotes, FeatureOptions, FoldOptions

#: Corpus names accepted by ``selfcross prepare``.
CORPORA: tuple[str, ...] = ("ravdess", "crema-d", "meld")
#: Manifest file an adapter writes inside ``OUT_ROOT``.
MANIFEST_NAME = "manifest.csv"


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
    features: FeatureOptions | None = None,
    *,
    modalities: Sequence[str] | str | None = None,
    folds: FoldOptions | None = None,
    manifest_only: bool = False,
) -> Any:
    """Write ``OUT_ROOT/manifest.csv`` from ``scan`` and prepare it.

    Only the columns of the prepared modalities are written (so a text-only preparation
    of MELD ignores missing mp4s). ``folds`` gives ``n_folds`` (default: the corpus's),
    ``dev_fraction`` and ``fold_seed``; the split column and speaker rules are the corpus's.

    Returns:
        The :class:`~selfcross.prepare.pipeline.PrepareResult`, or the manifest path when
        ``manifest_only``.
    """
    features = features or FeatureOptions()
    folds = folds or FoldOptions()
    if modalities is None:
        text_encoder = is_hf_config(features.text_config)
        mods = default_modalities(scan, features.glove, features.uses_video, text_encoder)
    else:
        mods = parse_modalities(modalities if isinstance(modalities, str) else tuple(modalities))
    if not mods:
        raise ConfigError(f"{scan.corpus}: nothing to prepare: no audio or video found"
                          + ("" if features.glove is not None else " and no --glove for the text"))
    lacking = [m for m in mods if m != "text" and m not in scan.media]
    if lacking:
        raise ConfigError(f"{scan.corpus}: no {' or '.join(lacking)} files found under the source folder")
    if scan.split_column is not None and folds.n_folds is not None:
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
        return _prepare_written(scan, path, out_root, mods, features, folds)
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
                     features: FeatureOptions, folds: FoldOptions) -> Any:
    notes = list(scan.notes)
    # corpora known to miss a few files also hold a few undecodable ones (CREMA-D, MELD)
    features = replace(features, on_unreadable=features.on_unreadable or scan.on_missing)
    if "text" in mods and not scan.text_informative:
        notes.append("Text: the corpus's fixed sentences carry no emotion; text is prepared only "
                     "because word vectors were given.")
    corpus_folds = replace(
        folds, n_folds=None if scan.split_column else (folds.n_folds or scan.default_folds),
        split_column=scan.split_column, group_column="speaker",
        allow_shared_speakers=scan.allow_shared_speakers,
    )
    return prepare_manifest(path, out_root, features, folds=corpus_folds, class_names=scan.class_names,
                            modalities=mods, on_missing=scan.on_missing,
                            corpus=CorpusNotes(title=f"{scan.corpus} preparation", notes=notes))


def scan_corpus(corpus: str, src: str | Path, **options: Any) -> CorpusScan:
    """Dispatch to the adapter of ``corpus`` (one of :data:`CORPORA`)."""
    if corpus == "ravdess":
        return scan_ravdess(src, **options)
    if corpus == "crema-d":
        return scan_cremad(src, **options)
    if corpus == "meld":
        return scan_meld(src, **options)
    raise ConfigError(f"unknown corpus {corpus!r}: use one of {', '.join(CORPORA)}")


def prepare_corpus(
    corpus: str,
    src: str | Path,
    out_root: str | Path,
    features: FeatureOptions | None = None,
    *,
    scan_options: dict[str, Any] | None = None,
    modalities: Sequence[str] | str | None = None,
    folds: FoldOptions | None = None,
    manifest_only: bool = False,
) -> Any:
    """``scan_corpus`` + ``prepare_scan``: the whole ``selfcross prepare CORPUS SRC OUT_ROOT``."""
    return prepare_scan(scan_corpus(corpus, src, **(scan_options or {})), out_root, features,
                        modalities=modalities, folds=folds, manifest_only=manifest_only)


__all__ = ["CORPORA", "MANIFEST_NAME", "CorpusScan", "default_modalities", "prepare_corpus",
           "prepare_scan", "scan_corpus"]
