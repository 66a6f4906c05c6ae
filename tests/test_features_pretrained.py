"""Pretrained transformers encoders as feature front-ends, on tiny local checkpoints.

Nothing reaches the network: the hub is switched off (``HF_HUB_OFFLINE=1``) before
transformers is imported, and every model is a tiny random one of its family saved to a
temporary folder (:mod:`hf_tiny`).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

pytest.importorskip("transformers")
av = pytest.importorskip("av")

import hf_tiny  # noqa: E402
from media import speech, write_clip  # noqa: E402
from selfcross.cli import main  # noqa: E402
from selfcross.errors import ConfigError  # noqa: E402
from selfcross.features import extractors as fx  # noqa: E402
from selfcross.features import pretrained as hf  # noqa: E402
from selfcross.features.configio import load_feature_configs, save_feature_configs  # noqa: E402

SR = 16_000
LINES = ["hello there i am very happy today", "the cats sat on the mat", "no", "we go home today",
         "i am sad", "yes a good day is today", "the cat is angry", "hello we go home"]
LABELS = ["happy", "neutral", "sad", "happy", "sad", "happy", "angry", "neutral"]


def _frames(n_samples: int) -> int:
    """Frames of the tiny speech encoders' convolutions (kernels 10, 8, 8; strides 5, 8, 8)."""
    n = n_samples
    for k, s in ((10, 5), (8, 8), (8, 8)):
        n = (n - k) // s + 1
    return n


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {
        "speech": hf_tiny.tiny_speech(root / "wav2vec2"),
        "text": hf_tiny.tiny_text(root / "bert"),
        "vision": hf_tiny.tiny_vision(root / "vit"),
    }


# --------------------------------------------------------------------------- extractors


@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "wavlm", "data2vec-audio"])
def test_speech_families_give_frames_of_the_chosen_layer(tmp_path, family):
    masks = family != "hubert"  # a group-norm front-end without attention masks runs clip by clip
    path = hf_tiny.tiny_speech(tmp_path / family, family, masks=masks)
    y = (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    last = fx.audio_encoder_config(f"hf:{path}", None, max_frames=60)
    assert (last.layer, last.n_layers, last.feat_dim, last.model_type) == (2, 3, 32, family)
    feats, n = fx.make_extractor("audio", last).extract((y, SR))
    assert feats.shape == (60, 32) and n == _frames(SR) == 49
    assert np.all(feats[n:] == 0) and np.all(np.any(feats[:n] != 0, axis=1))
    first, _ = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{path}", 1, 60)).extract((y, SR))
    stacked, n2 = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{path}", "weighted", 60)).extract(
        (y, SR))
    assert stacked.shape == (60, 3, 32) and n2 == n
    np.testing.assert_allclose(stacked[:, 2], feats, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stacked[:, 1], first, rtol=1e-5, atol=1e-6)
    assert not np.allclose(stacked[:n, 1], stacked[:n, 2])


