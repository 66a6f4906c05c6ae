"""Reading the raw IEMOCAP release into utterance records (the corpus-specific half).

Why a separate module: everything IEMOCAP-specific (file layout, line formats, label
codes, who sits on which half of the video frame) lives here and produces plain
:class:`~selfcross.prepare.pipeline.UtteranceRecord` objects; feature extraction, caching,
folds, the data root and the report are the generic machinery of
:mod:`selfcross.prepare.pipeline`, shared with any other corpus.

Raw layout read (docs/paper.md, Data), for each ``SessionK`` under the root:

- ``dialog/EmoEvaluation/<dialog>.txt``: one line per utterance
  ``[start - end]<TAB>utterance_id<TAB>label<TAB>[V, A, D]`` followed by per-annotator
  lines (``C-E1: ...``, ``A-F1: ...``), which are ignored;
- ``dialog/transcriptions/<dialog>.txt``: ``utterance_id [start-end]: words``;
- ``sentences/wav/<dialog>/<utterance_id>.wav``: the utterance's audio (16 kHz mono);
- ``dialog/avi/DivX/<dialog>.avi``: the whole dialog, both actors side by side.

Malformed lines are collected as :class:`Problem` (file and line number) and the rest of
the file is still used; with ``strict=True`` the first problem raises
:class:`~selfcross.errors.DataError` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from selfcross.errors import ConfigError, DataError
from selfcross.labels import IEMOCAP4, IEMOCAP7, IEMOCAP7_CODES, ClassSet
from selfcross.prepare.options import CorpusNotes, FeatureOptions
from selfcross.prepare.pipeline import (  # noqa: F401 - VIDEO_ENCODERS: public here too
    VIDEO_ENCODERS,
    prepare_records,
    video_encoder_setup,
)
from selfcross.prepare.records import PrepareResult, Problem, Skip, UtteranceRecord

#: Raw label code -> class name, per label set. Codes absent from a map are skipped as
#: "unused label" (fea, dis, oth, xxx always; fru, sur too in the four-class set).
LABEL_MAPS: dict[str, dict[str, str]] = {
    "seven": dict(zip(IEMOCAP7_CODES, IEMOCAP7.names)),
    "four": {"ang": "angry", "hap": "happy", "exc": "happy", "sad": "sad", "neu": "neutral"},
}
#: Class set (label order) of each label choice.
LABEL_SETS: dict[str, ClassSet] = {"seven": IEMOCAP7, "four": IEMOCAP4}

#: Which half of the dialog video shows the speaking actor. In every IEMOCAP dialog one
#: actor wears the motion-capture markers: the letter after ``SesNN`` in the dialog name
#: (``Ses01F_impro01`` -> the female actor). ``markers-left`` (default) assumes that actor
#: is in the left half of the frame and the other in the right half, as public IEMOCAP
#: face-cropping scripts do; ``markers-right`` is the opposite mapping; ``left``/``right``
#: always take that half; ``full`` keeps the whole frame (both actors).
SIDE_CHOICES: tuple[str, ...] = ("markers-left", "markers-right", "left", "right", "full")

_EMO_LINE = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d*)?)\s*-\s*(?P<end>\d+(?:\.\d*)?)\s*\]\s+"
    r"(?P<utt>\S+)\s+(?P<label>\S+)\s+\[(?P<vad>[^\]]*)\]\s*$"
)
_TRANS_LINE = re.compile(
    r"^(?P<utt>\S+)\s+\[\s*(?P<start>\d+(?:\.\d*)?)\s*-\s*(?P<end>\d+(?:\.\d*)?)\s*\]\s*:\s?(?P<text>.*)$"
)
_UTT_ID = re.compile(r"^(?P<session>Ses\d\d)(?P<markers>[FM])_(?P<rest>.+)_(?P<gender>[FM])(?P<num>\d+)$")
_SESSION_DIR = re.compile(r"^Session(\d+)$")


@dataclass
class IemocapScan:
    """What :func:`scan_iemocap` found.

    Attributes:
        records: kept utterances (label mapped, paths resolved, not yet checked on disk).
        skipped: utterances left out here (unused label, transcript for an unknown
            utterance); media checks happen later in :mod:`selfcross.prepare.pipeline`.
        problems: malformed lines and unreadable/missing annotation files.
        sessions: session names found (``Ses01`` ...), sorted.
        class_set: the label order used.
    """

    records: list[UtteranceRecord]
    skipped: list[Skip]
    problems: list[Problem]
    sessions: list[str]
    class_set: ClassSet


def speaker_of(utt_id: str) -> str:
    """Speaker of an utterance id: session + gender letter (``Ses01F_impro01_M003`` -> ``Ses01M``).

    Raises:
        ValueError: the id does not follow the ``SesNN<X>_<dialog>_<G><NNN>`` pattern.
    """
    m = _UTT_ID.match(utt_id)
    if not m:
        raise ValueError(f"utterance id {utt_id!r} does not look like SesNNX_<dialog>_<F|M>NNN")
    return m["session"] + m["gender"]


def video_side(utt_id: str, side: str = "markers-left") -> str:
    """Half of the dialog frame (``left``/``right``/``full``) that shows the utterance's speaker.

    See :data:`SIDE_CHOICES`; the speaker wears the markers when the id's gender letter
    equals the dialog's letter after ``SesNN``.
    """
    if side not in SIDE_CHOICES:
        raise ConfigError(f"side {side!r} is not one of {', '.join(SIDE_CHOICES)}")
    if side in ("left", "right", "full"):
        return side
    m = _UTT_ID.match(utt_id)
    if not m:
        raise ValueError(f"utterance id {utt_id!r} does not look like SesNNX_<dialog>_<F|M>NNN")
    wears_markers = m["gender"] == m["markers"]
    markers_half, other_half = ("left", "right") if side == "markers-left" else ("right", "left")
    return markers_half if wears_markers else other_half


def find_sessions(root: str | Path) -> list[tuple[str, Path]]:
    """``[("Ses01", path/Session1), ...]`` under ``root`` (or ``root/IEMOCAP_full_release``).

    Raises:
        DataError: no ``SessionK`` folder found.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "IEMOCAP root is not a folder")
    for base in (root, root / "IEMOCAP_full_release"):
        found = []
        if base.is_dir():
            for p in base.iterdir():
                m = _SESSION_DIR.match(p.name)
                if m and p.is_dir():
                    found.append((f"Ses{int(m.group(1)):02d}", p))
        if found:
            return sorted(found)
    raise DataError(root, "no Session1..Session5 folders found: give the IEMOCAP_full_release folder")


