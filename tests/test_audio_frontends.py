"""Audio front-ends: openSMILE eGeMAPS/ComParE descriptors, log-mel, and the paper's MFCC default."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from selfcross.cli import main
from selfcross.config import ModelConfig, RunConfig, TrainConfig, apply_preset
from selfcross.errors import ConfigError
from selfcross.features import AudioConfig, AudioFeatures, load_feature_configs
from selfcross.folds.reader import read_fold
from selfcross.prepare.manifest import prepare_manifest
from selfcross.prepare.options import FeatureOptions, FoldOptions

pytest.importorskip("opensmile")

SR = 16_000
SENTENCES = ("Kids are talking by the door", "Dogs are sitting by the door",
             "I can not believe it happened again", "Please close the window now")


def speech(text: str, tmp: Path, f0: float = 150.0) -> np.ndarray:
    """espeak-ng speech when installed, else harmonics of a gliding pitch with a syllable envelope."""
    exe = shutil.which("espeak-ng")
    if exe is not None:
        out = tmp / "say.wav"
        subprocess.run([exe, "-s", "200", "-p", str(int(f0) % 99), "-w", str(out), text],
                       check=True, capture_output=True)
        y, sr = sf.read(out, dtype="float32")
        if sr != SR:
            import librosa

            y = librosa.resample(y, orig_sr=sr, target_sr=SR)
        return y.astype(np.float32)
    t = np.arange(int(SR * (0.3 + 0.05 * len(text)))) / SR
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.8 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 10)) * (0.3 + 0.7 * np.sin(2 * np.pi * 3.5 * t) ** 2)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 speakers x 4 clips (2 labels), a manifest with a speaker column."""
    root = tmp_path_factory.mktemp("frontends")
    (root / "clips").mkdir()
    rows = []
    for s in range(4):
        for i, text in enumerate(SENTENCES):
            utt = f"s{s}_u{i}"
            y = speech(text, root, f0=110 + 30 * s + 10 * (i % 2))
            sf.write(root / "clips" / f"{utt}.wav", y, SR)
            rows.append([utt, ("happy", "sad")[i % 2], f"spk{s}", f"clips/{utt}.wav"])
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", "speaker", "audio"])
        w.writerows(rows)
    return root


@pytest.mark.parametrize("features, width", [("egemaps", 25), ("compare", 130)])
def test_opensmile_frames_shape_names_and_rate(corpus: Path, features: str, width: int) -> None:
    y, _ = sf.read(corpus / "clips" / "s0_u0.wav", dtype="float32")
    ex = AudioFeatures(AudioConfig.for_features(features, max_frames=400))
    x, n = ex.extract(corpus / "clips" / "s0_u0.wav")
    assert x.shape == (400, width) and x.dtype == np.float32 and ex.config.feat_dim == width
    assert abs(n - len(y) / SR * 100) <= 8  # 10 ms frames: ~100 per second of speech
    assert np.all(x[n:] == 0) and np.all(np.isfinite(x)) and np.any(x[:n] != 0)
    names = ex.config.descriptors
    assert len(names) == width and len(set(names)) == width
    if features == "egemaps":
        assert {"Loudness_sma3", "F0semitoneFrom27.5Hz_sma3nz", "HNRdBACF_sma3nz"} <= set(names)
    else:  # 65 descriptors, then the same 65 as openSMILE's deltas
        assert "F0final_sma" in names and "audspec_lengthL1norm_sma" in names
        # openSMILE names a delta by inserting _de before any [band] index
        assert names[65:] == tuple(d.replace("_sma", "_sma_de", 1) for d in names[:65])


def test_opensmile_clip_is_cut_at_max_frames(corpus: Path) -> None:
    full, n_full = AudioFeatures(AudioConfig.for_features("egemaps", max_frames=1000)).extract(
        corpus / "clips" / "s1_u2.wav")
    cut, n_cut = AudioFeatures(AudioConfig.for_features("egemaps", max_frames=50)).extract(
        corpus / "clips" / "s1_u2.wav")
    assert n_full > 50 and n_cut == 50
    np.testing.assert_allclose(cut, full[:50], rtol=1e-5, atol=1e-5)


def test_logmel_is_log_mel_energy(corpus: Path) -> None:
    import librosa

    y, _ = sf.read(corpus / "clips" / "s2_u1.wav", dtype="float32")
    cfg = AudioConfig.for_features("logmel", max_frames=600)
    x, n = AudioFeatures(cfg).extract((y, SR))
    assert x.shape == (600, 64) and n == 1 + len(y) // 160
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, win_length=400, hop_length=160, n_mels=64)
    np.testing.assert_allclose(x[:n], 10 * np.log10(np.maximum(mel, 1e-10)).T, rtol=1e-4, atol=1e-3)


def test_mfcc_stays_the_default() -> None:
    cfg = AudioConfig()
    assert cfg == AudioConfig.for_features("mfcc") and cfg.features == "mfcc" and cfg.feat_dim == 120
    assert AudioFeatures(cfg).config.descriptors == ()