def test_batched_speech_equals_one_clip_at_a_time(tiny):
    ex = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{tiny['speech']}", None, 60))
    rng = np.random.default_rng(1)
    clips = [(0.1 * rng.standard_normal(k)).astype(np.float32) for k in (SR, SR // 2, 3 * SR // 4)]
    batched = ex.extract_many([((y, SR), None, None) for y in clips])
    for y, (feats, n) in zip(clips, batched):
        one, n1 = ex.extract((y, SR))
        assert n == n1 == _frames(len(y))
        np.testing.assert_allclose(feats, one, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["bert", "roberta", "deberta-v2"])
def test_text_families_pool_sub_words_to_words_or_keep_tokens(tmp_path, family):
    path = hf_tiny.tiny_text(tmp_path / family, family)
    words = fx.make_extractor("text", hf.text_encoder_config(f"hf:{path}", units="word", max_tokens=10))
    tokens = fx.make_extractor("text", hf.text_encoder_config(f"hf:{path}", units="token", max_tokens=10))
    text = "the cats sat"  # WordPiece: the, cat, ##s, sat
    w, nw = words.extract(text)
    t, nt = tokens.extract(text)
    assert (w.shape, nw) == ((10, 32), 3)
    assert (t.shape, nt) == ((10, 32), 6)  # [CLS] the cat ##s sat [SEP]
    np.testing.assert_allclose(w[1], t[2:4].mean(axis=0), rtol=1e-5, atol=1e-6)  # "cats" = mean of 2
    np.testing.assert_allclose(w[0], t[1], rtol=1e-5, atol=1e-6)
    batch = words.extract_many([text, "hello there i am very happy today"])
    np.testing.assert_allclose(batch[0][0], w, rtol=1e-5, atol=1e-5)
    assert batch[1][1] == 7


@pytest.mark.parametrize("family", ["vit", "dinov2", "clip"])
def test_vision_families_embed_each_sampled_frame(tmp_path, family):
    path = hf_tiny.tiny_vision(tmp_path / family, family)
    clip = write_clip(tmp_path / "clip.mp4", seconds=2.0)
    cfg = hf.video_encoder_config(f"hf:{path}", side="left", max_frames=8)
    assert cfg.feat_dim == (16 if family == "clip" else 32)
    ex = fx.make_extractor("video", cfg)
    feats, n = ex.extract(clip)
    assert feats.shape == (8, cfg.feat_dim) and n == 6  # 2 s at 3 frames/s
    assert np.all(feats[n:] == 0)
    right, _ = ex.extract(clip, side="right")
    assert not np.allclose(feats[:n], right[:n])  # the two halves of the frame differ


def test_configs_round_trip_through_features_json(tiny, tmp_path):
    configs = {
        "audio": fx.audio_encoder_config(f"hf:{tiny['speech']}", "weighted", 100),
        "text": hf.text_encoder_config(f"hf:{tiny['text']}", units="token"),
        "video": hf.video_encoder_config(f"hf:{tiny['vision']}"),
    }
    back = load_feature_configs(save_feature_configs(tmp_path, configs))
    assert back == configs
    assert back["audio"].revision.startswith("local-") and back["audio"].dtype == "float32"


def test_cache_key_names_encoder_revision_and_layer(tiny, tmp_path):
    from selfcross.prepare.pipeline import cache_key

    base = fx.audio_encoder_config(f"hf:{tiny['speech']}", None, 100).to_dict()
    keys = {cache_key("audio", base)}
    keys.add(cache_key("audio", {**base, "layer": 1}))
    keys.add(cache_key("audio", {**base, "revision": "local-0000"}))
    keys.add(cache_key("audio", {**base, "encoder": "hf:other"}))
    assert len(keys) == 4


def test_changed_local_weights_change_the_revision(tmp_path):
    a = fx.audio_encoder_config(f"hf:{hf_tiny.tiny_speech(tmp_path / 'm')}").revision
    import transformers as tf

    tf.set_seed(5)
    cfg = tf.AutoConfig.from_pretrained(tmp_path / "m")
    tf.AutoModel.from_config(cfg).save_pretrained(tmp_path / "m")
    assert fx.audio_encoder_config(f"hf:{tmp_path / 'm'}").revision != a


def test_layer_weighting_starts_uniform_and_learns():
    import torch

    from selfcross.models.layer_weighting import LayerWeighting

    mix = LayerWeighting(3)
    np.testing.assert_allclose(mix.layer_weights().detach().numpy(), [1 / 3] * 3)
    x = torch.zeros(2, 4, 3, 5)
    x[:, :, 2] = 1.0  # only layer 2 carries signal
    loss = -mix(x).sum()
    loss.backward()
    torch.optim.SGD(mix.parameters(), lr=1.0).step()
    w = mix.layer_weights().detach().numpy()
    assert w[2] > 1 / 3 > w[0]


# --------------------------------------------------------------------------- errors


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_unknown_model_offline_says_how_to_download(tmp_path, capsys):
    man = _manifest(tmp_path, n=4, video=False, text=False)
    err = _one_line_error(capsys, ["prepare-manifest", str(man), str(tmp_path / "out"), "--audio-encoder",
                                   "hf:nobody/no-such-speech-model", "--no-progress"])
    assert "hf download nobody/no-such-speech-model" in err and "offline" in err


def test_text_model_given_as_audio_encoder_names_the_mismatch(tiny, tmp_path, capsys):
    man = _manifest(tmp_path, n=4, video=False, text=False)
    err = _one_line_error(capsys, ["prepare-manifest", str(man), str(tmp_path / "out"), "--audio-encoder",
                                   f"hf:{tiny['text']}", "--no-progress"])
    assert "'bert' is a text model, not a speech encoder" in err


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ConfigError, match=r"pip install 'selfcross\[hf\]'"):
        fx.audio_encoder_config("hf:anything")


# --------------------------------------------------------------------------- end to end


def _manifest(root: Path, n: int = 8, video: bool = True, text: bool = True) -> Path:
    """``n`` utterances of 4 speakers: speech wavs, PyAV videos of different lengths, transcripts."""
    rows = []
    for i in range(n):
        wav = root / f"u{i}.wav"
        if not wav.exists():
            sf.write(wav, speech(LINES[i % len(LINES)], root, f0=120 + 15 * i), SR)
        row = {"id": f"u{i}", "label": LABELS[i % len(LABELS)], "speaker": f"s{i % 4}", "audio": wav.name}
        if video:
            mp4 = root / f"u{i}.mp4"
            if not mp4.exists():
                write_clip(mp4, seconds=1.0 + 0.5 * (i % 3), w=64, h=48)
            row["video"] = mp4.name
        if text:
            row["transcript"] = LINES[i % len(LINES)]
        rows.append(row)
    path = root / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _cache_table(report: Path) -> dict[str, tuple[int, int]]:
    """``modality -> (reused, computed)`` from the report's feature-cache table."""
    part = report.read_text().split("## Feature cache")[1].split("## Timings")[0]
    out = {}
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].isdigit():
            out[cells[0]] = (int(cells[1]), int(cells[2]))
    return out


