"""MELD (Poria et al. 2019) in its published layout -> manifest rows.

Read: ``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv`` (in the source
folder, or ``data/MELD/`` under it) with columns ``Utterance, Speaker, Emotion,
Dialogue_ID, Utterance_ID`` (others ignored); the official split is the split. When the
``MELD.Raw`` videos are found (folders ``train_splits``, ``dev_splits_complete``,
``output_repeated_splits_test`` anywhere up to three levels under the source, or under
``raw``), each utterance's ``dia{Dialogue_ID}_utt{Utterance_ID}.mp4`` gives its audio
(the mp4's audio track) and video (full frame); utterances whose mp4 is missing are
skipped and listed in the report. Without them MELD is text-only.

Ids are ``{split}_dia{D}_utt{U}`` (dialogue ids restart in every split). Speaker = the
``Speaker`` column; MELD's official split is **not** speaker independent (the six main
characters are in every split), which the report states.

Text normalization (:func:`normalize_text`): MELD's CSVs use typographic punctuation
(’ ‘ “ ” … —) and, in some copies, mis-encoded characters (UTF-8 read as cp1252:
``Iâ€™m``; or raw cp1252 bytes ``\\x92``). Both are mapped to plain ASCII punctuation so
the tokenizer splits ``I’m`` like ``I'm`` (``i 'm``, as GloVe's corpus did).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

from selfcross.errors import DataError
from selfcross.labels import MELD7
from selfcross.prepare.adapters.scan import CorpusScan

#: Split -> CSV file name.
CSV_FILES: dict[str, str] = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv",
                             "test": "test_sent_emo.csv"}
#: Split -> MELD.Raw folder of its mp4s.
RAW_DIRS: dict[str, str] = {"train": "train_splits", "dev": "dev_splits_complete",
                            "test": "output_repeated_splits_test"}
REQUIRED_COLUMNS: tuple[str, ...] = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")

_MOJIBAKE = re.compile("[\u00c2\u00c3\u00e2][\u0080-\u00bf\u2018-\u203a\u0152\u0153\u0160\u0161\u0178"
                       "\u017d\u017e\u0192\u02c6\u02dc\u20ac\u2122]")
_CP1252_CONTROLS = {"\x91": "'", "\x92": "'", "\x93": '"', "\x94": '"', "\x85": "...",
                    "\x96": "-", "\x97": "-", "\xa0": " "}
_TYPOGRAPHIC = {"\u2019": "'", "\u2018": "'", "\u201b": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"',
                "\u2026": "...", "\u2014": " - ", "\u2013": " - ", "\u00a0": " "}


def normalize_text(s: str) -> str:
    """Repair mis-encoded characters and map typographic punctuation to ASCII.

    ``"I\u2019m"`` -> ``"I'm"``; ``"Iâ€™m"`` (UTF-8 bytes read as cp1252) -> ``"I'm"``;
    ``"I\\x92m"`` (a raw cp1252 byte) -> ``"I'm"``; whitespace runs -> one space. Accented
    letters (``café``) are kept (NFC).
    """
    if _MOJIBAKE.search(s):
        try:
            s = s.encode("cp1252").decode("utf-8")
        except UnicodeError:
            pass  # not cp1252-encodable or not UTF-8 underneath: leave it
    for table in (_CP1252_CONTROLS, _TYPOGRAPHIC):
        for k, v in table.items():
            s = s.replace(k, v)
    s = unicodedata.normalize("NFC", s)
    return " ".join(s.split())


def find_csv_folder(src: Path) -> Path:
    """The folder holding the three CSVs: ``src`` itself or ``src/data/MELD``."""
    for d in (src, src / "data" / "MELD", src / "MELD"):
        if all((d / f).is_file() for f in CSV_FILES.values()):
            return d
    have = [f for f in CSV_FILES.values() if (src / f).is_file()]
    raise DataError(src, "MELD CSVs not found: need " + ", ".join(CSV_FILES.values())
                    + (f" (found only {', '.join(have)})" if have else "") + " in this folder or data/MELD/")


def find_raw_dirs(src: Path, raw: Path | None = None) -> dict[str, Path]:
    """Split -> folder of MELD.Raw mp4s, for the splits whose folder exists (may be empty)."""
    found: dict[str, Path] = {}
    roots = [raw] if raw is not None else [src]
    for root in roots:
        if not root.is_dir():
            raise DataError(root, "no such MELD.Raw folder")
        for split, name in RAW_DIRS.items():
            if split in found:
                continue
            for depth in range(4):
                hits = sorted(p for p in root.glob("/".join(["*"] * depth + [name])) if p.is_dir())
                if hits:
                    found[split] = hits[0]
                    break
    return found


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    for enc in ("utf-8-sig", "cp1252"):
        try:
            with open(path, newline="", encoding=enc) as f:
                reader = csv.DictReader(f)
                rows = [(i, r) for i, r in enumerate(reader, start=2)]
                header = reader.fieldnames or []
            break
        except UnicodeDecodeError:
            continue
        except csv.Error as e:
            raise DataError(path, f"is not a readable CSV file ({e})") from None
    else:  # pragma: no cover - cp1252 decodes almost any byte
        raise DataError(path, "is neither UTF-8 nor cp1252 text")
    lacking = [c for c in REQUIRED_COLUMNS if c not in header]
    if lacking:
        raise DataError(path, f"line 1: missing column(s) {', '.join(lacking)}")
    return rows


def scan_meld(src: str | Path, *, raw: str | Path | None = None) -> CorpusScan:
    """Read MELD's CSVs (and find ``MELD.Raw`` mp4s) under ``src``.

    Args:
        src: folder with the three CSVs (or ``data/MELD/`` under it) and possibly MELD.Raw.
        raw: where MELD.Raw's split folders are, if not under ``src``.

    Raises:
        DataError: CSVs missing, a required column missing, an unknown emotion or a bad id
            (naming the CSV and line).
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(src, "no such folder (expected MELD's train/dev/test_sent_emo.csv)")
    folder = find_csv_folder(src)
    raw_dirs = find_raw_dirs(src, None if raw is None else Path(raw))
    rows = []
    missing_mp4 = 0
    changed = 0
    for split, name in CSV_FILES.items():
        path = folder / name
        for line, r in _read_csv(path):
            emo = (r.get("Emotion") or "").strip().lower()
            if emo not in MELD7.names:
                raise DataError(path, f"line {line}: emotion {r.get('Emotion')!r} is not one of "
                                      f"{', '.join(MELD7.names)}")
            d, u = (r.get("Dialogue_ID") or "").strip(), (r.get("Utterance_ID") or "").strip()
            if not (d.isdigit() and u.isdigit()):
                raise DataError(path, f"line {line}: Dialogue_ID {d!r} / Utterance_ID {u!r} are not integers")
            text = r.get("Utterance") or ""
            norm = normalize_text(text)
            changed += int(norm != " ".join(text.split()))
            mp4 = None
            if split in raw_dirs:
                p = raw_dirs[split] / f"dia{int(d)}_utt{int(u)}.mp4"
                if p.is_file():
                    mp4 = p.resolve()
                else:
                    missing_mp4 += 1
            rows.append({"id": f"{split}_dia{int(d)}_utt{int(u)}", "label": emo,
                         "speaker": (r.get("Speaker") or "").strip() or "unknown",
                         "transcript": norm, "audio": mp4, "video": mp4, "split": split})
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(folder, f"utterance {dup!r} (Dialogue_ID, Utterance_ID) appears twice in one split")
    media: tuple[str, ...] = ("audio", "video") if any(r["audio"] for r in rows) else ()
    notes = [f"MELD: {len(rows)} utterances from {folder}; official train/dev/test split; "
             f"{changed} transcript(s) had typographic or mis-encoded characters normalized."]
    if raw_dirs:
        notes.append("MELD.Raw found (" + ", ".join(f"{s}: {p}" for s, p in raw_dirs.items())
                     + f"); audio and video from each utterance's mp4; {missing_mp4} mp4(s) missing "
                     "(those utterances are skipped when audio or video is prepared).")
    else:
        notes.append("MELD.Raw not found: text only.")
    return CorpusScan(corpus="meld", rows=rows, class_names=MELD7.names, media=media, split_column="split",
                      default_folds=None, allow_shared_speakers=True, on_missing="skip", notes=notes)
