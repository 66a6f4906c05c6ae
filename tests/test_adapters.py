"""Corpus adapters on miniature trees in each corpus's naming: RAVDESS, CREMA-D, MELD."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from iemocap_tree import channel_mean_encoder
from media import speech
from selfcross.cli import main
from selfcross.errors import ConfigError, DataError
from selfcross.features.audio import AudioConfig
from selfcross.folds import read_fold
from selfcross.prepare.adapters import prepare_corpus, scan_corpus
from selfcross.prepare.adapters.meld import normalize_text
from selfcross.prepare.adapters.ravdess import parse_name
from selfcross.prepare.options import FeatureOptions, FoldOptions

SR = 16_000
FAST_AUDIO = AudioConfig(max_frames=150)


def write_av(path: Path, y: np.ndarray, vcodec: str = "mpeg4", seconds: float | None = None) -> None:
    """A small video (grey frames, 10 fps) with ``y`` as its mono 16 kHz AAC audio track."""
    import av

    seconds = seconds or len(y) / SR
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        vs = c.add_stream(vcodec, rate=10)
        vs.width, vs.height, vs.pix_fmt = 32, 24, "yuv420p"
        a = c.add_stream("aac", rate=SR)
        a.layout = "mono"
        fs = a.frame_size or 1024
        for k in range(0, len(y), fs):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[None, k : k + fs]), format="fltp",
                                            layout="mono")
            fr.sample_rate = SR
            for p in a.encode(fr):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
        for i in range(max(1, int(seconds * 10))):
            img = np.full((24, 32, 3), 60 + 10 * (i % 5), np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)


# ----------------------------------------------------------------------------- RAVDESS


@pytest.fixture(scope="module")
def ravdess(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 actors x (neutral, calm, angry) x statement 01/02 speech wavs; actor 01 also has full-AV
    mp4s (its takes of statement 02 only as mp4: audio from the mp4); a song file and a stray file."""
    root = tmp_path_factory.mktemp("ravdess")
    tmp = root / "_tmp"
    tmp.mkdir()
    for a in range(1, 5):
        for emo in ("01", "02", "05"):
            for st in ("01", "02"):
                words = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}[st]
                y = speech(words, tmp)
                take = f"01-{emo}-01-{st}-01-{a:02d}"
                if a == 1:
                    write_av(root / f"Video_Speech_Actor_01/Actor_01/01-{take}.mp4", y)
                    if st == "02":
                        continue  # no audio-only file: audio must come from the mp4
                sf.write(_mk(root, a, f"03-{take}.wav"), y, SR)
    sf.write(_mk(root, 2, "03-02-03-01-01-01-02.wav"), speech("la la", tmp), SR)  # song channel
    (root / "Actor_02" / "notes.wav").write_bytes(b"not ravdess")
    shutil.rmtree(tmp)
    return root


def _mk(root: Path, actor: int, name: str) -> Path:
    d = root / f"Actor_{actor:02d}"
    d.mkdir(parents=True, exist_ok=True)
    return d / name


def test_ravdess_names() -> None:
    info = parse_name("03-01-05-02-01-01-12")
    assert info is not None and info["emotion"] == "angry" and info["actor"] == "Actor_12"
    assert info["take"] == "01-05-02-01-01-12" and info["modality"] == "audio"
    assert parse_name("notes") is None
    with pytest.raises(DataError, match="bad emotion"):
        parse_name("03-01-09-01-01-01-01")


def test_ravdess_scan(ravdess: Path) -> None:
    scan = scan_corpus("ravdess", ravdess)
    rows = {r["id"]: r for r in scan.rows}
    assert len(rows) == 24 and scan.class_names[1] == "calm" and scan.media == ("audio", "video")
    r = rows["01-05-01-01-01-01"]  # actor 1, statement 01: audio-only wav preferred over the mp4
    assert r["label"] == "angry" and r["speaker"] == "Actor_01" and r["audio"].suffix == ".wav"
    assert r["video"].suffix == ".mp4" and r["transcript"] == "Kids are talking by the door"
    r = rows["01-05-01-02-01-01"]  # statement 02: only the mp4
    assert r["audio"] == r["video"] and r["audio"].suffix == ".mp4"
    assert rows["01-01-01-02-01-03"]["video"] is None
    assert any("other vocal channel" in n for n in scan.notes)
    merged = scan_corpus("ravdess", ravdess, merge_calm=True)
    assert "calm" not in merged.class_names and {r["label"] for r in merged.rows} == {"neutral", "angry"}