@pytest.fixture(scope="module")
def prepared(tiny, tmp_path_factory):
    """Every modality through prepare-manifest with the tiny encoders, twice, then a short run."""
    root = tmp_path_factory.mktemp("corpus")
    man = _manifest(root)
    out = root / "data"
    argv = ["prepare-manifest", str(man), str(out), "--folds", "2", "--no-progress",
            "--audio-encoder", f"hf:{tiny['speech']}", "--audio-layer", "weighted",
            "--max-audio-frames", "150",
            "--text-encoder", f"hf:{tiny['text']}", "--video-encoder", f"hf:{tiny['vision']}"]
    assert main(argv) == 0
    first = _cache_table(out / "prepare_report.md")
    assert main(argv) == 0
    second = _cache_table(out / "prepare_report.md")

    from selfcross.config import ModelConfig, RunConfig, TrainConfig, apply_preset
    from selfcross.training import train_run

    cfg = apply_preset(RunConfig(model=ModelConfig(kind="cross", hidden=6, heads=2, head_hidden=5),
                                 train=TrainConfig(batch_size=2, num_threads=1)), "improved")
    cfg.train.max_epochs, cfg.train.patience, cfg.train.lr = 6, 6, 0.02  # a preset sets its budget too
    run = root / "run"
    train_run(cfg, out / "fold01", run, progress=False)
    return {"root": root, "out": out, "run": run, "first": first, "second": second}


