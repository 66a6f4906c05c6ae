"""Whisper encoders (transformers and CTranslate2) and sentence-encoder folders, on tiny local models.

Nothing reaches the network: every model is a tiny random one saved to a temporary folder
(:mod:`hf_tiny`); the CTranslate2 folder is converted from the transformers one by
CTranslate2's own converter, so the two back-ends can be compared on the same weights.
"""

from __future__ import annotations

import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

pytest.importorskip("transformers")
pytest.importorskip("ctranslate2")

import hf_tiny  # noqa: E402
from media import speech  # noqa: E402
from selfcross.cli import main  # noqa: E402
from selfcross.errors import ConfigError  # noqa: E402
from selfcross.features import extractors as fx  # noqa: E402
from selfcross.features import pretrained as hf  # noqa: E402
from selfcross.features import whisper  # noqa: E402
from selfcross.features.configio import load_feature_configs  # noqa: E402
from test_features_pretrained import LINES, _manifest, _one_line_error  # noqa: E402

SR = 16_000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("whisper")
    hf_dir = hf_tiny.tiny_whisper(root / "hf")
    return {"hf": hf_dir, "ct2": hf_tiny.tiny_whisper_ct2(hf_dir, root / "ct2")}


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(seconds * SR)).astype(np.float32)


# --------------------------------------------------------------------------- configs


def test_whisper_config_counts_states_and_records_the_folder(tiny):
    cfg = fx.audio_encoder_config(f"hf:{tiny['hf']}", layer="1", device="cpu")
    assert (cfg.model_type, cfg.n_layers, cfg.feat_dim, cfg.layer) == ("whisper", 3, 32, 1)
    assert cfg.revision == hf.folder_fingerprint(tiny["hf"]) and cfg.dtype == "float32"
    last = fx.audio_encoder_config(f"hf:{tiny['hf']}", device="cpu")
    assert last.layer == 2


def test_ct2_folder_config_is_the_last_layer_in_int8_on_the_cpu(tiny):
    cfg = fx.audio_encoder_config(f"hf:{tiny['ct2']}", device="cpu")
    assert (cfg.model_type, cfg.feat_dim, cfg.layer, cfg.dtype) == ("whisper-ctranslate2", 32, -1, "int8")
    assert cfg.revision == hf.folder_fingerprint(tiny["ct2"])
    assert hf.HFAudioConfig.from_dict(cfg.to_dict()) == cfg


def test_ct2_folder_refuses_inner_layers(tiny):
    with pytest.raises(ConfigError, match="only the Whisper encoder's last layer"):
        fx.audio_encoder_config(f"hf:{tiny['ct2']}", layer="weighted", device="cpu")


# --------------------------------------------------------------------------- extraction


def test_frames_cover_the_clip_at_20_ms(tiny):
    ex = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{tiny['hf']}", max_frames=200,
                                                            device="cpu"), "cpu")
    (a, na), (b, nb) = ex.from_waveforms([_noise(1.0), _noise(2.01)])
    assert (na, nb) == (50, 101)  # ceil(samples / 320)
    assert a.shape == (200, 32) and not a[na:].any() and np.abs(a[:na]).sum(axis=1).min() > 0


def test_batched_clips_equal_one_clip_at_a_time(tiny):
    ex = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{tiny['hf']}", device="cpu"), "cpu")
    waves = [_noise(0.7, 1), _noise(1.9, 2), _noise(1.2, 3)]
    together = ex.from_waveforms(waves)
    for w, (x, n) in zip(waves, together):
        y, m = ex.from_waveforms([w])[0]
        assert n == m
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_a_clip_longer_than_30_s_is_encoded_window_by_window(tiny):
    cfg = fx.audio_encoder_config(f"hf:{tiny['hf']}", max_frames=1600, device="cpu")
    ex = fx.make_extractor("audio", cfg, "cpu")
    long = _noise(31.0, 4)
    x, n = ex.from_waveforms([long])[0]
    assert n == 1550
    first, n1 = ex.from_waveforms([long[: 30 * SR]])[0]
    rest, n2 = ex.from_waveforms([long[30 * SR :]])[0]
    assert (n1, n2) == (1500, 50)
    np.testing.assert_allclose(x[:1500], first[:1500], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x[1500:1550], rest[:50], rtol=1e-5, atol=1e-6)


