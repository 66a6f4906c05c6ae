"""CREMA-D (Cao et al. 2014) in its published layout -> manifest rows.

Layout read: ``AudioWAV/<name>.wav`` (else ``AudioMP3/<name>.mp3``) and
``VideoFlash/<name>.flv`` (``.mp4`` copies accepted too, also in ``VideoMP4/``), where
``<name>`` = ``ActorID_Sentence_Emotion_Level``, e.g. ``1001_DFA_ANG_XX``: actor 1001..1091,
one of 12 sentence codes (:data:`SENTENCES`), emotion ANG/DIS/FEA/HAP/NEU/SAD
(:data:`selfcross.labels.CREMAD6`), level LO/MD/HI or XX (unspecified). One clip = one
utterance, id ``<name>``; speaker = actor. Audio from the wav (else mp3, else the video's
audio track); video from the flv/mp4. Text = the sentence's words (the same 12 sentences
for every emotion: no emotion cue). There is no official split: speaker-independent folds
(5 by default) are made by the manifest preparation.
"""

from __future__ import annotations

import re
from pathlib import Path

from selfcross.errors import DataError
from selfcross.labels import CREMAD6
from selfcross.prepare.adapters.scan import CorpusScan

#: Sentence code -> words (CREMA-D's 12 sentences).
SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
#: Emotion code -> class name (CREMAD6).
EMOTIONS: dict[str, str] = dict(zip(("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"), CREMAD6.names))
#: Level codes.
LEVELS: tuple[str, ...] = ("LO", "MD", "HI", "XX")
#: (folder, extensions) searched for audio, then video, in preference order.
AUDIO_DIRS: tuple[tuple[str, tuple[str, ...]], ...] = (("AudioWAV", (".wav",)), ("AudioMP3", (".mp3",)))
VIDEO_DIRS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("VideoFlash", (".flv", ".mp4")), ("VideoMP4", (".mp4",)))

_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def parse_name(stem: str) -> dict[str, str] | None:
    """``1001_DFA_ANG_XX`` -> ``{"actor", "sentence", "emotion", "level", "text"}``; ``None`` if
    the stem does not have CREMA-D's shape.

    Raises:
        DataError: CREMA-D's shape but an unknown sentence, emotion or level code.
    """
    m = _NAME.match(stem)
    if m is None:
        return None
    actor, sent, emo, level = m.groups()
    bad = [w for w, ok in (("sentence", sent in SENTENCES), ("emotion", emo in EMOTIONS),
                           ("level", level in LEVELS)) if not ok]
    if bad:
        raise DataError(stem, f"not a valid CREMA-D name: unknown {', '.join(bad)} code")
    return {"actor": actor, "sentence": sent, "emotion": EMOTIONS[emo], "level": level,
            "text": SENTENCES[sent]}


def _collect(src: Path, dirs: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[dict[str, Path], int]:
    found: dict[str, Path] = {}
    ignored = 0
    for folder, exts in dirs:
        d = src / folder
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if not f.is_file() or f.name.startswith(".") or f.suffix.lower() not in exts:
                continue
            try:
                info = parse_name(f.stem)
            except DataError as e:
                raise DataError(f, e.problem) from None
            if info is None:
                ignored += 1
                continue
            found.setdefault(f.stem, f.resolve())
    return found, ignored


def scan_cremad(src: str | Path) -> CorpusScan:
    """Find CREMA-D's clips under ``src`` (the folder holding ``AudioWAV/``, ``VideoFlash/``).

    Raises:
        DataError: neither folder found, no clip found, or a CREMA-D-shaped name with a bad code.
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(src, "no such folder (expected CREMA-D's AudioWAV/ and/or VideoFlash/)")
    audio, ign_a = _collect(src, AUDIO_DIRS)
    video, ign_v = _collect(src, VIDEO_DIRS)
    if not audio and not video:
        raise DataError(src, "no CREMA-D clip (ActorID_Sentence_Emotion_Level) found in AudioWAV/, "
                             "AudioMP3/, VideoFlash/ or VideoMP4/")
    rows = []
    from_video = 0
    for name in sorted(set(audio) | set(video)):
        info = parse_name(name)
        assert info is not None
        a = audio.get(name)
        if a is None and video.get(name) is not None:
            a = video[name]
            from_video += 1
        rows.append({"id": name, "label": info["emotion"], "speaker": info["actor"], "audio": a,
                     "video": video.get(name), "transcript": info["text"]})
    media = tuple(m for m in ("audio", "video") if any(r[m] is not None for r in rows))
    notes = [f"CREMA-D: {len(rows)} clips ({len(audio)} audio files, {len(video)} video files), "
             f"{len({r['speaker'] for r in rows})} actors; speaker = actor."]
    if from_video:
        notes.append(f"{from_video} clip(s) without an audio file take the audio track of their video.")
    if video and audio and set(audio) != set(video):
        notes.append(f"{len(set(audio) ^ set(video))} clip(s) have audio or video but not both; "
                     "preparing both modalities skips them.")
    if ign_a + ign_v:
        notes.append(f"{ign_a + ign_v} file(s) without a CREMA-D name ignored.")
    return CorpusScan(corpus="crema-d", rows=rows, class_names=CREMAD6.names, media=media,
                      default_folds=5, on_missing="skip", text_informative=False, notes=notes)