@pytest.mark.slow
def test_prepare_manifest_writes_encoder_features_with_lengths(prepared, tiny):
    from selfcross.folds import read_fold

    fold = read_fold(prepared["out"] / "fold01")
    assert fold.shapes == {"audio": (150, 3, 32), "video": (32, 32), "text": (128, 32)}
    for split in fold.splits.values():
        for row, utt in enumerate(split.ids):
            i = int(utt[1:])
            y, _ = sf.read(prepared["root"] / f"{utt}.wav")
            assert split.lengths["audio"][row] == min(150, _frames(len(y)))
            assert split.lengths["video"][row] == math.ceil(3 * (1.0 + 0.5 * (i % 3)))  # 3 frames/s
            assert split.lengths["text"][row] == len(LINES[i].split())
    saved = load_feature_configs(prepared["out"])
    assert saved["audio"].layer == "weighted" and saved["text"].encoder == f"hf:{tiny['text']}"
    assert saved["video"].encoder == f"hf:{tiny['vision']}"
    assert not (prepared["out"] / "vocab.txt").exists()


@pytest.mark.slow
def test_second_preparation_reuses_the_cache(prepared):
    assert prepared["first"] == {"audio": (0, 8), "video": (0, 8), "text": (0, 8)}
    assert prepared["second"] == {"audio": (8, 0), "video": (8, 0), "text": (8, 0)}


@pytest.mark.slow
def test_predict_on_raw_clip_equals_prepared_arrays(prepared):
    from selfcross.folds import read_fold
    from selfcross.serve.predict import Clip, Predictor

    fold = read_fold(prepared["out"] / "fold01")
    split = fold.test
    row = 0
    utt = split.ids[row]
    inputs, lengths = split.get_batch([row])
    pred = Predictor(prepared["run"])
    from_arrays = pred.logits(inputs, lengths)[0]
    i = int(utt[1:])
    raw = pred.predict(Clip(audio=prepared["root"] / f"{utt}.wav", video=prepared["root"] / f"{utt}.mp4",
                       transcript=LINES[i], video_side="full"))
    np.testing.assert_allclose(raw["logits"], from_arrays, rtol=1e-5, atol=1e-6)
    assert raw["lengths"] == {m: int(lengths[m][0]) for m in ("audio", "video", "text")}


@pytest.mark.slow
def test_weighted_layers_are_learned_and_saved_with_the_run(prepared):
    import torch
    from safetensors.torch import load_file

    saved = load_file(prepared["run"] / "model.safetensors")
    w = saved["layer_mixers.audio.weights"]
    assert w.shape == (3,)
    probs = torch.softmax(w.double(), 0).numpy()
    assert np.abs(probs - 1 / 3).max() > 1e-4  # moved away from the uniform start


def test_every_preparation_command_takes_the_encoder_options(tiny, tmp_path, capsys):
    from selfcross.cli import build_parser

    enc = ["--audio-encoder", f"hf:{tiny['speech']}", "--audio-layer", "weighted",
           "--text-encoder", f"hf:{tiny['text']}", "--text-units", "token",
           "--video-encoder", f"hf:{tiny['vision']}"]
    parser = build_parser()
    for argv in (["prepare-iemocap", "SRC", "OUT"], ["prepare-manifest", "M.csv", "OUT"],
                 ["prepare", "ravdess", "SRC", "OUT"]):
        args = parser.parse_args(argv + enc)
        assert (args.audio_encoder, args.audio_layer, args.text_units, args.video_encoder) == (
            f"hf:{tiny['speech']}", "weighted", "token", f"hf:{tiny['vision']}")
    err = _one_line_error(capsys, ["prepare-iemocap", str(tmp_path), str(tmp_path / "out")])
    assert "--glove FILE" in err and "--text-encoder" in err
    err = _one_line_error(capsys, ["prepare-manifest", str(_manifest(tmp_path, n=4, video=False, text=False)),
                                   str(tmp_path / "out"), "--audio-layer", "3"])
    assert "--audio-layer applies to --audio-encoder" in err
    man = _manifest(tmp_path, n=4, video=False, text=False)
    err = _one_line_error(capsys, ["prepare-manifest", str(man), str(tmp_path / "out"), "--audio-encoder",
                                   f"hf:{tiny['speech']}", "--speaker-norm", "--no-progress"])
    assert "--speaker-norm applies to the built-in audio features" in err
    err = _one_line_error(capsys, ["prepare-manifest", str(man), str(tmp_path / "out"), "--audio-encoder",
                                   f"hf:{tiny['speech']}", "--audio-features", "logmel", "--no-progress"])
    assert "give one of them" in err