def test_ravdess_prepare_audio_from_wav_and_mp4(ravdess: Path, tmp_path: Path) -> None:
    res = prepare_corpus("ravdess", ravdess, tmp_path / "root",
                         FeatureOptions(audio_config=FAST_AUDIO, progress=False),
                         folds=FoldOptions(n_folds=2), modalities="a")
    assert len(res.kept) == 24 and not res.skipped
    fold = read_fold(tmp_path / "root" / "fold01")
    assert fold.class_names == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert fold.modalities == ("audio",)
    test_actors = {i.split("-")[-1] for i in fold.test.ids}
    assert len(test_actors) == 2 and not test_actors & {i.split("-")[-1] for i in fold.train.ids}
    # audio of an mp4-only take is real speech: valid frames ~ its duration, not empty
    ids = fold.train.ids + fold.dev.ids + fold.test.ids
    assert "01-05-01-02-01-01" in ids
    assert (tmp_path / "root" / "manifest.csv").read_text().startswith("id,label,speaker,audio\n")


def test_ravdess_video_needs_mp4_for_every_take(ravdess: Path, tmp_path: Path) -> None:
    """Video for all takes: actors 2-4 have no mp4, so the manifest stops on the missing video."""
    with pytest.raises(DataError, match="no video file given"):
        prepare_corpus("ravdess", ravdess, tmp_path / "root",
                       FeatureOptions(video_encoder=channel_mean_encoder(), audio_config=FAST_AUDIO,
                                      progress=False),
                       folds=FoldOptions(n_folds=2), modalities="av")


# ----------------------------------------------------------------------------- CREMA-D