def _read_lines(path: Path, problems: list[Problem], strict: bool) -> list[str] | None:
    try:
        return path.read_text(encoding="utf-8", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        _problem(problems, strict, Problem(str(path), None, f"cannot read file ({e})"))
        return None


def _problem(problems: list[Problem], strict: bool, p: Problem) -> None:
    if strict:
        where = p.path if p.line is None else f"{p.path}:{p.line}"
        raise DataError(where, p.message + " (--strict stops at the first problem)")
    problems.append(p)


@dataclass
class _EmoEntry:
    utt: str
    start: float
    end: float
    code: str


def parse_emo_evaluation(path: Path, problems: list[Problem], strict: bool = False) -> list[_EmoEntry]:
    """Utterance lines of one ``EmoEvaluation/<dialog>.txt``; malformed ones go to ``problems``.

    A line is an utterance line when it starts with ``[``; annotator lines (``C-..``,
    ``A-..``), ``%`` comments and blank lines are ignored.
    """
    lines = _read_lines(path, problems, strict)
    if lines is None:
        return []
    dialog = path.stem
    out: list[_EmoEntry] = []
    for n, line in enumerate(lines, start=1):
        if not line.startswith("["):
            continue
        m = _EMO_LINE.match(line.strip())
        if not m:
            msg = (f"malformed utterance line {line.strip()[:80]!r}: "
                   "expected '[start - end]<TAB>id<TAB>label<TAB>[V, A, D]'")
            _problem(problems, strict, Problem(str(path), n, msg))
            continue
        start, end, utt = float(m["start"]), float(m["end"]), m["utt"]
        msg = None
        if not utt.startswith(dialog + "_"):
            msg = f"utterance {utt!r} does not belong to dialog {dialog!r}"
        elif not _UTT_ID.match(utt):
            msg = f"utterance id {utt!r} does not end in _F<nnn> or _M<nnn>"
        elif not end > start:
            msg = f"utterance {utt!r} ends ({end}) before it starts ({start})"
        if msg:
            _problem(problems, strict, Problem(str(path), n, msg))
            continue
        out.append(_EmoEntry(utt, start, end, m["label"].lower()))
    return out


def parse_transcription(path: Path, problems: list[Problem], strict: bool = False) -> dict[str, str]:
    """``{utterance_id: words}`` of one ``transcriptions/<dialog>.txt`` (raw words, markers kept)."""
    lines = _read_lines(path, problems, strict)
    if lines is None:
        return {}
    out: dict[str, str] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        m = _TRANS_LINE.match(line.strip())
        if not m:
            _problem(problems, strict, Problem(str(path), n, f"malformed transcription line "
                                               f"{line.strip()[:80]!r}: expected 'id [start-end]: words'"))
            continue
        out[m["utt"]] = m["text"].strip()
    return out


def _scan_dialog(
    session: str,
    sdir: Path,
    emo_file: Path,
    label_map: dict[str, str],
    side: str,
    strict: bool,
    records: list[UtteranceRecord],
    skipped: list[Skip],
    problems: list[Problem],
) -> None:
    """Append one dialog's utterances (annotations, wav, video span and half, words) to ``records``."""
    dialog = emo_file.stem
    entries = parse_emo_evaluation(emo_file, problems, strict)
    trans_file = sdir / "dialog" / "transcriptions" / f"{dialog}.txt"
    if trans_file.is_file():
        transcripts = parse_transcription(trans_file, problems, strict)
    else:
        _problem(problems, strict, Problem(str(trans_file), None, "transcription file missing"))
        transcripts = {}
    video = sdir / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
    known = set()
    for e in entries:
        known.add(e.utt)
        name = label_map.get(e.code)
        if name is None:
            skipped.append(Skip(e.utt, "unused label", e.code))
            continue
        records.append(UtteranceRecord(
            id=e.utt,
            label=name,
            speaker=speaker_of(e.utt),
            group=session,
            audio=sdir / "sentences" / "wav" / dialog / f"{e.utt}.wav",
            video=video,
            video_span=(e.start, e.end),
            video_side=video_side(e.utt, side),
            transcript=transcripts.get(e.utt),
        ))
    for utt in sorted(set(transcripts) - known):
        skipped.append(Skip(utt, "transcript for an unknown utterance", str(trans_file)))


def scan_iemocap(
    root: str | Path, labels: str = "seven", side: str = "markers-left", strict: bool = False
) -> IemocapScan:
    """Parse every dialog of every session under ``root`` into utterance records.

    Args:
        root: the ``IEMOCAP_full_release`` folder (holding ``Session1`` ... ``Session5``;
            any subset is accepted).
        labels: ``seven`` (the paper's classes) or ``four`` (angry, happy+excited, sad, neutral).
        side: which video half holds the speaker, see :data:`SIDE_CHOICES`.
        strict: raise :class:`DataError` at the first malformed line or unreadable file.

    Returns:
        An :class:`IemocapScan`; records carry the utterance wav path, the dialog video with
        the utterance's time span and half, and the raw transcript (``None`` when absent).
    """
    if labels not in LABEL_MAPS:
        raise ConfigError(f"labels {labels!r} is not one of {', '.join(LABEL_MAPS)}")
    if side not in SIDE_CHOICES:
        raise ConfigError(f"side {side!r} is not one of {', '.join(SIDE_CHOICES)}")
    label_map = LABEL_MAPS[labels]
    records: list[UtteranceRecord] = []
    skipped: list[Skip] = []
    problems: list[Problem] = []
    sessions = find_sessions(root)
    for session, sdir in sessions:
        emo_dir = sdir / "dialog" / "EmoEvaluation"
        if not emo_dir.is_dir():
            _problem(problems, strict, Problem(str(emo_dir), None, "no EmoEvaluation folder"))
            continue
        for emo_file in sorted(emo_dir.glob("*.txt")):
            if not emo_file.stem.startswith(session):
                continue  # e.g. stray files; IEMOCAP dialog names start with their session
            _scan_dialog(session, sdir, emo_file, label_map, side, strict, records, skipped, problems)
    return IemocapScan(records, skipped, problems, [s for s, _ in sessions], LABEL_SETS[labels])


def prepare_iemocap(
    root: str | Path,
    out_root: str | Path,
    features: FeatureOptions | None = None,
    *,
    labels: str = "seven",
    side: str = "markers-left",
    strict: bool = False,
    dev_fraction: float = 0.1,
) -> PrepareResult:
    """Raw IEMOCAP release -> data root ``fold01..foldK`` (K = sessions present, 5 normally).

    Fold k tests on session k; dev = one (or more) whole speakers of the other sessions,
    rotating between folds (:func:`~selfcross.prepare.pipeline.plan_group_folds`), so no speaker
    is in two splits of a fold.

    Args:
        root: ``IEMOCAP_full_release`` (or its parent).
        out_root: data root to write; its ``.cache`` makes a rerun resume.
        features: how features are extracted (:class:`~selfcross.prepare.options.FeatureOptions`):
            ``glove`` (e.g. ``glove.840B.300d.txt`` or ``"kumo-6b-50d"``; ``None`` when
            ``text_config`` names a pretrained text encoder), ``video_encoder``
            (``"resnet101"``, ``"hf:NAME_OR_PATH"``, ``"none"`` = no video modality, or an
            image encoder module ``[n, 3, 224, 224] -> [n, D]``: tests inject a tiny one), the
            extractor configs, ``speaker_norm`` (each speaker's own statistics over all their
            utterances; transductive, never labels), workers, progress.
        labels: ``seven`` or ``four``.
        side: speaker's frame half, see :data:`SIDE_CHOICES`.
        strict: stop with :class:`DataError` at the first malformed annotation line.
        dev_fraction: minimum share of the training sessions' utterances moved to dev.
    """
    features = features or FeatureOptions()
    scan = scan_iemocap(root, labels=labels, side=side, strict=strict)
    # the setup's video config is used only when video is prepared, so "none" may drop it
    use_video, _, video_config = video_encoder_setup(features.video_encoder, features.video_config)
    modalities = ["audio", "text"] + (["video"] if use_video else [])
    notes = [f"Labels: {labels} ({', '.join(scan.class_set.names)}). Video half of the speaker: {side}."]
    if len(scan.sessions) < 5:
        notes.append(f"Only {len(scan.sessions)} session(s) found ({', '.join(scan.sessions)}): "
                     f"{len(scan.sessions)} folds instead of the paper's 5.")
    corpus = CorpusNotes(title="IEMOCAP preparation", source=str(Path(root).resolve()), notes=notes,
                         skipped=scan.skipped, problems=scan.problems)
    return prepare_records(scan.records, out_root, scan.class_set.names,
                           replace(features, video_config=video_config), modalities=modalities,
                           dev_fraction=dev_fraction, corpus=corpus)