def test_too_short_audio_is_a_data_error(tiny):
    from selfcross.errors import DataError

    ex = fx.make_extractor("audio", fx.audio_encoder_config(f"hf:{tiny['speech']}"))
    with pytest.raises(DataError, match="too short"):
        ex.extract((np.zeros(100, np.float32), SR))


def test_a_relative_model_folder_is_recorded_as_an_absolute_path(tiny, monkeypatch):
    monkeypatch.chdir(tiny["text"].parent)
    cfg = hf.text_encoder_config(f"hf:{tiny['text'].name}")
    assert cfg.encoder == f"hf:{tiny['text'].resolve()}"


@pytest.mark.parametrize("preset", ["paper", "improved"])
def test_presets_take_stacked_layers_and_any_feature_size(preset):
    import torch

    from selfcross.config import ModalityShape, ModelConfig, RunConfig, apply_preset
    from selfcross.models import FusionModel
    from selfcross.training.standardize import Standardizer

    shapes = {"audio": ModalityShape(20, 8, 10, layers=3), "video": ModalityShape(5, 7, 4),
              "text": ModalityShape(6, 9, None)}
    cfg = apply_preset(RunConfig(model=ModelConfig(kind="cross", shapes=shapes, hidden=4, heads=2,
                                                   head_hidden=3, n_classes=3)), preset)
    model = FusionModel(cfg.model)
    rng = np.random.default_rng(0)
    x = {"audio": rng.normal(size=(2, 20, 3, 8)), "video": rng.normal(size=(2, 5, 7)),
         "text": rng.normal(size=(2, 6, 9))}
    lengths = {"audio": np.array([20, 7]), "video": np.array([5, 2]), "text": np.array([6, 3])}
    for m, n in lengths.items():
        x[m][1, n[1]:] = 0.0
    split = type("S", (), {"__len__": lambda self: 2,
                           "get_batch": lambda self, i, mods: ({m: x[m][i] for m in mods},
                                                               {m: lengths[m][i] for m in mods})})()
    std = Standardizer.fit(split, ("audio", "video", "text"))
    assert std.stats["audio"][0].shape == (3, 8)  # every layer standardized on its own
    arrays = std.transform(x, lengths)
    assert np.all(arrays["audio"][1, 7:] == 0)
    tensors = {m: torch.as_tensor(a, dtype=torch.float32) for m, a in arrays.items()}
    logits = model(**tensors, lengths={m: torch.as_tensor(n) for m, n in lengths.items()})
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    from selfcross.errors import DataError

    with pytest.raises(DataError, match=r"expected \[batch, 20, 3, 8\]"):
        model(audio=tensors["audio"][:, :, 0], video=tensors["video"], text=tensors["text"])


def test_encoder_folder_without_its_feature_extractor_is_one_config_error(tiny, tmp_path, capsys):
    broken = tmp_path / "no-preprocessor"
    shutil.copytree(tiny["speech"], broken)
    (broken / "preprocessor_config.json").unlink()
    man = _manifest(tmp_path, n=4, video=False, text=False)
    err = _one_line_error(capsys, ["prepare-manifest", str(man), str(tmp_path / "out"), "--audio-encoder",
                                   f"hf:{broken}", "--folds", "4", "--no-progress"])
    assert str(broken) in err and "preprocessor_config.json" in err
    assert "unreadable audio" not in err and not (tmp_path / "out" / "fold01").exists()
