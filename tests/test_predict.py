"""Predictor and ``selfcross predict`` on a run folder built in the test (tiny model, tiny features)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from selfcross.cli import main
from selfcross.config import ModalityShape, ModelConfig, RunConfig, apply_preset
from selfcross.errors import CheckpointError, ConfigError, DataError
from selfcross.features import (
    AudioConfig,
    AudioFeatures,
    TextConfig,
    VideoConfig,
    VideoFeatures,
    Vocabulary,
    encode,
    load_word_vectors,
    save_feature_configs,
    tokenize,
)
from selfcross.training.rundir import save_run
from selfcross.training.standardize import Standardizer

av = pytest.importorskip("av")

CLASSES = ("angry", "happy", "sad", "neutral")
AUDIO = AudioConfig(max_frames=60)
TEXT = TextConfig(max_tokens=8, word_vectors="glove.txt", embedding_dim=4)
VIDEO = VideoConfig(max_frames=4, crop=32, encoder="resnet101", weights=None, feat_dim=2048)


class TinyEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 5, 3, stride=4)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def _write_video(path, seconds=2.0, fps=6, w=96, h=64):
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.full((h, w, 3), (20 * i) % 256, np.uint8)
            img[:, w // 2 :, 1] = 90
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _make_run(tmp_path, modalities=("audio", "video", "text"), preset="improved", name="run",
              task="classification"):
    """A run folder holding a random tiny model, a fitted standardizer and its features/."""
    data = tmp_path / f"data_{name}"
    data.mkdir()
    (data / "glove.txt").write_text("hello 1 0 0 1\nthere 0 1 0 1\nsad 0 0 1 1\nvery -1 0 0 1\n")
    vocab = Vocabulary.build([tokenize("hello there [LAUGHTER]"), tokenize("very sad")])
    w = load_word_vectors(data / "glove.txt", vocab)
    np.save(data / "W_embedding.npy", w)
    vocab.save(data)
    video_cfg = VideoConfig(**{**VIDEO.to_dict(), "encoder": "tiny", "feat_dim": 5})
    save_feature_configs(data, {"audio": AUDIO, "text": TEXT, "video": video_cfg})
    shapes = {
        "audio": ModalityShape(60, 120, 30),
        "video": ModalityShape(4, 5, 3),
        "text": ModalityShape(8, 4, None),
    }
    mc = ModelConfig(
        kind="self",
        modalities=tuple(modalities),
        shapes={m: shapes[m] for m in modalities},
        hidden=6,
        heads=2,
        head_hidden=5,
        n_classes=1 if task == "regression" else len(CLASSES),
    )
    cfg = apply_preset(RunConfig(model=mc, class_names=CLASSES), preset)
    cfg.train.task = task
    from selfcross.models import FusionModel

    torch.manual_seed(1)
    model = FusionModel(cfg.model)
    rng = np.random.default_rng(0)
    std = None
    if preset == "improved":
        std = Standardizer(
            {
                m: (rng.normal(size=shapes[m].feat_dim), rng.uniform(0.5, 2, shapes[m].feat_dim))
                for m in modalities
            }
        )
    files = [data / "features.json", data / "vocab.txt", data / "W_embedding.npy"]
    return save_run(tmp_path / name, cfg, model, metrics={}, standardizer=std, feature_files=files), std


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    t = np.arange(int(1.2 * 22050)) / 22050
    y = 0.3 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 2 * t))
    sf.write(d / "clip.wav", np.stack([y, 0.5 * y], axis=1), 22050)
    _write_video(d / "clip.mp4")
    return d


def test_predict_matches_model_on_extracted_arrays(tmp_path, media):
    run, std = _make_run(tmp_path)
    from selfcross.serve.predict import Clip, Predictor

    pred = Predictor(run, video_encoder=TinyEncoder())
    out = pred.predict(
        Clip(audio=media / "clip.wav", video=media / "clip.mp4", transcript="Hello there, very sad!",
             video_side="right")
    )
    probs = np.array(list(out["probabilities"].values()))
    assert list(out["probabilities"]) == list(CLASSES)
    assert probs.sum() == pytest.approx(1.0, abs=1e-9) and np.all(probs > 0)
    assert out["top_class"] == CLASSES[int(np.argmax(out["logits"]))]

    # independent computation: extractors -> standardizer -> model
    a, na = AudioFeatures(AUDIO).extract(media / "clip.wav")
    vcfg = VideoConfig(**{**VIDEO.to_dict(), "encoder": "tiny", "feat_dim": 5})
    v, nv = VideoFeatures(vcfg, encoder=TinyEncoder()).extract(media / "clip.mp4", side="right")
    from selfcross.features.text import Vocabulary as V

    vocab = V.load(run / "features")
    ids = encode("Hello there, very sad!", vocab, 8)
    t = np.load(run / "features" / "W_embedding.npy")[ids]
    assert out["lengths"] == {"audio": na, "video": nv, "text": 4}
    x = {"audio": a, "video": v, "text": t}
    lens = {"audio": na, "video": nv, "text": 4}
    for m, (mu, sd) in std.stats.items():
        valid = np.arange(x[m].shape[0]) < lens[m]
        x[m] = np.where(valid[:, None], (x[m] - mu) / sd, 0).astype(np.float32)
    model = pred.model
    with torch.no_grad():
        ref = model(
            **{m: torch.from_numpy(x[m][None]) for m in x},
            lengths={m: torch.tensor([n]) for m, n in lens.items()},
        )
    np.testing.assert_allclose(out["logits"], ref[0].double().numpy(), rtol=1e-5, atol=1e-5)
    # IEMOCAP style: whole utterance wav, span of a dialog video
    _, lens2 = pred.features(
        Clip(audio=media / "clip.wav", video=media / "clip.mp4", transcript="hello", video_start=0.5,
             video_end=1.5)
    )
    assert lens2["audio"] == na and lens2["video"] == 3
    _, lens3 = pred.features(
        Clip(audio=media / "clip.wav", video=media / "clip.mp4", transcript="hello", start=0.5, end=1.0)
    )
    assert lens3["audio"] == 51 and lens3["video"] == 2
    # a different side gives different video features, so different logits
    other = pred.predict(
        Clip(audio=media / "clip.wav", video=media / "clip.mp4", transcript="Hello there, very sad!",
             video_side="left")
    )
    assert not np.allclose(other["logits"], out["logits"])


def test_missing_modality_and_bad_files(tmp_path, media):
    run, _ = _make_run(tmp_path, modalities=("audio", "text"), preset="paper")
    from selfcross import Predictor
    from selfcross.serve.predict import Clip

    pred = Predictor(run)
    with pytest.raises(ConfigError, match="missing text"):
        pred.predict(Clip(audio=media / "clip.wav"))
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"garbage" * 50)
    with pytest.raises(DataError, match="noise.wav"):
        pred.predict(Clip(audio=bad, transcript="hello"))
    out = pred.predict(Clip(audio=media / "clip.wav", transcript="hello", video=media / "clip.mp4"))
    assert out["ignored"] == ["video"]
    # unknown words only: all ids are 1 (unknown), still a valid prediction
    out = pred.predict(Clip(audio=media / "clip.wav", transcript="zebra"))
    assert out["lengths"]["text"] == 1 and sum(out["probabilities"].values()) == pytest.approx(1.0)


def test_run_without_vocabulary_is_a_clear_error(tmp_path):
    run, _ = _make_run(tmp_path, modalities=("audio", "text"), preset="paper")
    (run / "features" / "vocab.txt").unlink()
    from selfcross.serve.predict import Predictor

    with pytest.raises(CheckpointError, match="vocab.txt"):
        Predictor(run)


def test_feature_shape_mismatch_is_a_clear_error(tmp_path):
    run, _ = _make_run(tmp_path, modalities=("audio",), preset="paper")
    save_feature_configs(run / "features", {"audio": AudioConfig(max_frames=100)})
    from selfcross.serve.predict import Predictor

    with pytest.raises(ConfigError, match=r"audio extractor gives \[100, 120\]"):
        Predictor(run)


def test_manifest_and_cli(tmp_path, media, capsys):
    run, _ = _make_run(tmp_path, modalities=("audio", "text"), preset="improved")
    man = tmp_path / "clips.csv"
    man.write_text(
        "id,audio,transcript,start,end\n"
        f"a,{media / 'clip.wav'},hello there,,\n"
        f"b,{media / 'clip.wav'},very sad,0.2,0.9\n"
        "c,missing.wav,hello,,\n"
    )
    from selfcross.serve.predict import Clip, Predictor

    pred = Predictor(run)
    rows = pred.predict_manifest(man, tmp_path / "out.csv")
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert "missing.wav" in rows[2]["error"] and rows[2]["probabilities"] is None
    single = pred.predict(Clip(audio=media / "clip.wav", transcript="very sad", start=0.2, end=0.9))
    assert rows[1]["probabilities"] == pytest.approx(single["probabilities"])
    with open(tmp_path / "out.csv") as f:
        out = list(csv.DictReader(f))
    assert list(out[0]) == ["id", "top_class", *[f"p_{c}" for c in CLASSES], "error"]
    assert sum(float(out[0][f"p_{c}"]) for c in CLASSES) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(DataError, match="missing.wav"):
        pred.predict_manifest(man, strict=True)

    # CLI: single clip (JSON), manifest, and errors as exit status 2 with a message
    assert (
        main(
            [
                "predict",
                "--run",
                str(run),
                "--audio",
                str(media / "clip.wav"),
                "--transcript",
                "hello there",
                "--json",
            ]
        )
        == 0
    )
    got = json.loads(capsys.readouterr().out)
    assert got["probabilities"] == pytest.approx(
        pred.predict(Clip(audio=media / "clip.wav", transcript="hello there"))["probabilities"]
    )
    tf = tmp_path / "words.txt"
    tf.write_text("hello there\n")
    assert (
        main(["predict", "--run", str(run), "--audio", str(media / "clip.wav"), "--transcript-file", str(tf)])
        == 0
    )
    assert "top class:" in capsys.readouterr().out
    assert (
        main(["predict", "--run", str(run), "--manifest", str(man), "--out", str(tmp_path / "o2.csv")]) == 1
    )
    assert "2/3 clips predicted" in capsys.readouterr().out
    assert main(["predict", "--run", str(run), "--audio", str(media / "clip.wav")]) == 2
    assert "missing text" in capsys.readouterr().err
    assert main(["predict", "--run", str(tmp_path / "nope"), "--transcript", "x"]) == 2


def test_regression_run_predicts_a_score(tmp_path, media, capsys):
    run, _ = _make_run(tmp_path, modalities=("audio", "text"), preset="paper", task="regression")
    from selfcross.serve.predict import Clip, Predictor

    pred = Predictor(run)
    out = pred.predict(Clip(audio=media / "clip.wav", transcript="very sad"))
    assert out["score"] == out["logits"][0] and len(out["logits"]) == 1 and "top_class" not in out
    man = tmp_path / "clips.csv"
    man.write_text(f"id,audio,transcript\na,{media / 'clip.wav'},very sad\nb,missing.wav,hello\n")
    rows = pred.predict_manifest(man, tmp_path / "out.csv")
    assert rows[0]["score"] == pytest.approx(out["score"]) and rows[1]["score"] is None
    with open(tmp_path / "out.csv") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == ["id", "score", "error"]
    assert float(written[0]["score"]) == pytest.approx(out["score"], abs=1e-6) and written[1]["score"] == ""
    argv = ["predict", "--run", str(run), "--audio", str(media / "clip.wav"), "--transcript", "very sad"]
    assert main(argv) == 0
    assert f"sentiment score: {out['score']:+.4f}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("audio\nx.wav\n", "needs an 'id' column"),
        ("id,audio\na,x\na,y\n", "line 3: id 'a' repeated"),
        ("id,speaker\na,b\n", "unknown column"),
    ],
)
def test_manifest_errors(tmp_path, content, problem):
    from selfcross.serve.predict import read_manifest

    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(DataError, match=problem):
        read_manifest(tmp_path / "m.csv")


def test_import_selfcross_stays_light():
    import subprocess
    import sys

    code = "import sys, selfcross; assert 'torch' not in sys.modules; print(selfcross.Predictor.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Predictor"