def test_bad_front_end_settings() -> None:
    with pytest.raises(ConfigError, match="unknown audio features"):
        AudioConfig(features="wav2vec")
    with pytest.raises(ConfigError, match="no deltas"):
        AudioConfig(features="egemaps", deltas=1)
    with pytest.raises(ConfigError, match="first-order"):
        AudioConfig(features="compare", deltas=2)


def test_cli_compare_without_opensmile_names_the_extra(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "opensmile", None)  # import opensmile -> ImportError
    rc = main(["prepare-manifest", str(corpus / "manifest.csv"), str(tmp_path / "root"), "--folds", "2",
               "--modalities", "a", "--no-progress", "--audio-features", "compare"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "pip install 'selfcross[opensmile]'" in err and "Traceback" not in err
    assert not (tmp_path / "root" / "fold01").exists()


@pytest.fixture(scope="module")
def egemaps_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An eGeMAPS data root prepared through the CLI and a 2-epoch improved run on its fold01."""
    from selfcross.training import train_run

    base = tmp_path_factory.mktemp("egemaps_run")
    rc = main(["prepare-manifest", str(corpus / "manifest.csv"), str(base / "data"), "--folds", "2",
               "--modalities", "a", "--no-progress", "--audio-features", "egemaps",
               "--max-audio-frames", "300"])
    assert rc == 0
    config = RunConfig(model=ModelConfig(kind="self", modalities=("audio",)),
                       train=TrainConfig(batch_size=8, device="cpu", num_threads=1))
    apply_preset(config, "improved")
    config.train.max_epochs = 2  # after the preset, which sets its own budget
    config.train.standardize = True
    train_run(config, base / "data" / "fold01", base / "run", progress=False)
    return base / "data", base / "run"


@pytest.mark.slow
def test_egemaps_root_trains_with_its_own_width(egemaps_run: tuple[Path, Path]) -> None:
    data, run = egemaps_run
    fold = read_fold(data / "fold01")
    x, _ = fold.train.get_batch(np.arange(len(fold.train)), ("audio",))
    assert x["audio"].shape[1:] == (300, 25)
    saved = json.loads((data / "features.json").read_text())["audio"]
    assert saved["features"] == "egemaps" and len(saved["descriptors"]) == 25
    shapes = json.loads((run / "config.json").read_text())["model"]["shapes"]["audio"]
    assert shapes["feat_dim"] == 25 and shapes["seq_len"] == 300


@pytest.mark.slow
def test_predict_raw_clip_equals_prepared_egemaps_arrays(
    corpus: Path, egemaps_run: tuple[Path, Path]
) -> None:
    from selfcross.serve.predict import Clip, Predictor
    from selfcross.training import load_run

    data, run = egemaps_run
    predictor = Predictor(run)
    assert load_feature_configs(run / "features")["audio"] == load_feature_configs(data)["audio"]
    split = read_fold(data / "fold01").test
    model, _, standardizer = load_run(run)
    x, lengths = split.get_batch(np.arange(len(split)), ("audio",))
    with torch.inference_mode():
        ref = model(audio=torch.from_numpy(standardizer.transform(x, lengths)["audio"]),
                    lengths={"audio": torch.from_numpy(np.asarray(lengths["audio"], np.int64))})
    for row, utt in enumerate(split.ids):
        inputs, lens = predictor.features(Clip(audio=corpus / "clips" / f"{utt}.wav"))
        np.testing.assert_array_equal(inputs["audio"][0], x["audio"][row])
        assert int(lens["audio"][0]) == int(lengths["audio"][row])
        np.testing.assert_allclose(predictor.logits(inputs, lens)[0], ref[row].double().numpy(),
                                   rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- speaker normalisation

FAST = AudioConfig(max_frames=300)


def _write_manifest(path: Path, rows: list[list[str]], header: list[str]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _frames_by_id(root: Path) -> dict[str, np.ndarray]:
    """Valid audio frames of every utterance of fold01 (all splits), by id."""
    fold = read_fold(root / "fold01")
    out = {}
    for split in (fold.train, fold.dev, fold.test):
        x, lengths = split.get_batch(np.arange(len(split)), ("audio",))
        for row, utt in enumerate(split.ids):
            out[utt] = x["audio"][row, : lengths["audio"][row]]
    return out


@pytest.fixture(scope="module")
def spk_root(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spk") / "root"
    prepare_manifest(corpus / "manifest.csv", root,
                     FeatureOptions(audio_config=FAST, progress=False, speaker_norm=True),
                     folds=FoldOptions(n_folds=2), modalities="a")
    return root


def test_speaker_norm_gives_each_speaker_zero_mean_unit_std(spk_root: Path) -> None:
    frames = _frames_by_id(spk_root)
    assert len(frames) == 16
    for s in range(4):
        x = np.concatenate([f for utt, f in frames.items() if utt.startswith(f"s{s}_")]).astype(np.float64)
        np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-3)
    assert load_feature_configs(spk_root)["audio"].speaker_norm is True


def test_speaker_stats_saved_for_root_and_each_folds_training_speakers(spk_root: Path) -> None:
    from selfcross.features.speakernorm import SPEAKER_STATS, SpeakerStats

    everyone = SpeakerStats.load(spk_root / SPEAKER_STATS)
    assert sorted(everyone.speakers) == ["spk0", "spk1", "spk2", "spk3"]
    assert everyone.mean.shape == (4, 120)
    fold = read_fold(spk_root / "fold01")
    train_speakers = {f"spk{utt[1]}" for utt in fold.train.ids}
    assert set(SpeakerStats.load(spk_root / "fold01" / SPEAKER_STATS).speakers) == train_speakers
    assert len(train_speakers) < 4


def test_speaker_norm_uses_no_labels(corpus: Path, spk_root: Path, tmp_path: Path) -> None:
    with open(corpus / "manifest.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    labels = [r[1] for r in rows]
    permuted = np.random.default_rng(3).permutation(labels)
    assert list(permuted) != labels
    for r, lab in zip(rows, permuted):
        r[1] = str(lab)
        r[3] = str(corpus / r[3])
    man = _write_manifest(tmp_path / "permuted.csv", rows, header)
    prepare_manifest(man, tmp_path / "root",
                     FeatureOptions(audio_config=FAST, progress=False, speaker_norm=True),
                     folds=FoldOptions(n_folds=2), modalities="a")
    a, b = _frames_by_id(spk_root), _frames_by_id(tmp_path / "root")
    assert sorted(a) == sorted(b)
    for utt in a:
        np.testing.assert_array_equal(a[utt], b[utt], err_msg=utt)


def test_cli_speaker_norm_without_speaker_column_names_it(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [[f"u{i}", "happy", str(corpus / "clips" / f"s0_u{i}.wav")] for i in range(4)]
    man = _write_manifest(tmp_path / "nospk.csv", rows, ["id", "label", "audio"])
    rc = main(["prepare-manifest", str(man), str(tmp_path / "root"), "--folds", "2", "--modalities", "a",
               "--no-progress", "--speaker-norm"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "nospk.csv" in err and "'speaker' column" in err


@pytest.fixture(scope="module")
def spk_run(spk_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch improved run on fold01 of the speaker-normalised root."""
    from selfcross.training import train_run

    run = tmp_path_factory.mktemp("spk_run") / "run"
    config = RunConfig(model=ModelConfig(kind="self", modalities=("audio",)),
                       train=TrainConfig(batch_size=8, device="cpu", num_threads=1))
    apply_preset(config, "improved")
    config.train.max_epochs = 1  # after the preset, which sets its own budget
    train_run(config, spk_root / "fold01", run, progress=False)
    return run


@pytest.mark.slow
def test_predict_with_speaker_clips_reproduces_prepared_arrays(
    corpus: Path, spk_root: Path, spk_run: Path, tmp_path: Path
) -> None:
    from selfcross.serve.predict import Clip, Predictor

    prepared = _frames_by_id(spk_root)
    utt = sorted(read_fold(spk_root / "fold01").test.ids)[0]
    speaker_dir = tmp_path / "speaker"
    speaker_dir.mkdir()
    for clip in (corpus / "clips").glob(f"{utt.split('_')[0]}_*.wav"):
        shutil.copy(clip, speaker_dir / clip.name)
    predictor = Predictor(spk_run, speaker_clips=speaker_dir)
    assert predictor.speaker_note is not None and "4 clip(s)" in predictor.speaker_note
    inputs, lengths = predictor.features(Clip(audio=corpus / "clips" / f"{utt}.wav"))
    n = int(lengths["audio"][0])
    assert n == len(prepared[utt])
    np.testing.assert_allclose(inputs["audio"][0, :n], prepared[utt], rtol=1e-5, atol=1e-5)
    assert np.all(inputs["audio"][0, n:] == 0)


@pytest.mark.slow
def test_predict_without_speaker_clips_pools_the_training_speakers(
    corpus: Path, spk_root: Path, spk_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from selfcross.features.speakernorm import SPEAKER_STATS, SpeakerStats, normalise
    from selfcross.serve.predict import Clip, Predictor

    fold_stats = SpeakerStats.load(spk_root / "fold01" / SPEAKER_STATS)
    clip = corpus / "clips" / "s0_u1.wav"
    inputs, lengths = Predictor(spk_run).features(Clip(audio=clip))
    raw, n = AudioFeatures(FAST).extract(clip)
    np.testing.assert_array_equal(inputs["audio"][0, :n], normalise(raw[:n], *fold_stats.pooled()))
    rc = main(["predict", "--run", str(spk_run), "--audio", str(clip), "--json"])
    err = capsys.readouterr().err.strip()
    assert rc == 0 and err == ("speaker normalisation: no --speaker-clips given, using the statistics "
                               f"pooled over the {len(fold_stats.speakers)} training speakers")


def test_speaker_clips_on_a_run_without_speaker_norm_is_an_error(
    egemaps_run: tuple[Path, Path], corpus: Path
) -> None:
    from selfcross.serve.predict import Predictor

    with pytest.raises(ConfigError, match="--speaker-norm"):
        Predictor(egemaps_run[1], speaker_clips=corpus / "clips")
