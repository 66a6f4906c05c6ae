"""``selfcross explain``: attention maps that reproduce the model, figures with labelled axes."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from selfcross.cli import main
from selfcross.config import ModalityShape, ModelConfig, RunConfig, TrainConfig, apply_preset
from selfcross.models import FusionModel
from selfcross.models.maps import attention_maps, pooled_from_received
from selfcross.serve.explain import explain

RAVDESS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ravdess-speech-16k"
SHAPES = {
    "audio": ModalityShape(12, 4, 6),
    "video": ModalityShape(6, 5, 4),
    "text": ModalityShape(8, 6, None),
}


def _model(kind: str, preset: str) -> FusionModel:
    mc = ModelConfig(kind=kind, hidden=4, heads=2, head_hidden=5, n_classes=3, shapes=dict(SHAPES))
    cfg = apply_preset(RunConfig(model=mc), preset)
    torch.manual_seed(0)
    return FusionModel(cfg.model).eval()


def _inputs(batch: int = 3) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = {m: torch.randn(batch, s.seq_len, s.feat_dim, generator=g) for m, s in SHAPES.items()}
    valid = {"audio": [12, 5, 3], "video": [6, 2, 4], "text": [8, 3, 1]}
    lengths = {m: torch.tensor(n) for m, n in valid.items()}
    for m, n in lengths.items():
        for b, k in enumerate(n.tolist()):
            x[m][b, k:] = 0.0
    return x, lengths


@pytest.mark.parametrize("preset", ["paper", "improved"])
@pytest.mark.parametrize("kind", ["self", "cross", "self+cross"])
def test_maps_sum_to_one_over_keys_and_rebuild_the_fast_pooled_output(kind: str, preset: str) -> None:
    model = _model(kind, preset)
    x, lengths = _inputs()
    maps = attention_maps(model, **x, lengths=lengths)
    encoded, key_masks, mean_masks = model.attention_inputs(**x, lengths=lengths)
    assert [b.name for b in maps] == [name for name, *_ in model.pairs]
    for b in maps:
        assert b.weights.dtype == torch.float32
        sums = b.weights.sum(dim=-1)
        torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-6, rtol=0)
        assert float(b.weights.masked_select(~b.key_valid[:, None, None, :]).abs().sum()) == 0.0
        attention = model.attentions[b.name]
        assert attention.impl == "fast"  # the model's own numbers come from the kernel that builds no map
        with torch.no_grad():
            q, kv = encoded[b.target], encoded[b.source]
            fast = attention.pooled(q, kv, key_masks[b.source], mean_masks[b.target])
            rebuilt = pooled_from_received(attention.mha, encoded[b.source], b.received)
        torch.testing.assert_close(rebuilt, fast, atol=1e-6, rtol=0)
    if preset == "improved":  # padding is masked: text keys past each length get no weight
        text_keys = [b for b in maps if b.source == "text"][0].key_valid
        assert text_keys.sum(dim=1).tolist() == [8, 3, 1]


def test_rebuilt_vectors_give_the_model_logits() -> None:
    model = _model("cross", "paper")
    x, _ = _inputs()
    maps = attention_maps(model, **x)
    encoded, *_ = model.attention_inputs(**x)
    with torch.no_grad():
        vectors = [
            pooled_from_received(model.attentions[b.name].mha, encoded[b.source], b.received) for b in maps
        ]
        logits = model.head(model.pooling(torch.stack(vectors, dim=1)))
        torch.testing.assert_close(logits, model(**x), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- trained runs
def _labels(fig) -> set[str]:
    return {a.get_xlabel() for a in fig.axes} | {a.get_ylabel() for a in fig.axes}


@pytest.mark.slow
def test_explain_on_a_synthetic_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from selfcross.synthetic.generator import make_synthetic
    from selfcross.training import train_run

    root = make_synthetic(tmp_path / "syn", "small", n_folds=1, n_utterances=300)
    fold = root / "fold01"
    cfg = RunConfig(model=ModelConfig(kind="cross"), train=TrainConfig(max_epochs=1, num_threads=1))
    train_run(cfg, fold, tmp_path / "run", progress=False)
    ids = (fold / "test_ids.txt").read_text().split()[:2]
    out = explain(tmp_path / "run", tmp_path / "exp", data=fold, ids=ids)
    assert [e.id for e in out] == ids
    e = out[0]
    z = np.load(e.npz_path)
    names = ["audio_from_video", "audio_from_text", "video_from_audio", "video_from_text",
             "text_from_audio", "text_from_video"]
    for name in names:
        w = z[f"{name}.weights"]
        assert w.ndim == 3 and w.shape[0] == ModelConfig().heads  # per head: [Tq, Tk]
        np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-6)
        np.testing.assert_allclose(z[f"{name}.weights_mean"], w.mean(axis=0))
    assert z["audio_from_video.weights"].shape[1:] == (25, 9)  # mixed audio x mixed video positions
    assert z["text_from_audio.frames"].shape == (50,)  # audio keys projected onto its 50 input frames
    assert "text_from_audio.frames" in z and "audio_from_text.frames" not in z  # text mixes no time
    assert str(z["axis_label.audio"]) == "audio: input frame"  # synthetic data: no frame rate known
    assert str(z["axis_label.text"]) == "text: word"
    assert all(w.startswith(("cue", "filler", "<pad>")) for w in z["axis.text"])
    np.testing.assert_allclose(z["probabilities"].sum(), 1.0)
    assert list(z["class_names"]) == list(e.probabilities)
    labels = _labels(e.figure)
    assert {"audio: mixed position (of 25) (query)", "video: mixed position (of 9) (key)",
            "text: word (key)", "text: word (query)", "predicted probability"} <= labels
    assert e.figure_path.stat().st_size > 10_000
    # the CLI: same files, one line per utterance; an unknown id is one line, exit 2
    assert main(["explain", "--run", str(tmp_path / "run"), "--data", str(fold), "--ids", ids[0],
                 "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / f"{ids[0]}.png").is_file()
    assert main(["explain", "--run", str(tmp_path / "run"), "--data", str(fold), "--ids", "nope",
                 "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nope'" in err[0] and "fold01" in err[0]


def test_explain_needs_one_input_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert main(["explain", "--run", str(tmp_path), "--out", str(tmp_path / "o"), "--data", str(tmp_path),
                 "--audio", "a.wav"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("either --data FOLD" in line for line in err)


def _ravdess_manifest(tmp_path: Path) -> Path:
    """8 real RAVDESS clips (2 actors x 2 emotions x 2 statements) with their sentences."""
    sentences = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
    rows = []
    for actor, split in (("01", "train"), ("02", "train"), ("03", "dev"), ("04", "test")):
        for emotion, label in (("03", "happy"), ("04", "sad")):
            for statement in ("01", "02"):
                name = f"03-01-{emotion}-01-{statement}-01-{actor}.flac"
                rows.append([name[:-5], label, actor, str(RAVDESS / f"Actor_{actor}" / name),
                             sentences[statement], split])
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", "speaker", "audio", "transcript", "split"])
        w.writerows(rows)
    words = ["kids", "are", "talking", "by", "the", "door", "dogs", "sitting"]
    vec = np.random.default_rng(0).standard_normal((len(words), 8)).round(3)
    lines = [w + " " + " ".join(map(str, v)) + "\n" for w, v in zip(words, vec)]
    (tmp_path / "glove.txt").write_text("".join(lines))
    return manifest


@pytest.mark.slow
@pytest.mark.skipif(not RAVDESS.is_dir(), reason="needs ../shared/data/ravdess-speech-16k")
def test_explain_on_a_run_trained_on_real_speech(tmp_path: Path) -> None:
    manifest = _ravdess_manifest(tmp_path)
    assert main(["prepare-manifest", str(manifest), str(tmp_path / "root"), "--modalities", "at",
                 "--glove", str(tmp_path / "glove.txt"), "--no-progress", "--max-audio-frames", "400",
                 "--split-column", "split"]) == 0
    fold = next(p for p in sorted((tmp_path / "root").rglob("test_label.npy"))).parent
    assert main(["train", "--data", str(fold), "--model", "self", "--modalities", "at",
                 "--out", str(tmp_path / "run"), "--quiet", "--max-epochs", "1", "--preset", "improved"]) == 0
    clip = RAVDESS / "Actor_04" / "03-01-04-01-02-01-04.flac"
    shutil.copy(clip, tmp_path / "clip.flac")
    [e] = explain(tmp_path / "run", tmp_path / "exp", audio=tmp_path / "clip.flac",
                  transcript="Dogs are sitting by the door")
    z = np.load(e.npz_path)
    assert str(z["axis_label.audio"]) == "audio: time (s)"
    np.testing.assert_allclose(z["axis.audio"][:3], [0.0, 0.01, 0.02])  # 10 ms frame shift
    assert list(z["axis.text"][:6]) == ["dogs", "are", "sitting", "by", "the", "door"]
    np.testing.assert_allclose(z["self_text.weights"].sum(axis=-1), 1.0, atol=1e-6)
    # improved preset masks padding: the 6 words share all the text weight
    np.testing.assert_allclose(z["self_text.received_mean"][:6].sum(), 1.0, atol=1e-6)
    assert z["self_audio.frames"].shape == (400,)
    spectrogram = e.figure.axes[0]
    assert spectrogram.get_xlabel() == "audio: time (s)" and spectrogram.get_ylabel() == "mel band"
    assert spectrogram.images and spectrogram.get_xlim() == pytest.approx((0.0, 4.0))
    assert {"audio: time (s)", "audio: mixed position (of 200)", "text: word"} <= _labels(e.figure)