def test_weighted_keeps_every_hidden_state(tiny):
    cfg = fx.audio_encoder_config(f"hf:{tiny['hf']}", layer="weighted", max_frames=60, device="cpu")
    assert cfg.input_shape() == (60, 3, 32)
    x, n = fx.make_extractor("audio", cfg, "cpu").from_waveforms([_noise(1.0)])[0]
    assert x.shape == (60, 3, 32) and n == 50
    last = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{tiny['hf']}", max_frames=60,
                                                              device="cpu"), "cpu")
    np.testing.assert_allclose(x[:, 2], last.from_waveforms([_noise(1.0)])[0][0], rtol=1e-5, atol=1e-6)


def test_ctranslate2_encoder_equals_the_transformers_encoder(tiny):
    """The two back-ends on the same converted weights: CTranslate2 float32 against transformers."""
    wave = _noise(2.5, 5)
    ref, n = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{tiny['hf']}", device="cpu"),
                               "cpu").from_waveforms([wave])[0]
    cfg = fx.audio_encoder_config(f"hf:{tiny['ct2']}", dtype="float32", device="cpu")
    got, m = fx.make_extractor("audio", cfg, "cpu").from_waveforms([wave])[0]
    assert m == n == 125
    assert np.abs(got[:n] - ref[:n]).max() < 1e-3 * np.abs(ref[:n]).max()
    int8 = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{tiny['ct2']}", device="cpu"), "cpu")
    q, _ = int8.from_waveforms([wave])[0]
    assert np.corrcoef(q[:n].ravel(), ref[:n].ravel())[0, 1] > 0.99


def test_clip_window_encodes_only_the_clip_frames(tiny):
    """``window="clip"``: the same states count, from the clip's own mel frames; they differ from
    the 30 s window's (the encoder's attention no longer sees the padding) but stay close."""
    wave = _noise(1.3, 6)
    full = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{tiny['ct2']}", dtype="float32",
                                                              device="cpu"), "cpu")
    clip_cfg = fx.audio_encoder_config(f"hf:{tiny['ct2']}", dtype="float32", device="cpu", window="clip")
    assert clip_cfg.window == "clip" and hf.HFAudioConfig.from_dict(clip_cfg.to_dict()) == clip_cfg
    clip = fx.make_extractor("audio", clip_cfg, "cpu")
    (x, n), (y, m) = full.from_waveforms([wave])[0], clip.from_waveforms([wave])[0]
    assert n == m == 65
    assert not np.allclose(x[:n], y[:n], atol=1e-4)
    assert np.corrcoef(x[:n].ravel(), y[:n].ravel())[0, 1] > 0.5
    together = clip.from_waveforms([_noise(0.5, 7), wave])[1]
    np.testing.assert_allclose(together[0], y, rtol=1e-5, atol=1e-6)


def test_clip_window_is_refused_for_transformers_whisper_and_other_encoders(tiny, tmp_path):
    with pytest.raises(ConfigError, match="needs a CTranslate2 folder"):
        fx.audio_encoder_config(f"hf:{tiny['hf']}", device="cpu", window="clip")
    speech_dir = hf_tiny.tiny_speech(tmp_path / "w2v")
    with pytest.raises(ConfigError, match="applies to Whisper encoders"):
        fx.audio_encoder_config(f"hf:{speech_dir}", device="cpu", window="clip")


def test_cache_key_of_other_encoders_is_unchanged_by_the_window_setting(tiny):
    from selfcross.prepare.cache import cache_key

    cfg = fx.audio_encoder_config(f"hf:{tiny['ct2']}", device="cpu").to_dict()
    without = {k: v for k, v in cfg.items() if k != "window"}
    assert cache_key("audio", cfg) == cache_key("audio", without)
    assert cache_key("audio", {**cfg, "window": "clip"}) != cache_key("audio", cfg)


# --------------------------------------------------------------------------- errors


