"""From utterance records to a data root: cached features, folds, report (any corpus).

Why generic: a corpus adapter (IEMOCAP in :mod:`selfcross.prepare.iemocap`, manifests and
other corpora later) only turns its files into :class:`UtteranceRecord` objects; this
module does the rest the same way for all of them:

1. media checks (missing file, video span outside the file, empty transcript) -> skips;
2. audio and video features per utterance, in a process pool (``workers``), with a tqdm
   progress bar, cached under ``OUT_ROOT/.cache/<modality>-<config key>/<utt>.<input key>.npy``
   (valid frames only). The config key hashes the extractor settings (and the image
   encoder's identity), so a changed config never reuses stale features; the input key
   hashes the source path, size, span and frame half. A second run, or one resumed after
   a crash, recomputes nothing that is cached;
3. a vocabulary built from the kept transcripts, word ids, and the word vectors of the
   user's GloVe file (``W_embedding.npy`` in every fold);
4. folds (:func:`plan_group_folds`: fold k tests on group k, e.g. IEMOCAP session k; dev =
   held-out speakers of the training groups) written with :mod:`selfcross.folds.writer`;
5. ``classes.txt``, ``features.json``, ``vocab.txt`` and ``prepare_report.md`` (counts per
   class x group, folds, skipped utterances and why, malformed input lines, extractor
   settings, cache use, timings).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.errors import ConfigError, DataError
from selfcross.folds import layout
from selfcross.prepare.cache import (  # noqa: F401 - cache_key, encoder_identity, _init_worker: public here too
    CACHE_DIR,
    CACHE_VERSION,
    _extract_modality,
    _init_worker,
    _input_key,
    _Job,
    _safe_name,
    _text_key,
    cache_key,
    encoder_identity,
)
from selfcross.prepare.report import count_extractions, write_report  # noqa: F401 - re-exported

log = logging.getLogger("selfcross.prepare")

#: Name of the preparation report inside a data root.
REPORT_FILE = "prepare_report.md"
#: ``video_encoder`` names accepted besides an injected module.
VIDEO_ENCODERS: tuple[str, ...] = ("resnet101", "none")

# Skip reasons (the report groups by these strings).
SKIP_MISSING_AUDIO = "missing audio file"
SKIP_UNREADABLE_AUDIO = "unreadable audio file"
SKIP_MISSING_VIDEO = "missing video file"
SKIP_UNREADABLE_VIDEO = "unreadable video file"
SKIP_VIDEO_SPAN = "video span outside the file"
SKIP_NO_VIDEO_FRAMES = "no video frames in the span"
SKIP_SHORT_AUDIO = "audio too short for one frame"
SKIP_EMPTY_TRANSCRIPT = "empty transcript"
SKIP_TEXT_ENCODER = "text encoder failed"
# per modality: why an utterance is skipped when extraction fails / yields no frames
#: Reasons that stop a preparation unless it was asked to skip unreadable media.
UNREADABLE = (SKIP_UNREADABLE_AUDIO, SKIP_UNREADABLE_VIDEO)
_FAILED = {"audio": SKIP_UNREADABLE_AUDIO, "video": SKIP_UNREADABLE_VIDEO, "text": SKIP_TEXT_ENCODER}
_EMPTY = {"audio": SKIP_SHORT_AUDIO, "video": SKIP_NO_VIDEO_FRAMES, "text": SKIP_EMPTY_TRANSCRIPT}


@dataclass(frozen=True)
class UtteranceRecord:
    """One labelled utterance, as a corpus adapter describes it (nothing read yet).

    Attributes:
        id: unique utterance id (written to ``S_ids.txt``; also the cache file name).
        label: class name (one of the preparation's ``class_names``).
        speaker: speaker identity; no speaker is ever in both training and test of a fold.
        group: fold group (IEMOCAP: the session); fold k tests on the k-th group.
        audio: audio file (or a video with an audio track); ``None`` = no audio.
        audio_span: ``(start, end)`` seconds within ``audio``; ``None`` = the whole file.
        video: video file; ``None`` = no video.
        video_span: ``(start, end)`` seconds within ``video``; ``None`` = the whole file.
        video_side: frame half showing the speaker: ``left``, ``right`` or ``full``.
        transcript: raw words (markers such as ``[LAUGHTER]`` are the tokenizer's job).
    """

    id: str
    label: str
    speaker: str
    group: str
    audio: Path | None = None
    audio_span: tuple[float, float] | None = None
    video: Path | None = None
    video_span: tuple[float, float] | None = None
    video_side: str = "full"
    transcript: str | None = None


@dataclass(frozen=True)
class Skip:
    """An utterance left out of the data root: which, why (a ``SKIP_*`` string), detail."""

    id: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Problem:
    """A malformed input line or unreadable input file (``line`` is 1-based or ``None``)."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}{'' if self.line is None else f':{self.line}'}: {self.message}"


@dataclass
class FoldPlan:
    """Utterance ids of one fold's splits and how they were chosen."""

    test_groups: list[str]
    train: list[str]
    dev: list[str]
    test: list[str]
    dev_speakers: list[str]


@dataclass
class PrepareResult:
    """What a preparation wrote (also summarized in ``prepare_report.md``)."""

    out_root: Path
    folds: list[FoldPlan]
    kept: list[str]
    skipped: list[Skip]
    problems: list[Problem]
    counts: dict[str, dict[str, int]]  # class -> group -> utterances
    cache: dict[str, dict[str, int]]  # modality -> {"hits": h, "computed": c}
    timings: dict[str, float]
    modalities: tuple[str, ...]
    report: Path


# --------------------------------------------------------------------------- folds


def plan_group_folds(
    records: Sequence[UtteranceRecord], dev_fraction: float = 0.1, groups: Sequence[str] | None = None
) -> list[FoldPlan]:
    """Leave-one-group-out folds with a speaker-independent dev set.

    Fold k (1-based) tests on the k-th group in sorted order (IEMOCAP: session k). Whole
    speakers are moved from training to dev until dev holds at least ``dev_fraction`` of the
    training groups' utterances (at least one speaker always stays in training), taken from
    group k+1 first (cyclic), its sorted speakers rotated by k-1, then group k+2, ... So the
    held-out speaker changes with every fold. IEMOCAP with five sessions and the default 0.1:
    fold 1 holds out Ses02F, fold 2 Ses03M, fold 3 Ses04F, fold 4 Ses05M, fold 5 Ses01F
    (one speaker, about 12% of the training sessions).

    Raises:
        DataError: fewer than two groups, a speaker in more than one group (folds could not
            be speaker independent), or a training part with a single speaker.
    """
    if not 0 < dev_fraction < 1:
        raise DataError(None, f"dev_fraction must be in (0, 1), got {dev_fraction}")
    group_names = sorted({r.group for r in records}) if groups is None else list(groups)
    if len(group_names) < 2:
        raise DataError(None, f"need at least two groups (sessions) to make folds, found {group_names}")
    spk_groups: dict[str, set[str]] = {}
    for r in records:
        spk_groups.setdefault(r.speaker, set()).add(r.group)
    shared = {s: sorted(g) for s, g in spk_groups.items() if len(g) > 1}
    if shared:
        s, g = next(iter(sorted(shared.items())))
        raise DataError(None, f"speaker {s!r} appears in groups {g}: folds would not be speaker independent")
    plans = []
    for k, test_group in enumerate(group_names):
        test = [r.id for r in records if r.group == test_group]
        pool = [r for r in records if r.group != test_group]
        # candidate dev speakers: the next group's first (its speakers rotated by k), then the
        # group after it, and so on (cyclic), so the held-out speaker changes with every fold
        speakers = []
        for j in range(1, len(group_names)):
            g = group_names[(k + j) % len(group_names)]
            in_g = sorted({r.speaker for r in pool if r.group == g})
            if in_g:
                r0 = k % len(in_g)
                speakers += in_g[r0:] + in_g[:r0]
        if len(speakers) < 2:
            raise DataError(None, f"fold {k + 1}: the training groups have only speaker(s) {speakers}; "
                            "a speaker-independent dev set needs at least two")
        per_speaker = Counter(r.speaker for r in pool)
        dev_speakers: list[str] = []
        while sum(per_speaker[s] for s in dev_speakers) < dev_fraction * len(pool) and \
                len(dev_speakers) < len(speakers) - 1:
            dev_speakers.append(speakers[len(dev_speakers)])
        dev_set = set(dev_speakers)
        plans.append(FoldPlan(
            test_groups=[test_group],
            train=[r.id for r in pool if r.speaker not in dev_set],
            dev=[r.id for r in pool if r.speaker in dev_set],
            test=test,
            dev_speakers=sorted(dev_speakers),
        ))
    return plans


_DURATIONS: dict[tuple[str, int, int], float | None] = {}


def video_duration(path: Path) -> float | None:
    """Duration of a video in seconds (container, else first video stream); ``None`` if unreadable."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)  # a rewritten file is probed again
    if key not in _DURATIONS:
        import av

        dur: float | None = None
        try:
            with av.open(str(path)) as c:
                if c.duration is not None:
                    dur = c.duration / 1_000_000
                elif c.streams.video and c.streams.video[0].duration is not None:
                    s = c.streams.video[0]
                    dur = float(s.duration * s.time_base)
        except (av.error.FFmpegError, OSError, ValueError):
            dur = None
        _DURATIONS[key] = dur
    return _DURATIONS[key]


# --------------------------------------------------------------------------- main entry


def video_encoder_setup(video_encoder: Any, video_config: Any) -> tuple[bool, Any, Any]:
    """(use video, injected encoder or None, video config) from a ``video_encoder`` option:
    ``"resnet101"``, ``"none"``, ``"hf:NAME_OR_PATH"``, an image encoder module or ``None``."""
    from selfcross.features.pretrained import is_hf_spec, video_encoder_config

    if is_hf_spec(video_encoder):
        return True, None, video_config or video_encoder_config(video_encoder)
    if isinstance(video_encoder, str):
        if video_encoder not in VIDEO_ENCODERS:
            raise ConfigError(f"video encoder {video_encoder!r} is not one of {', '.join(VIDEO_ENCODERS)}")
        if video_encoder == "none":
            return False, None, None
        if video_config is None:
            from selfcross.features.video import VideoConfig

            video_config = VideoConfig(encoder="resnet101")
        return True, None, video_config
    if video_encoder is None:
        return False, None, None
    if video_config is None:
        from selfcross.features.video import VideoConfig

        video_config = VideoConfig(encoder=type(video_encoder).__name__, weights=None, feat_dim=None)
    return True, video_encoder, video_config


def prepare_records(
    records: Sequence[UtteranceRecord],
    out_root: str | Path,
    class_names: Sequence[str],
    *,
    glove: str | Path | None = None,
    modalities: Iterable[str] = ("audio", "video", "text"),
    audio_config: Any = None,
    video_config: Any = None,
    text_config: Any = None,
    video_encoder: Any = None,
    workers: int = 1,
    progress: bool = True,
    folds: list[FoldPlan] | None = None,
    dev_fraction: float = 0.1,
    skipped: Sequence[Skip] = (),
    problems: Sequence[Problem] = (),
    title: str = "Data preparation",
    notes: Sequence[str] = (),
    source: str = "",
    speaker_norm: bool = False,
    on_unreadable: str = "skip",
) -> PrepareResult:
    """Extract, cache and write a data root from utterance records.

    Args:
        records: the corpus's utterances (ids unique, labels in ``class_names``).
        out_root: the data root to write (``fold01..foldK``, ``classes.txt``, ...).
        class_names: label order of ``S_label.npy``.
        glove: GloVe text file (or a source :func:`load_word_vectors` accepts); required
            when ``text`` is among ``modalities``.
        modalities: which of audio, video, text to write. Every kept utterance has all of them.
        audio_config, video_config, text_config: extractor settings (defaults: the paper's).
        video_encoder: image encoder passed to :class:`VideoFeatures` (``None`` = ResNet-101).
        workers: processes for feature extraction (1 = in this process).
        progress: show tqdm progress bars.
        folds: explicit fold plans (ids); default :func:`plan_group_folds` over ``group``.
        dev_fraction: dev size for :func:`plan_group_folds`.
        skipped, problems: what the corpus adapter already left out / found malformed.
        title, notes, source: for the report.
        speaker_norm: standardise each speaker's audio frames with the mean and std of all
            that speaker's valid frames (every split; transductive for test speakers, never
            labels); statistics written to ``speaker_stats.npz`` (root: every speaker; each
            fold: its training speakers).
        on_unreadable: ``"skip"`` leaves out utterances whose media file cannot be decoded
            (listed in the report); ``"error"`` stops at the first, naming file and problem.

    Returns:
        A :class:`PrepareResult`.

    Raises:
        DataError: duplicate ids, unknown labels, nothing left to write, no GloVe file, or
            (``on_unreadable="error"``) an unreadable media file.
    """
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    out_root = Path(out_root)
    mods = tuple(m for m in ("audio", "video", "text") if m in set(modalities))
    if not mods:
        raise DataError(out_root, "no modality selected")
    class_names = list(class_names)
    records = list(records)
    _check_records(records, class_names)
    configs = _checked_configs(mods, audio_config, video_config, text_config, glove, speaker_norm)
    hf_text = _encoded_text(configs)
    enc_id = encoder_identity(video_encoder)

    if on_unreadable not in ("error", "skip"):
        raise ConfigError(f"on_unreadable must be 'error' or 'skip', got {on_unreadable!r}")
    dropped, tokens, feats = _check_and_extract(records, mods, configs, out_root, enc_id, video_encoder,
                                                workers, progress, timings, on_unreadable == "error")
    kept_records = [r for r in records if r.id not in dropped]
    skips = list(skipped) + [dropped[r.id] for r in records if r.id in dropped]
    if not kept_records:
        raise DataError(out_root, "no utterance left to write; see the skip reasons: "
                        + ", ".join(sorted({s.reason for s in skips})))
    stats = _speaker_statistics(kept_records, feats.files["audio"]) if speaker_norm else None

    embedding = vocab = None
    if "text" in mods and not hf_text:
        t0 = time.perf_counter()
        vocab, embedding = _text_vocabulary(kept_records, tokens, configs, glove)
        timings["text features"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    by_id = {r.id: r for r in kept_records}
    plans = _kept_fold_plans(folds if folds is not None else plan_group_folds(kept_records, dev_fraction),
                             by_id)
    arrays = _Assembly(by_id, class_names, mods, configs, feats, tokens, vocab, stats)
    _write_root(out_root, plans, arrays, class_names, embedding, configs)
    timings["write folds"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all

    result = PrepareResult(
        out_root=out_root, folds=plans, kept=[r.id for r in kept_records], skipped=skips,
        problems=list(problems), counts=_class_counts(kept_records, class_names), cache=feats.cache,
        timings=timings, modalities=mods, report=out_root / REPORT_FILE,
    )
    extra = {"video encoder": enc_id} if "video" in mods else {}
    write_report(result, configs, title=title, notes=notes, source=source, extra=extra)
    return result


def _checked_configs(
    mods: tuple[str, ...], audio_config: Any, video_config: Any, text_config: Any,
    glove: str | Path | None, speaker_norm: bool,
) -> dict[str, dict[str, Any]]:
    """Extractor settings per modality, refusing options that cannot go together."""
    configs = _configs(mods, audio_config, video_config, text_config)
    if "text" in mods and glove is None and not _encoded_text(configs):
        raise DataError(None, "text features need word vectors: give --glove FILE (or a --text-encoder)")
    if speaker_norm:
        if "audio" not in mods:
            raise ConfigError("speaker normalisation applies to audio frames: prepare the audio modality")
        if _encoded(configs, "audio"):
            raise ConfigError("--speaker-norm applies to the built-in audio features (mfcc, egemaps, "
                              "compare, logmel), not to an --audio-encoder")
        configs["audio"]["speaker_norm"] = True
    return configs


def _check_and_extract(
    records: Sequence[UtteranceRecord],
    mods: tuple[str, ...],
    configs: dict[str, dict[str, Any]],
    out_root: Path,
    enc_id: str,
    video_encoder: Any,
    workers: int,
    progress: bool,
    timings: dict[str, float],
    stop_unreadable: bool = False,
) -> tuple[dict[str, Skip], dict[str, list[str]], _FeatureSet]:
    """Media checks, then each modality's cached frame features: (skips by id, tokens by id, features).

    With ``stop_unreadable``, an unreadable file stops the preparation as soon as it is found
    (after the checks, or after the modality whose extraction failed on it)."""
    t0 = time.perf_counter()
    dropped, tokens = _media_checks(records, mods, configs)
    timings["checks"] = time.perf_counter() - t0
    if stop_unreadable:
        refuse_unreadable(records, dropped)
    feats = _FeatureSet(lengths={}, files={}, cache={})
    hf_text = _encoded_text(configs)
    for m in ("audio", "video", "text"):
        if m in mods and (m != "text" or hf_text):  # text: only a pretrained encoder's states
            t0 = time.perf_counter()
            _cached_features(m, records, dropped, out_root, configs[m], enc_id if m == "video" else "",
                             video_encoder, workers, progress, feats)
            timings[f"{m} features"] = time.perf_counter() - t0
            if stop_unreadable:
                refuse_unreadable(records, dropped)
    return dropped, tokens, feats


def refuse_unreadable(records: Sequence[UtteranceRecord], dropped: dict[str, Skip]) -> None:
    """Raise :class:`DataError` for the first record (in input order) whose media file cannot
    be read, naming the file and the problem and counting any others."""
    bad = [r for r in records if r.id in dropped and dropped[r.id].reason in UNREADABLE]
    if not bad:
        return
    r, skip = bad[0], dropped[bad[0].id]
    path = r.video if skip.reason == SKIP_UNREADABLE_VIDEO else r.audio
    problem = skip.detail.removeprefix(f"{path}: ")
    if problem == str(path):
        problem = skip.reason
    more = f"; {len(bad) - 1} more unreadable" if len(bad) > 1 else ""
    raise DataError(path, f"{problem} (utterance {r.id!r}{more}; --skip-unreadable leaves such clips "
                          "out and lists them in the report)")


def _kept_fold_plans(plans: Sequence[FoldPlan], by_id: dict[str, UtteranceRecord]) -> list[FoldPlan]:
    """The fold plans without the utterances that were left out."""
    return [FoldPlan(p.test_groups, [i for i in p.train if i in by_id], [i for i in p.dev if i in by_id],
                     [i for i in p.test if i in by_id], p.dev_speakers) for p in plans]


def _class_counts(
    records: Sequence[UtteranceRecord], class_names: Sequence[str]
) -> dict[str, dict[str, int]]:
    """label -> group -> number of utterances (the report's class table)."""
    counts: dict[str, dict[str, int]] = {c: {} for c in class_names}
    for r in records:
        counts[r.label][r.group] = counts[r.label].get(r.group, 0) + 1
    return counts


def _check_records(records: Sequence[UtteranceRecord], class_names: list[str]) -> None:
    """Unique ids and known labels, else :class:`DataError`."""
    seen: set[str] = set()
    for r in records:
        if r.id in seen:
            raise DataError(None, f"utterance id {r.id!r} appears twice")
        seen.add(r.id)
        if r.label not in class_names:
            raise DataError(None, f"utterance {r.id!r} has label {r.label!r}, not one of {class_names}")


def _media_checks(
    records: Sequence[UtteranceRecord], mods: tuple[str, ...], configs: dict[str, dict[str, Any]]
) -> tuple[dict[str, Skip], dict[str, list[str]]]:
    """Checks that need no feature extraction: ``(skips by id, tokens by id)``."""
    dropped: dict[str, Skip] = {}
    tokens: dict[str, list[str]] = {}
    if "text" in mods:
        from selfcross.features.text import TextConfig, tokenize

        hf_text = _encoded(configs, "text")
        tcfg = None if hf_text else TextConfig.from_dict(configs["text"])
        for r in records:
            if hf_text:  # the encoder's tokenizer runs later; here only emptiness matters
                toks = r.transcript.split() if r.transcript else []
            else:
                toks = tokenize(r.transcript, tcfg) if r.transcript else []
            if not toks:
                dropped.setdefault(r.id, Skip(r.id, SKIP_EMPTY_TRANSCRIPT,
                                              "no transcription line" if r.transcript is None
                                              else f"no words in {r.transcript!r}"))
            tokens[r.id] = toks
    tolerance = float(configs["video"].get("span_tolerance_s", 1.0)) if "video" in mods else 0.0
    for r in records:
        if "audio" in mods and (r.audio is None or not Path(r.audio).is_file()):
            dropped.setdefault(r.id, Skip(r.id, SKIP_MISSING_AUDIO, str(r.audio)))
        if "video" in mods:
            skip = _video_check(r, tolerance)
            if skip is not None:
                dropped.setdefault(r.id, skip)
    return dropped, tokens


def _video_check(r: UtteranceRecord, tolerance: float) -> Skip | None:
    """Why ``r``'s video cannot be used (missing, unreadable, span outside), or ``None``."""
    if r.video is None or not Path(r.video).is_file():
        return Skip(r.id, SKIP_MISSING_VIDEO, str(r.video))
    dur = video_duration(Path(r.video))
    if dur is None:
        return Skip(r.id, SKIP_UNREADABLE_VIDEO, str(r.video))
    if r.video_span is not None and (r.video_span[0] >= dur or r.video_span[1] > dur + tolerance):
        return Skip(r.id, SKIP_VIDEO_SPAN, f"span {r.video_span[0]:.2f}-{r.video_span[1]:.2f} s, "
                    f"file {dur:.2f} s ({r.video})")
    return None


@dataclass
class _FeatureSet:
    """Cached frame files of the extracted modalities: valid lengths, files, cache use."""

    lengths: dict[str, dict[str, int]]
    files: dict[str, dict[str, Path]]
    cache: dict[str, dict[str, int]]


def _cached_features(
    m: str,
    records: Sequence[UtteranceRecord],
    dropped: dict[str, Skip],
    out_root: Path,
    config: dict[str, Any],
    enc_id: str,
    video_encoder: Any,
    workers: int,
    progress: bool,
    feats: _FeatureSet,
) -> None:
    """Features of modality ``m`` for every record not dropped, from the cache or extracted
    into it; records whose extraction fails are added to ``dropped``."""
    folder = out_root / CACHE_DIR / cache_key(m, config, enc_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(
        {"modality": m, "config": config, "encoder": enc_id or None, "version": CACHE_VERSION},
        indent=2, sort_keys=True) + "\n")
    todo: list[_Job] = []
    files: dict[str, Path] = {}
    lengths: dict[str, int] = {}
    for r in records:
        if r.id in dropped:
            continue
        src = {"audio": r.audio, "video": r.video, "text": r.transcript}[m]
        span = {"audio": r.audio_span, "video": r.video_span}.get(m)
        side = r.video_side if m == "video" else "full"
        assert src is not None
        key = _text_key(str(src)) if m == "text" else _input_key(Path(src), span, side)
        f = folder / f"{_safe_name(r.id)}.{key}.npy"
        files[r.id] = f
        if f.is_file():
            try:
                lengths[r.id] = int(np.load(f, mmap_mode="r").shape[0])
                continue
            except (OSError, ValueError):
                f.unlink(missing_ok=True)  # a damaged cache entry is recomputed
        todo.append(_Job(r.id, str(src), span, side, str(f)))
    hits = len(lengths)
    got, errors, notes = _extract_modality(m, todo, config, video_encoder, workers, progress)
    lengths.update(got)
    for utt, err in errors.items():
        dropped.setdefault(utt, Skip(utt, _FAILED[m], err))
    for utt, n in got.items():
        if n <= 0:
            dropped.setdefault(utt, Skip(utt, _EMPTY[m], notes.pop(utt, "") or "no frames extracted"))
    _warn_odd_clips(m, records, notes, dropped)
    feats.lengths[m], feats.files[m] = lengths, files
    feats.cache[m] = {"hits": hits, "computed": len(todo)}


def _warn_odd_clips(m: str, records: Sequence[UtteranceRecord], notes: dict[str, str],
                    dropped: dict[str, Skip]) -> None:
    """One console warning per kind of odd clip (silent, shorter than a window, left out for
    giving no frame), naming up to three files: these clips train on padding or silence."""
    by_kind: dict[str, list[str]] = {}
    src = {r.id: (r.audio if m == "audio" else r.video) for r in records}
    for utt, note in notes.items():
        for part in note.split("; "):
            by_kind.setdefault(part, []).append(str(src[utt]))
    for utt, skip in dropped.items():
        if skip.reason == SKIP_SHORT_AUDIO and m == "audio":
            by_kind.setdefault(f"{skip.reason}, left out", []).append(str(src[utt]))
    for kind, files in by_kind.items():
        more = f" and {len(files) - 3} more" if len(files) > 3 else ""
        log.warning("warning: %d %s clip(s) %s: %s%s", len(files), m, kind, ", ".join(files[:3]), more)


def _text_vocabulary(
    kept: Sequence[UtteranceRecord], tokens: dict[str, list[str]], configs: dict[str, dict[str, Any]],
    glove: str | Path | None,
) -> tuple[Any, np.ndarray]:
    """Vocabulary of the kept transcripts and its word vectors (``configs["text"]`` records them)."""
    from selfcross.features.text import TextConfig, Vocabulary
    from selfcross.features.wordvectors import load_word_vectors

    tcfg = TextConfig.from_dict(configs["text"])
    vocab = Vocabulary.build([tokens[r.id] for r in kept], min_count=tcfg.min_count)
    embedding = load_word_vectors(str(glove), vocab, unknown=tcfg.unknown)
    configs["text"] = {**configs["text"], "word_vectors": Path(str(glove)).name,
                       "embedding_dim": int(embedding.shape[1])}
    return vocab, embedding


@dataclass
class _Assembly:
    """What :func:`_assemble` needs to build any split's arrays."""

    by_id: dict[str, UtteranceRecord]
    class_names: list[str]
    mods: tuple[str, ...]
    configs: dict[str, dict[str, Any]]
    feats: _FeatureSet
    tokens: dict[str, list[str]]
    vocab: Any
    speaker_stats: Any

    def split(self, ids: list[str]) -> dict[str, np.ndarray]:
        return _assemble(ids, self.by_id, self.class_names, self.mods, self.configs, self.feats.files,
                         self.feats.lengths, self.tokens, self.vocab, self.speaker_stats)


def _write_root(
    out_root: Path, plans: list[FoldPlan], arrays: _Assembly, class_names: list[str],
    embedding: np.ndarray | None, configs: dict[str, dict[str, Any]],
) -> None:
    """Write the folds, ``classes.txt``, ``features.json``, ``vocab.txt`` and speaker statistics
    (removing what an earlier preparation left that this one does not write)."""
    from selfcross.features.configio import save_feature_configs
    from selfcross.folds.writer import save_text, write_classes, write_embedding, write_split

    out_root.mkdir(parents=True, exist_ok=True)
    stats = arrays.speaker_stats
    for k, plan in enumerate(plans, start=1):
        fold_dir = out_root / layout.fold_name(k)
        for split, ids in (("train", plan.train), ("dev", plan.dev), ("test", plan.test)):
            split_arrays = arrays.split(ids)
            write_split(fold_dir, split, split_arrays, ids)
            for key in set(layout.SPLIT_FILES) - set(split_arrays) - {"ids"}:  # from an earlier run
                (fold_dir / layout.split_file(split, key)).unlink(missing_ok=True)
        _write_speaker_stats(fold_dir, None if stats is None else stats.subset(
            arrays.by_id[i].speaker for i in plan.train))
        if embedding is not None:
            write_embedding(fold_dir, embedding)
        else:
            (fold_dir / layout.EMBEDDING_FILE).unlink(missing_ok=True)
    _remove_stale_folds(out_root, len(plans))
    write_classes(out_root, class_names)
    _write_speaker_stats(out_root, stats)
    save_feature_configs(out_root, {m: configs[m] for m in ("audio", "video", "text") if m in configs})
    if arrays.vocab is not None:
        save_text(out_root / layout.VOCAB_FILE, list(arrays.vocab.words))
    else:
        (out_root / layout.VOCAB_FILE).unlink(missing_ok=True)


def _encoded(configs: dict[str, dict[str, Any]], modality: str) -> bool:
    """Whether a pretrained (``hf:``) encoder extracts ``modality``'s features."""
    from selfcross.features.pretrained import is_hf_config

    return modality in configs and is_hf_config(configs[modality])


def _encoded_text(configs: dict[str, dict[str, Any]]) -> bool:
    """Whether text is encoded by a pretrained language model (features cached like audio)
    rather than turned into word ids over word vectors."""
    return _encoded(configs, "text")


def _configs(mods: tuple[str, ...], audio: Any, video: Any, text: Any) -> dict[str, dict[str, Any]]:
    """Plain-dict extractor settings per modality (defaults where ``None``)."""
    from selfcross.features.pretrained import is_hf_config

    out: dict[str, dict[str, Any]] = {}
    if "audio" in mods and is_hf_config(audio):  # a pretrained speech encoder's settings
        out["audio"] = audio if isinstance(audio, dict) else audio.to_dict()
    elif "audio" in mods:
        from selfcross.features.audio import AudioConfig, AudioFeatures

        cfg = audio if isinstance(audio, AudioConfig) else AudioConfig.from_dict(audio or {})
        # Building the extractor once here names the openSMILE descriptors in features.json
        # and fails before any work when the front-end's package is missing.
        out["audio"] = AudioFeatures(cfg).config.to_dict()
    if "video" in mods:
        from selfcross.features.video import VideoConfig

        out["video"] = (video or VideoConfig()).to_dict() if not isinstance(video, dict) else video
    if "text" in mods:
        from selfcross.features.text import TextConfig

        out["text"] = (text or TextConfig()).to_dict() if not isinstance(text, dict) else text
    return out


def _speaker_statistics(records: Sequence[UtteranceRecord], files: dict[str, Path]) -> Any:
    """Per-speaker statistics of the cached audio frames of ``records`` (labels unused)."""
    from selfcross.features.speakernorm import SpeakerStats

    by_speaker: dict[str, list[Path]] = {}
    for r in records:
        by_speaker.setdefault(r.speaker, []).append(files[r.id])
    return SpeakerStats.from_frames({s: (np.load(f) for f in fs) for s, fs in by_speaker.items()})


def _write_speaker_stats(folder: Path, stats: Any) -> None:
    """Write ``speaker_stats.npz`` (or remove one left by an earlier preparation)."""
    from selfcross.features.speakernorm import SPEAKER_STATS

    if stats is None:
        (folder / SPEAKER_STATS).unlink(missing_ok=True)
    else:
        stats.save(folder / SPEAKER_STATS)


def _assemble(
    ids: list[str],
    by_id: dict[str, UtteranceRecord],
    class_names: list[str],
    mods: tuple[str, ...],
    configs: dict[str, dict[str, Any]],
    cache_files: dict[str, dict[str, Path]],
    lengths: dict[str, dict[str, int]],
    tokens: dict[str, list[str]],
    vocab: Any,
    speaker_stats: Any = None,
) -> dict[str, np.ndarray]:
    """One split's arrays: ``audio`` [N, T, F] (``[N, T, L, F]`` for stacked encoder layers) +
    ``audio_seqN`` [N], same for video, ``text_ids`` [N, max_tokens] int64 (or ``text``
    [N, T, F] from a pretrained text encoder), ``label`` [N] int64 (zero padding everywhere).
    With ``speaker_stats``, each audio row's valid frames are normalised by its speaker's."""
    from selfcross.features.speakernorm import normalise

    arrays: dict[str, np.ndarray] = {
        "label": np.array([class_names.index(by_id[i].label) for i in ids], dtype=np.int64)
    }
    hf_text = _encoded_text(configs)
    for m in ("audio", "video", "text"):
        if m not in mods or (m == "text" and not hf_text):
            continue
        t_max = int(configs[m]["max_tokens" if m == "text" else "max_frames"])
        first = None
        seq = np.array([lengths[m][i] for i in ids], dtype=np.int64)
        x: np.ndarray | None = None
        for row, i in enumerate(ids):
            a = np.load(cache_files[m][i])
            if m == "audio" and speaker_stats is not None:
                a = normalise(a, *speaker_stats.of(by_id[i].speaker))
            if x is None:
                first = a.shape[1:]
                x = np.zeros((len(ids), t_max, *first), dtype=np.float32)
            if a.shape[1:] != first:
                raise DataError(cache_files[m][i],
                                f"feature shape {list(a.shape[1:])} differs from {list(first)}")
            x[row, : min(len(a), t_max)] = a[:t_max]
        if x is None:  # empty split: width from a cached entry of any utterance
            any_file = next(iter(cache_files[m].values()))
            x = np.zeros((0, t_max, *np.load(any_file, mmap_mode="r").shape[1:]), dtype=np.float32)
        arrays[m] = x
        if m != "text":  # the layout counts text lengths from the non-zero rows
            arrays[f"{m}_seqN"] = np.minimum(seq, t_max)
    if "text" in mods and not hf_text:
        from selfcross.features.text import TextConfig, encode

        tcfg = TextConfig.from_dict(configs["text"])
        rows = [encode(by_id[i].transcript or "", vocab, tcfg.max_tokens, tcfg) for i in ids]
        max_tokens = tcfg.max_tokens
        arrays["text_ids"] = (np.stack(rows).astype(np.int64) if rows
                              else np.zeros((0, max_tokens), dtype=np.int64))
    return arrays


def _remove_stale_folds(out_root: Path, k: int) -> None:
    """Remove ``foldNN`` folders numbered above ``k`` left by an earlier preparation."""
    for p in out_root.iterdir():
        n = layout.fold_number(p.name)
        if n is not None and n > k and p.is_dir():
            shutil.rmtree(p)
