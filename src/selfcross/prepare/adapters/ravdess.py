"""RAVDESS (Livingstone & Russo 2018) in its published layout -> manifest rows.

File names are seven two-digit codes ``MM-VV-EE-II-SS-RR-AA``: modality (01 full AV mp4,
02 video-only mp4, 03 audio-only wav), vocal channel (01 speech, 02 song), emotion
(01 neutral .. 08 surprised, :data:`selfcross.labels.RAVDESS8` order), intensity (01
normal, 02 strong), statement (01 "Kids are talking by the door", 02 "Dogs are sitting by
the door"), repetition (01, 02) and actor (01..24; odd = male). Files may sit anywhere
under the source folder (``Actor_NN/`` normally); ``.wav``, ``.flac`` (re-encoded copies)
and ``.mp4`` are read.

One *take* (the six codes after the modality) is one utterance, id ``VV-EE-II-SS-RR-AA``:
the three modality files of a take are the same performance recorded at once. Audio comes
from the audio-only file when present (the studio-quality track), else from the full-AV
mp4's audio track; video from the full-AV mp4 (else the video-only one). Speaker = actor.
Text = the statement's words (the same two sentences for every emotion: no emotion cue).
"""

from __future__ import annotations

import re
from pathlib import Path

from selfcross.errors import ConfigError, DataError
from selfcross.labels import RAVDESS8
from selfcross.prepare.adapters.scan import CorpusScan

#: Statement code -> words.
STATEMENTS: dict[str, str] = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
#: Vocal channel code -> name.
CHANNELS: dict[str, str] = {"01": "speech", "02": "song"}
#: Modality code -> file kind.
MODALITY_CODES: dict[str, str] = {"01": "av", "02": "video", "03": "audio"}
#: ``channel`` option choices.
CHANNEL_CHOICES: tuple[str, ...] = ("speech", "song", "all")
#: Class names with calm merged into neutral (RAVDESS8 order without calm).
MERGED7: tuple[str, ...] = tuple(n for n in RAVDESS8.names if n != "calm")

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_EXTS = {".wav": "audio", ".flac": "audio", ".mp4": "video"}


def parse_name(stem: str) -> dict[str, str] | None:
    """Codes of a RAVDESS file stem (``03-01-05-02-01-01-12``) or ``None`` if not one.

    Returns:
        ``{"modality", "channel", "emotion", "intensity", "statement", "repetition", "actor",
        "take"}`` with names (``emotion="angry"``, ``channel="speech"``, ``actor="Actor_12"``)
        and ``take`` = the id ``VV-EE-II-SS-RR-AA``.

    Raises:
        DataError: the stem has the RAVDESS shape but a code out of range.
    """
    m = _NAME.match(stem)
    if m is None:
        return None
    mm, vv, ee, ii, ss, rr, aa = m.groups()
    bad = [what for what, ok in (
        ("modality", mm in MODALITY_CODES), ("vocal channel", vv in CHANNELS),
        ("emotion", 1 <= int(ee) <= 8), ("intensity", ii in ("01", "02")),
        ("statement", ss in STATEMENTS), ("repetition", rr in ("01", "02")), ("actor", int(aa) >= 1),
    ) if not ok]
    if bad:
        raise DataError(stem, f"not a valid RAVDESS name: bad {', '.join(bad)} code")
    return {
        "modality": MODALITY_CODES[mm], "channel": CHANNELS[vv], "emotion": RAVDESS8.names[int(ee) - 1],
        "intensity": ii, "statement": ss, "repetition": rr, "actor": f"Actor_{aa}",
        "take": f"{vv}-{ee}-{ii}-{ss}-{rr}-{aa}",
    }


def _find_takes(src: Path, channel: str) -> tuple[dict[str, dict[str, object]], int, int, int]:
    """take -> {info, audio/av/video_only file}, and the counts of ignored, other-channel and
    duplicate files."""
    takes: dict[str, dict[str, object]] = {}
    ignored = other_channel = duplicates = 0
    for f in sorted(src.rglob("*")):
        if not f.is_file() or f.name.startswith("."):
            continue
        kind = _EXTS.get(f.suffix.lower())
        try:
            info = parse_name(f.stem) if kind else None
        except DataError as e:
            raise DataError(f, e.problem) from None
        if info is None:
            ignored += int(kind is not None)
            continue
        if channel != "all" and info["channel"] != channel:
            other_channel += 1
            continue
        if (kind == "audio") != (info["modality"] == "audio"):
            raise DataError(f, f"modality code says {info['modality']!r} but the extension is {f.suffix}")
        t = takes.setdefault(info["take"], {"info": info})
        slot = {"audio": "audio", "av": "av", "video": "video_only"}[info["modality"]]
        if slot in t:
            duplicates += 1  # e.g. both .wav and .flac of one take: the first (sorted) is kept
            continue
        t[slot] = f.resolve()
    return takes, ignored, other_channel, duplicates


def _take_row(take: str, t: dict[str, object], merge_calm: bool) -> dict[str, object]:
    """The manifest row of one take: audio from the audio-only file when present, else the AV mp4."""
    info = t["info"]
    assert isinstance(info, dict)
    label = info["emotion"]
    if merge_calm and label == "calm":
        label = "neutral"
    audio = t.get("audio") or t.get("av")
    video = t.get("av") or t.get("video_only")
    return {
        "id": take, "label": label, "speaker": info["actor"], "audio": audio, "video": video,
        "transcript": STATEMENTS[info["statement"]],
    }


def scan_ravdess(src: str | Path, *, channel: str = "speech", merge_calm: bool = False) -> CorpusScan:
    """Find every RAVDESS file under ``src`` and describe one row per take.

    Args:
        src: a folder holding RAVDESS files (e.g. ``Actor_01/`` ... ``Actor_24/``) at any depth.
        channel: ``speech`` (default), ``song`` or ``all``.
        merge_calm: label calm takes ``neutral`` (7 classes) instead of 8 classes.

    Raises:
        DataError: no RAVDESS file found, or a RAVDESS-shaped name with a bad code.
    """
    src = Path(src)
    if channel not in CHANNEL_CHOICES:
        raise ConfigError(f"channel {channel!r} is not one of {', '.join(CHANNEL_CHOICES)}")
    if not src.is_dir():
        raise DataError(src, "no such folder (expected the RAVDESS files, e.g. Actor_01/ ...)")
    takes, ignored, other_channel, duplicates = _find_takes(src, channel)
    if not takes:
        raise DataError(src, f"no RAVDESS {channel if channel != 'all' else ''} files "
                             "(MM-VV-EE-II-SS-RR-AA.wav/.flac/.mp4) found")
    rows = [_take_row(take, t, merge_calm) for take, t in sorted(takes.items())]
    media = tuple(m for m in ("audio", "video") if any(r[m] is not None for r in rows))
    notes = [f"RAVDESS: {len(rows)} takes ({channel}), {len({r['speaker'] for r in rows})} actors; "
             "audio from the audio-only file when present, else from the full-AV mp4; speaker = actor."]
    if merge_calm:
        notes.append("calm merged into neutral (7 classes).")
    if other_channel:
        notes.append(f"{other_channel} file(s) of the other vocal channel left out (--channel {channel}).")
    if ignored:
        notes.append(f"{ignored} media file(s) without a RAVDESS name ignored.")
    if duplicates:
        notes.append(f"{duplicates} duplicate file(s) of the same take and modality ignored.")
    return CorpusScan(
        corpus="ravdess", rows=rows, class_names=MERGED7 if merge_calm else RAVDESS8.names, media=media,
        default_folds=6, text_informative=False, notes=notes,
    )