@pytest.fixture(scope="module")
def cremad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 actors x 2 sentences x 3 emotions: AudioWAV wavs and VideoFlash flvs (one flv missing)."""
    root = tmp_path_factory.mktemp("cremad")
    tmp = root / "_tmp"
    tmp.mkdir()
    (root / "AudioWAV").mkdir()
    for actor in ("1001", "1002", "1003"):
        for sent, words in (("DFA", "Don't forget a jacket"), ("TSI", "The surface is slick")):
            for emo, level in (("ANG", "HI"), ("NEU", "XX"), ("SAD", "LO")):
                name = f"{actor}_{sent}_{emo}_{level}"
                y = speech(words, tmp)
                sf.write(root / "AudioWAV" / f"{name}.wav", y, SR)
                if name != "1003_TSI_SAD_LO":
                    write_av(root / "VideoFlash" / f"{name}.flv", y, vcodec="flv")
    shutil.rmtree(tmp)
    return root


def test_cremad_scan_and_prepare(cremad: Path, tmp_path: Path) -> None:
    scan = scan_corpus("crema-d", cremad)
    rows = {r["id"]: r for r in scan.rows}
    assert len(rows) == 18 and scan.media == ("audio", "video")
    assert rows["1002_DFA_ANG_HI"]["transcript"] == "Don't forget a jacket"
    assert rows["1002_DFA_ANG_HI"]["label"] == "angry" and rows["1002_DFA_ANG_HI"]["speaker"] == "1002"
    res = prepare_corpus("crema-d", cremad, tmp_path / "root",
                         FeatureOptions(video_encoder=channel_mean_encoder(), audio_config=FAST_AUDIO,
                                        progress=False),
                         folds=FoldOptions(n_folds=3), modalities="av")
    assert [s.id for s in res.skipped] == ["1003_TSI_SAD_LO"]  # its flv is missing
    fold = read_fold(tmp_path / "root" / "fold01")
    assert fold.class_names == ("angry", "disgust", "fear", "happy", "neutral", "sad")
    assert fold.modalities == ("audio", "video") and fold.shapes["video"][1] == 3
    assert len({i[:4] for i in fold.test.ids}) == 1  # one actor per test fold (3 actors, 3 folds)


def test_cremad_bad_codes(tmp_path: Path) -> None:
    (tmp_path / "AudioWAV").mkdir()
    sf.write(tmp_path / "AudioWAV" / "1001_XYZ_ANG_HI.wav", np.zeros(1600, np.float32), SR)
    with pytest.raises(DataError, match=r"1001_XYZ_ANG_HI.wav: not a valid CREMA-D name: unknown sentence"):
        scan_corpus("crema-d", tmp_path)
    with pytest.raises(DataError, match="no CREMA-D clip"):
        scan_corpus("crema-d", tmp_path / "AudioWAV")


# ----------------------------------------------------------------------------- MELD

MELD_HEADER = ("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
               "StartTime,EndTime\n")
MELD_ROWS = {
    "train": [("I\u2019m so happy for you!", "Monica", "joy"), ("Oh my God\u2026", "Rachel", "surprise"),
              ("Get out.", "Ross", "anger"), ("Iâ€™m fine.", "Chandler", "neutral"),
              ("That\u2019s terrible.", "Joey", "sadness"), ("Okay.", "Monica", "neutral")],
    "dev": [("What\u2019s up?", "Ross", "neutral"), ("No way!", "Rachel", "surprise")],
    "test": [("I love it!", "Monica", "joy"), ("Don\x92t.", "Joey", "anger")],
}


@pytest.fixture(scope="module")
def meld(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny MELD CSVs (typographic and mis-encoded apostrophes) + MELD.Raw mp4s (one missing)."""
    root = tmp_path_factory.mktemp("meld")
    tmp = root / "_tmp"
    tmp.mkdir()
    raw = {"train": "train/train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
    for split, rows in MELD_ROWS.items():
        lines = [MELD_HEADER]
        for u, (text, spk, emo) in enumerate(rows):
            d = u // 3
            times = '"00:00:01,000","00:00:02,000"'
            lines.append(f'{u + 1},"{text}",{spk},{emo},neutral,{d},{u % 3},1,1,{times}\n')
            if (split, u) != ("train", 5):
                write_av(root / "MELD.Raw" / raw[split] / f"dia{d}_utt{u % 3}.mp4", speech(text, tmp))
        (root / f"{split}_sent_emo.csv").write_text("".join(lines), encoding="utf-8")
    shutil.rmtree(tmp)
    return root


def test_normalize_text() -> None:
    assert normalize_text("I\u2019m \u201cfine\u201d\u2026") == "I'm \"fine\"..."
    assert normalize_text("Iâ€™m here") == "I'm here"  # UTF-8 read as cp1252
    assert normalize_text("Don\x92t  go") == "Don't go"
    assert normalize_text("Paul\u2019s Café") == "Paul's Café"
    assert normalize_text("wait \u2014 what") == "wait - what"


def test_meld_scan(meld: Path) -> None:
    scan = scan_corpus("meld", meld)
    rows = {r["id"]: r for r in scan.rows}
    assert len(rows) == 10 and scan.split_column == "split" and scan.media == ("audio", "video")
    assert rows["train_dia1_utt0"]["transcript"] == "I'm fine."
    assert rows["test_dia0_utt1"]["transcript"] == "Don't."
    assert rows["train_dia1_utt2"]["audio"] is None  # its mp4 is missing
    assert rows["dev_dia0_utt1"]["split"] == "dev" and rows["dev_dia0_utt1"]["label"] == "surprise"


def test_meld_text_only_and_with_raw(meld: Path, tmp_path: Path) -> None:
    glove = tmp_path / "glove.txt"
    words = "i 'm so happy for you oh my god fine okay no way love it".split()
    glove.write_text("".join(f"{w} " + " ".join(["0.1"] * 6) + "\n" for w in words))
    res = prepare_corpus("meld", meld, tmp_path / "text", FeatureOptions(glove=glove, progress=False),
                         modalities="t")
    assert len(res.kept) == 10 and "NOT speaker independent" in res.report.read_text()
    fold = read_fold(tmp_path / "text" / "fold01")
    assert fold.modalities == ("text",) and (len(fold.train), len(fold.dev), len(fold.test)) == (6, 2, 2)
    assert fold.class_names == ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
    vocab = (tmp_path / "text" / "vocab.txt").read_text().split()
    assert "'m" in vocab and not any("\u2019" in w or "â" in w for w in vocab)
    res = prepare_corpus("meld", meld, tmp_path / "atv",
                         FeatureOptions(glove=glove, video_encoder=channel_mean_encoder(),
                                        audio_config=FAST_AUDIO, progress=False))
    assert [s.id for s in res.skipped] == ["train_dia1_utt2"]
    fold = read_fold(tmp_path / "atv" / "fold01")
    assert fold.modalities == ("audio", "video", "text") and len(fold.train) == 5


def test_meld_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="MELD CSVs not found"):
        scan_corpus("meld", tmp_path)
    for split in ("train", "dev", "test"):
        row = '1,"Hi.",Ross,happiness,neutral,0,0,1,1,a,b\n'
        (tmp_path / f"{split}_sent_emo.csv").write_text(MELD_HEADER + row)
    with pytest.raises(DataError, match=r"train_sent_emo.csv: line 2: emotion 'happiness'"):
        scan_corpus("meld", tmp_path)
    for split in ("train", "dev", "test"):
        row = '1,"Hi.",Ross,joy,neutral,0,0,1,1,a,b\n'
        (tmp_path / f"{split}_sent_emo.csv").write_text(MELD_HEADER + row)
    with pytest.raises(ConfigError, match="nothing to prepare"):
        prepare_corpus("meld", tmp_path, tmp_path / "out")


def test_cli_prepare_manifest_only_and_option_checks(ravdess: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "ravdess", str(ravdess), str(tmp_path / "r"), "--manifest-only",
                 "--merge-calm", "--video-encoder", "none"]) == 0
    text = (tmp_path / "r" / "manifest.csv").read_text()
    assert text.startswith("id,label,speaker,audio\n") and ",calm," not in text
    assert main(["prepare", "crema-d", str(ravdess), str(tmp_path / "c"), "--merge-calm"]) == 2
    assert "--merge-calm and --channel apply to ravdess only" in capsys.readouterr().err
