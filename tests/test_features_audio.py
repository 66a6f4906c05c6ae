"""Audio features: MFCC shape, padding, valid length, resampling, stereo, mp4 audio, errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from selfcross.errors import ConfigError, DataError
from selfcross.features import (
    AudioConfig,
    AudioFeatures,
    load_audio,
    load_feature_configs,
    save_feature_configs,
)

SR = 16000


def _speechlike(seconds: float, sr: int) -> np.ndarray:
    """A band-limited, amplitude-modulated signal (harmonics of a gliding pitch), any rate."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12))
    y *= 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def feats() -> AudioFeatures:
    return AudioFeatures()


def test_shape_padding_and_valid_length(feats):
    x, n = feats.extract((_speechlike(2.0, SR), SR))
    assert x.shape == (1000, 120) and x.dtype == np.float32
    assert n == 1 + 2 * SR // 160  # centred frames: 1 + samples // hop
    assert np.all(x[n:] == 0) and np.any(x[n - 1] != 0)
    assert np.all(np.isfinite(x))


def test_long_clip_is_cut_to_max_frames(feats):
    x, n = feats.extract((_speechlike(10.5, SR), SR))
    assert n == 1000 and np.all(np.any(x != 0, axis=1))
    # the first frames do not depend on what comes after the kept 10 s
    x2, _ = feats.extract((_speechlike(10.5, SR)[: 9 * SR], SR))
    np.testing.assert_allclose(x2[:800], x[:800], rtol=1e-4, atol=1e-2)


def test_layout_is_mfcc_then_deltas():
    cfg = AudioConfig(max_frames=50)
    x, n = AudioFeatures(cfg).extract((_speechlike(1.0, SR), SR))
    import librosa

    y = _speechlike(1.0, SR)
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=40, n_fft=512, win_length=400, hop_length=160, n_mels=40)
    np.testing.assert_allclose(x[:n, :40], mfcc.T[:n], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(x[:n, 40:80], librosa.feature.delta(mfcc, order=1).T[:n], rtol=1e-4, atol=1e-3)


def test_resampled_stereo_matches_mono(tmp_path, feats):
    mono16 = _speechlike(2.0, SR)
    hi = _speechlike(2.0, 44100)
    sf.write(tmp_path / "m16.wav", mono16, SR, subtype="FLOAT")
    sf.write(tmp_path / "s44.wav", np.stack([hi, hi], axis=1), 44100, subtype="FLOAT")
    a, na = feats.extract(tmp_path / "m16.wav")
    b, nb = feats.extract(tmp_path / "s44.wav")
    assert abs(na - nb) <= 1
    n = min(na, nb) - 5
    # same signal: MFCCs (dB scale) agree closely; a different signal does not
    err = np.abs(a[:n, :40] - b[:n, :40]).mean()
    other, _ = feats.extract((mono16[::-1].copy(), SR))
    assert err < 0.2 < 2.0 < np.abs(a[:n, :40] - other[:n, :40]).mean()


def test_waveform_layouts_agree(feats):
    y = _speechlike(0.5, SR)
    a, _ = feats.extract((y, SR))
    b, _ = feats.extract((np.stack([y, y]), SR))  # [channels, samples]
    c, _ = feats.extract((np.stack([y, y], axis=1), SR))  # [samples, channels]
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_span(tmp_path, feats):
    y = _speechlike(3.0, SR)
    sf.write(tmp_path / "a.wav", y, SR, subtype="FLOAT")
    x, n = feats.extract(tmp_path / "a.wav", start=1.0, end=2.0)
    ref, nref = feats.extract((y[SR : 2 * SR], SR))
    assert n == nref == 101
    np.testing.assert_allclose(x, ref, atol=1e-4)
    with pytest.raises(DataError, match="after the end"):
        feats.extract(tmp_path / "a.wav", start=5.0, end=6.0)


def test_very_short_clip(feats):
    x, n = feats.extract((_speechlike(0.03, SR), SR))
    assert n == 4 and np.all(np.isfinite(x))


def test_mp4_audio_track(tmp_path, feats):
    av = pytest.importorskip("av")
    sr = 44100
    y = _speechlike(1.5, sr)
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=sr)
        s.layout = "stereo"
        st = np.ascontiguousarray(np.stack([y, y]))
        for k in range(0, st.shape[1], 1024):
            chunk = np.ascontiguousarray(st[:, k : k + 1024])
            fr = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            fr.sample_rate = sr
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    w = load_audio(path, SR)
    assert w.dtype == np.float32 and w.ndim == 1
    assert abs(len(w) - 1.5 * SR) < 0.1 * SR  # codec priming adds a few ms
    ref = _speechlike(1.5, SR)
    # aligned by cross-correlation, the decoded track is the same signal
    lag = int(np.argmax(np.correlate(w[:4000], ref[:2000], mode="valid")))
    seg = w[lag : lag + 16000]
    assert np.corrcoef(seg, ref[: len(seg)])[0, 1] > 0.95
    x, n = feats.extract(path)
    assert x.shape == (1000, 120) and abs(n - 151) <= 6


@pytest.mark.parametrize("content", [b"", b"RIFF not really a wave file at all"])
def test_unreadable_audio_names_the_file(tmp_path, feats, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    with pytest.raises(DataError) as e:
        feats.extract(bad)
    assert "bad.wav" in str(e.value)


def test_missing_and_empty(tmp_path, feats):
    with pytest.raises(DataError, match="no such audio file"):
        feats.extract(tmp_path / "nope.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(DataError, match="empty.wav"):
        feats.extract(tmp_path / "empty.wav")
    with pytest.raises(DataError, match="NaN"):
        feats.extract((np.array([0.0, np.nan] * 400), SR))


def test_config_round_trip_and_validation(tmp_path):
    cfg = AudioConfig(max_frames=300, n_mfcc=13, n_mels=26)
    assert AudioConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.feat_dim == 39
    with pytest.raises(ConfigError, match="unknown AudioConfig keys"):
        AudioConfig.from_dict({"n_mfc": 3})
    with pytest.raises(ConfigError):
        AudioConfig(n_mfcc=50, n_mels=40)
    path = save_feature_configs(tmp_path, {"audio": cfg})
    assert path.name == "features.json"
    assert load_feature_configs(tmp_path) == {"audio": cfg}
    path.write_text('{"audio": {"bogus": 1}}')
    with pytest.raises(DataError, match="features.json"):
        load_feature_configs(path)
