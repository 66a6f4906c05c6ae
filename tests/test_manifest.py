"""Manifest preparation: validation errors, documented handling, folds, data roots read back."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from selfcross.cli import main
from selfcross.errors import ConfigError, DataError
from selfcross.features.audio import AudioConfig, AudioFeatures
from selfcross.folds import read_fold
from selfcross.prepare.manifest import plan_stratified_group_folds, prepare_manifest, read_manifest
from selfcross.prepare.options import FeatureOptions, FoldOptions
from selfcross.prepare.pipeline import UtteranceRecord

SR = 16_000
FAST_AUDIO = AudioConfig(max_frames=150)


def tone(seconds: float, sr: int = SR, f0: float = 180.0, seed: int = 0) -> np.ndarray:
    """Harmonic tone with a syllable-rate envelope (speech-like MFCCs, no espeak needed)."""
    t = np.arange(int(sr * seconds)) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 5))
    env = 0.5 * (1 - np.cos(2 * np.pi * 3.0 * t))
    noise = 0.003 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.2 * x * env + noise).astype(np.float32)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """6 speakers x 4 clips (2 labels), wavs under clips/ (relative paths in the manifest)."""
    (tmp_path / "clips").mkdir()
    rows = []
    for s in range(6):
        for i in range(4):
            utt = f"s{s}_u{i}"
            label = ("happy", "sad")[i % 2]
            sf.write(tmp_path / "clips" / f"{utt}.wav", tone(0.6, f0=150 + 40 * (i % 2), seed=s * 10 + i), SR)
            split = "train" if s < 4 else ("dev" if s == 4 else "test")
            rows.append([utt, label, f"spk{s}", f"clips/{utt}.wav", f"I feel {label} today", split])
    write_csv(tmp_path / "manifest.csv", ["id", "label", "speaker", "audio", "transcript", "split"], rows)
    glove = tmp_path / "glove.txt"
    vec = np.random.default_rng(0).standard_normal((5, 8)).round(3)
    glove.write_text("".join(w + " " + " ".join(map(str, v)) + "\n"
                             for w, v in zip(["i", "feel", "happy", "sad", "today"], vec)))
    return tmp_path


# ----------------------------------------------------------------------------- validation


def test_missing_file_names_line_and_file(corpus: Path) -> None:
    (corpus / "clips" / "s2_u1.wav").unlink()
    with pytest.raises(DataError) as e:
        read_manifest(corpus / "manifest.csv")
    msg = str(e.value)
    assert "manifest.csv" in msg and "line 11" in msg and "s2_u1.wav" in msg and "does not exist" in msg


def test_missing_file_skipped_on_request_and_reported(corpus: Path) -> None:
    (corpus / "clips" / "s2_u1.wav").unlink()
    man = read_manifest(corpus / "manifest.csv", on_missing="skip")
    assert [s.id for s in man.skipped] == ["s2_u1"] and "line 11" in man.skipped[0].detail
    assert "s2_u1" not in {r.id for r in man.records} and len(man.records) == 23


def test_unknown_label(corpus: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: utterance 's0_u0' has label 'happy', not one of sad, an"):
        read_manifest(corpus / "manifest.csv", class_names="sad,angry")


def test_labels_default_sorted_and_class_set_key(corpus: Path) -> None:
    assert read_manifest(corpus / "manifest.csv").class_names == ("happy", "sad")
    names = read_manifest(corpus / "manifest.csv", class_names="cremad6").class_names
    assert names[3:] == ("happy", "neutral", "sad")
    with pytest.raises(DataError, match="label 'happy', not one of neutral, joy"):
        read_manifest(corpus / "manifest.csv", class_names="meld7")


def test_duplicate_id(corpus: Path) -> None:
    lines = (corpus / "manifest.csv").read_text().splitlines()
    (corpus / "manifest.csv").write_text("\n".join([*lines, lines[3]]) + "\n")
    with pytest.raises(DataError, match=r"line 26: duplicate id 's0_u2' \(first on line 4\)"):
        read_manifest(corpus / "manifest.csv")


def test_missing_columns_and_bad_split(corpus: Path) -> None:
    write_csv(corpus / "bad.csv", ["utt", "label"], [["a", "happy"]])
    with pytest.raises(DataError, match=r"line 1: missing column\(s\) id"):
        read_manifest(corpus / "bad.csv")
    write_csv(corpus / "bad2.csv", ["id", "label", "split"], [["a", "happy", "holdout"]])
    with pytest.raises(DataError, match=r"line 2: .*split 'holdout'"):
        read_manifest(corpus / "bad2.csv", split_column="split")
    with pytest.raises(DataError, match="line 1: missing column"):
        read_manifest(corpus / "manifest.csv", split_column="fold")


def test_speaker_in_two_splits(corpus: Path) -> None:
    rows = list(csv.reader(open(corpus / "manifest.csv")))
    rows[5][5] = "test"  # s1_u0 (speaker spk1, otherwise train) moved to test
    write_csv(corpus / "m2.csv", rows[0], rows[1:])
    msg = r"line 7: speaker 'spk1' is in split 'train' .* and in split 'test' \(line 6"
    with pytest.raises(DataError, match=msg):
        read_manifest(corpus / "m2.csv", split_column="split")
    man = read_manifest(corpus / "m2.csv", split_column="split", allow_shared_speakers=True)
    assert any("NOT speaker independent: 1 of 6 speakers" in n for n in man.notes)


def test_relative_paths_resolved_against_manifest_folder(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(corpus.parent)  # not the manifest's folder
    man = read_manifest(corpus / "manifest.csv")
    assert man.records[0].audio == corpus / "clips" / "s0_u0.wav"
    assert man.modalities == ("audio", "text")


def test_mixed_rates_and_stereo_are_resampled_and_mixed_down(tmp_path: Path) -> None:
    """Documented handling: no error; a 44.1 kHz stereo copy gives the 16 kHz mono features."""
    y16 = tone(1.0, SR, seed=3)
    import librosa

    y44 = librosa.resample(y16, orig_sr=SR, target_sr=44_100, res_type="soxr_hq")
    sf.write(tmp_path / "mono16.wav", y16, SR)
    sf.write(tmp_path / "stereo44.wav", np.stack([y44, y44], axis=1), 44_100)
    sf.write(tmp_path / "mono8.wav", librosa.resample(y16, orig_sr=SR, target_sr=8000), 8000)
    write_csv(tmp_path / "m.csv", ["id", "label", "speaker", "audio"],
              [["a", "x", "p", "mono16.wav"], ["b", "x", "q", "stereo44.wav"], ["c", "y", "r", "mono8.wav"],
               ["d", "y", "p", "mono16.wav"], ["e", "x", "q", "mono8.wav"], ["f", "y", "r", "stereo44.wav"]])
    man = read_manifest(tmp_path / "m.csv")
    note = next(n for n in man.notes if n.startswith("Audio files found"))
    assert "8000 Hz: 2" in note and "16000 Hz: 2" in note and "44100 Hz: 2" in note
    assert "2 channel(s): 2" in note
    ex = AudioFeatures(FAST_AUDIO)
    a, na = ex.extract(tmp_path / "mono16.wav")
    b, nb = ex.extract(tmp_path / "stereo44.wav")
    assert na == nb
    assert np.abs(a[:na, :40] - b[:nb, :40]).mean() < 0.05 * np.abs(a[:na, :40]).mean()
    res = prepare_manifest(tmp_path / "m.csv", tmp_path / "out",
                           FeatureOptions(audio_config=FAST_AUDIO, progress=False),
                           folds=FoldOptions(n_folds=3))
    assert len(res.kept) == 6 and "Audio files found" in res.report.read_text()


# ----------------------------------------------------------------------------- folds


def _records(n_spk: int, per: int, n_labels: int) -> list[UtteranceRecord]:
    return [UtteranceRecord(f"s{s}_{i}", f"c{(s + i) % n_labels}", f"s{s}", f"s{s}")
            for s in range(n_spk) for i in range(per)]


@settings(max_examples=25, deadline=None)
@given(n_spk=st.integers(4, 14), per=st.integers(2, 6), n_labels=st.integers(2, 4), k=st.integers(2, 4),
       seed=st.integers(0, 3))
def test_grouped_folds_are_speaker_independent(
    n_spk: int, per: int, n_labels: int, k: int, seed: int
) -> None:
    recs = _records(n_spk, per, n_labels)
    spk = {r.id: r.speaker for r in recs}
    if n_spk < k:
        with pytest.raises(DataError, match="cannot make"):
            plan_stratified_group_folds(recs, k, seed=seed)
        return
    plans = plan_stratified_group_folds(recs, k, dev_fraction=0.2, seed=seed)
    assert len(plans) == k
    tested = Counter(i for p in plans for i in p.test)
    assert set(tested) == {r.id for r in recs} and set(tested.values()) == {1}  # each utterance tested once
    for p in plans:
        parts = [{spk[i] for i in ids} for ids in (p.train, p.dev, p.test)]
        assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert sorted(p.train + p.dev + p.test) == sorted(spk)
        assert set(p.dev_speakers) == parts[1] and set(p.test_groups) == parts[2]


def test_grouped_folds_are_stratified() -> None:
    recs = _records(24, 10, 2)  # every speaker half c0, half c1
    for p in plan_stratified_group_folds(recs, 6):
        labels = Counter(r.label for r in recs if r.id in set(p.test))
        assert labels["c0"] == labels["c1"]


# ----------------------------------------------------------------------------- end to end


def test_official_split_data_root_read_back(corpus: Path) -> None:
    res = prepare_manifest(corpus / "manifest.csv", corpus / "root",
                           FeatureOptions(glove=corpus / "glove.txt", audio_config=FAST_AUDIO,
                                          progress=False),
                           folds=FoldOptions(split_column="split"))
    assert len(res.folds) == 1 and not (corpus / "root" / "fold02").exists()
    fold = read_fold(corpus / "root" / "fold01")
    assert fold.class_names == ("happy", "sad") and fold.modalities == ("audio", "text")
    assert (len(fold.train), len(fold.dev), len(fold.test)) == (16, 4, 4)
    assert fold.test.ids == [f"s5_u{i}" for i in range(4)]
    assert list(fold.test.labels) == [0, 1, 0, 1]
    assert fold.shapes["audio"] == (150, 120) and fold.shapes["text"][1] == 8
    report = res.report.read_text()
    assert "no speaker is in two splits" in report and "official split" in report


def test_grouped_folds_audio_only_and_absent_modalities(corpus: Path) -> None:
    res = prepare_manifest(corpus / "manifest.csv", corpus / "root",
                           FeatureOptions(audio_config=FAST_AUDIO, progress=False),
                           folds=FoldOptions(n_folds=3), modalities="a")
    assert len(res.folds) == 3
    for k in (1, 2, 3):
        fold = read_fold(corpus / "root" / f"fold0{k}")
        assert fold.modalities == ("audio",)
        spk = [{i.split("_")[0] for i in s.ids} for s in (fold.train, fold.dev, fold.test)]
        assert not (spk[0] & spk[2] or spk[1] & spk[2] or spk[0] & spk[1])
    assert not list((corpus / "root" / "fold01").glob("*text*"))
    assert not (corpus / "root" / "vocab.txt").exists()


def test_text_needs_glove_and_options_conflict(corpus: Path) -> None:
    with pytest.raises(ConfigError, match="--glove"):
        prepare_manifest(corpus / "manifest.csv", corpus / "root", FeatureOptions(progress=False))
    with pytest.raises(ConfigError, match="not both"):
        prepare_manifest(corpus / "manifest.csv", corpus / "root",
                         folds=FoldOptions(n_folds=2, split_column="split"))
    with pytest.raises(ConfigError, match="no video column"):
        prepare_manifest(corpus / "manifest.csv", corpus / "root", FeatureOptions(progress=False),
                         modalities="av")


def test_cli_prepare_manifest(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (corpus / "clips" / "s3_u2.wav").unlink()
    rc = main(["prepare-manifest", str(corpus / "manifest.csv"), str(corpus / "root"), "--folds", "2",
               "--modalities", "a", "--no-progress", "--max-audio-frames", "150"])
    err = capsys.readouterr().err
    assert rc == 2 and "line 16" in err and "s3_u2.wav" in err
    rc = main(["prepare-manifest", str(corpus / "manifest.csv"), str(corpus / "root"), "--folds", "2",
               "--modalities", "a", "--no-progress", "--max-audio-frames", "150", "--skip-missing"])
    assert rc == 0 and "23 utterances" in capsys.readouterr().out
    assert "media file missing" in (corpus / "root" / "prepare_report.md").read_text()


def _punctuated_manifest(corpus: Path) -> Path:
    rows = [[f"s{s}_u{i}", ("happy", "sad")[i % 2], f"spk{s}", ("I feel happy today!", "sad? today")[i % 2],
             "train" if s < 4 else ("dev" if s == 4 else "test")] for s in range(6) for i in range(4)]
    return write_csv(corpus / "text.csv", ["id", "label", "speaker", "transcript", "split"], rows)


def test_cli_text_options_reach_vocab_features_json_and_ids(corpus: Path) -> None:
    from selfcross.features import load_feature_configs

    manifest = _punctuated_manifest(corpus)
    common = [str(manifest), "--split-column", "split", "--glove", str(corpus / "glove.txt"), "--no-progress"]
    assert main(["prepare-manifest", common[0], str(corpus / "plain"), *common[1:]]) == 0
    assert main(["prepare-manifest", common[0], str(corpus / "punct"), *common[1:],
                 "--keep-punctuation", "--max-tokens", "6"]) == 0
    plain = (corpus / "plain" / "vocab.txt").read_text().split("\n")
    punct = (corpus / "punct" / "vocab.txt").read_text().split("\n")
    assert "!" not in plain and "?" not in plain
    assert "!" in punct and "?" in punct
    text = load_feature_configs(corpus / "punct")["text"]
    assert text.keep_punctuation is True and text.max_tokens == 6
    assert load_feature_configs(corpus / "plain")["text"].max_tokens == 128
    ids = np.load(corpus / "punct" / "fold01" / "train_nlp_trans.npy")
    assert ids.shape == (16, 6)
    assert punct.index("!") in ids[0].tolist()


def test_cli_text_options_refused_with_clear_errors(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _punctuated_manifest(corpus)
    base = ["prepare-manifest", str(manifest), str(corpus / "root"), "--split-column", "split",
            "--no-progress"]
    assert main([*base, "--glove", str(corpus / "glove.txt"), "--max-tokens", "0"]) == 2
    assert "--max-tokens must be at least 1" in capsys.readouterr().err
    assert main([*base, "--text-encoder", "hf:/nowhere", "--keep-punctuation"]) == 2
    err = capsys.readouterr().err
    assert "not a --text-encoder" in err and "Traceback" not in err


@pytest.mark.slow
def test_predict_tokenizes_as_the_kept_punctuation_root_did(corpus: Path) -> None:
    """A run trained on a ``--keep-punctuation`` root encodes a new transcript with its ``?``."""
    from selfcross.serve.predict import Clip, Predictor

    manifest = _punctuated_manifest(corpus)
    assert main(["prepare-manifest", str(manifest), str(corpus / "punct"), "--split-column", "split",
                 "--glove", str(corpus / "glove.txt"), "--no-progress", "--keep-punctuation",
                 "--max-tokens", "6"]) == 0
    assert main(["train", "--data", str(corpus / "punct" / "fold01"), "--model", "self", "--modalities", "t",
                 "--max-epochs", "1", "--out", str(corpus / "run"), "--no-progress"]) == 0
    predictor = Predictor(corpus / "run")
    vocab = (corpus / "punct" / "vocab.txt").read_text().split("\n")
    emb = np.load(corpus / "punct" / "fold01" / "W_embedding.npy")
    inputs, lengths = predictor.features(Clip(transcript="sad? today"))
    assert lengths["text"].tolist() == [3] and inputs["text"].shape == (1, 6, emb.shape[1])
    np.testing.assert_array_equal(inputs["text"][0, :3], emb[[vocab.index(w) for w in ("sad", "?", "today")]])