def test_missing_ctranslate2_names_the_extra(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    with pytest.raises(ConfigError, match=r"pip install 'selfcross\[ctranslate2\]'"):
        fx.audio_encoder_config(f"hf:{tiny['ct2']}", device="cpu")


def test_a_broken_ct2_folder_is_one_line_exit_2(tiny, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny["ct2"].iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.bin").write_bytes(b"not a model")
    man = _manifest(tmp_path, n=4, video=False, text=False)
    err = _one_line_error(capsys, ["prepare-manifest", str(man), str(tmp_path / "out"), "--audio-encoder",
                                   f"hf:{broken}", "--no-progress"])
    assert "is not a loadable CTranslate2 Whisper folder" in err


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module", params=["hf", "ct2", "ct2-clip"])
def prepared(request, tiny, tmp_path_factory):
    """Audio through prepare-manifest with a tiny Whisper encoder, then a short run."""
    root = tmp_path_factory.mktemp(f"corpus-{request.param}")
    man = _manifest(root, video=False, text=False)
    out = root / "data"
    kind, _, window = request.param.partition("-")
    assert main(["prepare-manifest", str(man), str(out), "--folds", "2", "--no-progress",
                 "--audio-encoder", f"hf:{tiny[kind]}", "--max-audio-frames", "120",
                 "--whisper-window", window or "30s"]) == 0
    from selfcross.config import ModelConfig, RunConfig, TrainConfig, apply_preset
    from selfcross.training import train_run

    cfg = apply_preset(RunConfig(model=ModelConfig(kind="self", modalities=("audio",), hidden=6, heads=2,
                                                   head_hidden=5),
                                 train=TrainConfig(max_epochs=2, patience=2, batch_size=2, num_threads=1)),
                       "improved")
    train_run(cfg, out / "fold01", root / "run", progress=False)
    return {"root": root, "out": out, "run": root / "run", "kind": kind, "window": window or "30s"}


@pytest.mark.slow
def test_features_json_records_encoder_revision_and_layer(prepared, tiny):
    saved = load_feature_configs(prepared["out"])["audio"]
    folder = tiny[prepared["kind"]]
    assert saved.encoder == f"hf:{folder}" and saved.revision == hf.folder_fingerprint(folder)
    assert saved.layer == (2 if prepared["kind"] == "hf" else -1) and saved.window == prepared["window"]


@pytest.mark.slow
def test_predict_re_extracts_exactly_the_prepared_arrays(prepared):
    from selfcross.folds import read_fold
    from selfcross.serve.predict import Clip, Predictor

    split = read_fold(prepared["out"] / "fold01").test
    pred = Predictor(prepared["run"])
    for row, utt in enumerate(split.ids):
        stored, lengths = split.get_batch([row], ["audio"])
        inputs, got_len = pred.features(Clip(audio=prepared["root"] / f"{utt}.wav"))
        assert int(got_len["audio"][0]) == int(lengths["audio"][0])
        np.testing.assert_array_equal(inputs["audio"], stored["audio"])


# --------------------------------------------------------------------------- sentence encoders


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_sentence_encoder_folder_equals_sentence_transformers(tmp_path, family):
    st = pytest.importorskip("sentence_transformers")
    folder = hf_tiny.tiny_sentence_encoder(tmp_path / family, family)
    ex = fx.make_extractor("text", hf.text_encoder_config(f"hf:{folder}", device="cpu"), "cpu")
    ours = ex.sentence_embeddings(LINES)
    ref = st.SentenceTransformer(str(folder), device="cpu").encode(LINES, convert_to_numpy=True)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    assert ex.sentence_embeddings(LINES, normalize=True).shape == (len(LINES), 32)


def test_sentence_encoder_word_rows_average_their_tokens(tmp_path):
    folder = hf_tiny.tiny_sentence_encoder(tmp_path / "st")
    words = fx.make_extractor("text", hf.text_encoder_config(f"hf:{folder}", device="cpu"), "cpu")
    tokens = fx.make_extractor("text", hf.text_encoder_config(f"hf:{folder}", units="token", device="cpu"),
                               "cpu")
    w, nw = words.extract("the cats sat")  # "cats" = cat + ##s
    t, nt = tokens.extract("the cats sat")
    assert (nw, nt) == (3, 6)  # [CLS] the cat ##s sat [SEP]
    np.testing.assert_allclose(w[1], t[2:4].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w[0], t[1], rtol=1e-5, atol=1e-6)


def test_speech_clip_through_whisper_end_to_end_file(tiny, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, speech("hello there", tmp_path), SR)
    ex = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{tiny['ct2']}", device="cpu"), "cpu")
    x, n = ex.extract(wav)
    assert n == whisper._frames_of(len(sf.read(wav)[0]))
    assert isinstance(ex, whisper.WhisperFeatures)
