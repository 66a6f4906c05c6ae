"""Raw media -> prepared folds -> trained run -> ``Predictor`` on raw clips.

The miniature IEMOCAP tree (session fixture ``iemocap_tree``) is prepared with a tiny injected
image encoder and small extractor settings, a tri-modal model is trained for two epochs on
fold01, and every test utterance of fold01 is then predicted *from the raw release* (its wav,
its dialog video with the annotated span and the speaker's half, its transcript words) - with
the clip's description derived from the tree builder's own table, not from the preparation's
scan. The logits must equal those of the prepared arrays of the same utterance run through the
loaded model and standardizer: any difference between the preparation and prediction paths
(spans, frame halves, text markers, padding, standardization) shows up here.

The command line is tested end to end on a second run, prepared by ``selfcross prepare-iemocap``
with tiny offline Hugging Face encoders for all three modalities (:mod:`hf_tiny`): ``selfcross
predict`` then builds those encoders itself from the run's ``features.json``, as a user's would.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from iemocap_tree import BASE_LINES, channel_mean_encoder
from selfcross.cli import main
from selfcross.config import ModelConfig, RunConfig, TrainConfig, apply_preset
from selfcross.features import AudioConfig, TextConfig, VideoConfig
from selfcross.folds import read_fold
from selfcross.labels import IEMOCAP7_CODES
from selfcross.prepare.iemocap import prepare_iemocap
from selfcross.prepare.options import FeatureOptions
from selfcross.serve.predict import Clip, Predictor
from selfcross.training import load_run, train_run
from selfcross.training.rundir import load_predictions

pytest.importorskip("av")

# Small but non-trivial settings: the long utterance (11.8 s) is cut in audio and video, the
# 32-px frame halves are upscaled to the crop, the [LAUGHTER] marker becomes a token.
AUDIO = AudioConfig(max_frames=300)
VIDEO = VideoConfig(max_frames=8, crop=48, encoder="ChannelMean", weights=None, feat_dim=None)
TEXT = TextConfig(max_tokens=12)
RTOL, ATOL = 1e-5, 1e-6


def _session1_clips(root):
    """Fold01's test utterances as a user would describe them from the raw release.

    Session 1 of the tree: F001 has no wav, M001 (xxx) and M003 (oth) are unused labels.
    The dialog ``Ses01F_impro01`` has the female actor (markers) on the left half.
    """
    dialog = "Ses01F_impro01"
    sdir = root / "Session1"
    clips = {}
    for line in BASE_LINES:
        if line.code not in IEMOCAP7_CODES or line.suffix == "F001":
            continue
        utt = f"{dialog}_{line.suffix}"
        clips[utt] = {
            "audio": sdir / "sentences" / "wav" / dialog / f"{utt}.wav",
            "video": sdir / "dialog" / "avi" / "DivX" / f"{dialog}.avi",
            "transcript": line.text,
            "video_side": "left" if line.suffix.startswith("F") else "right",
            "video_start": line.start,
            "video_end": line.end,
        }
    return clips


@pytest.fixture(scope="module")
def trained(iemocap_tree, tmp_path_factory):
    """(tree, data root, run folder, encoder): prepared tree + an improved-preset run on fold01."""
    base = tmp_path_factory.mktemp("predict_iemocap")
    encoder = channel_mean_encoder()
    out = base / "data"
    prepare_iemocap(iemocap_tree.root, out,
                    FeatureOptions(glove=iemocap_tree.glove, video_encoder=encoder, progress=False,
                                   audio_config=AUDIO, video_config=VIDEO, text_config=TEXT))
    _train(out / "fold01", base / "run")
    return iemocap_tree, out, base / "run", encoder


@pytest.fixture(scope="module")
def trained_hf(iemocap_tree, tmp_path_factory):
    """(tree, data root, run folder, encoder folders): ``selfcross prepare-iemocap`` with tiny
    hf: encoders for audio (wav2vec2), text (BERT) and video (ViT), then a run on fold01."""
    pytest.importorskip("transformers")
    import hf_tiny

    base = tmp_path_factory.mktemp("predict_iemocap_hf")
    encoders = {"audio": hf_tiny.tiny_speech(base / "wav2vec2"), "text": hf_tiny.tiny_text(base / "bert"),
                "video": hf_tiny.tiny_vision(base / "vit")}
    out = base / "data"
    assert main(["prepare-iemocap", str(iemocap_tree.root), str(out), "--no-progress",
                 "--audio-encoder", f"hf:{encoders['audio']}", "--text-encoder", f"hf:{encoders['text']}",
                 "--video-encoder", f"hf:{encoders['video']}"]) == 0
    # a livelier model than the other run's, so that wrong features move the logits well past the tolerance
    _train(out / "fold01", base / "run", max_epochs=6, patience=6, lr=0.02)
    return iemocap_tree, out, base / "run", encoders


def _train(fold_dir, run_dir, **train):
    """A short run (two epochs unless ``train`` says otherwise) of the improved preset's tri-modal
    self-attention model, standardized inputs."""
    train = {"max_epochs": 2, **train}
    config = RunConfig(model=ModelConfig(kind="self"),
                       train=TrainConfig(batch_size=16, device="cpu", num_threads=1, standardize=True,
                                         **train))
    apply_preset(config, "improved")
    config.train.standardize = True  # the standardizer is part of what prediction must reproduce
    train_run(config, fold_dir, run_dir, progress=False)


def _prepared_logits(run_dir, fold_dir):
    """Logits ``[N, K]`` of fold01's test rows from the prepared arrays, with the test's ids."""
    model, config, standardizer = load_run(run_dir)
    assert standardizer is not None
    split = read_fold(fold_dir).test
    mods = tuple(config.model.modalities)
    x, lengths = split.get_batch(np.arange(len(split)), mods)
    x = standardizer.transform(x, lengths)
    with torch.inference_mode():
        out = model(**{m: torch.from_numpy(np.ascontiguousarray(x[m])) for m in mods},
                    lengths={m: torch.from_numpy(np.asarray(lengths[m], np.int64)) for m in mods})
    return out.double().numpy(), list(split.ids), lengths


@pytest.mark.slow
def test_raw_clip_prediction_matches_prepared_arrays(trained):
    tree, data, run, encoder = trained
    ref, ids, ref_lengths = _prepared_logits(run, data / "fold01")
    clips = _session1_clips(tree.root)
    assert sorted(ids) == sorted(clips)  # the tree's description and the preparation agree
    predictor = Predictor(run, video_encoder=encoder)
    assert predictor.modalities == ("audio", "video", "text")
    assert predictor.feature_configs["audio"].max_frames == AUDIO.max_frames  # the run's settings
    for row, utt in enumerate(ids):
        out = predictor.predict(Clip(**clips[utt]))
        probs = np.array(list(out["probabilities"].values()))
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)
        assert np.all(probs >= 0)
        assert out["lengths"] == {m: int(ref_lengths[m][row]) for m in ("audio", "video", "text")}, utt
        np.testing.assert_allclose(out["logits"], ref[row], rtol=RTOL, atol=ATOL, err_msg=utt)
        assert out["top_class"] == predictor.class_names[int(np.argmax(ref[row]))]
    # the long utterance really exercised the cuts
    long_row = ids.index("Ses01F_impro01_M002")
    assert ref_lengths["audio"][long_row] == AUDIO.max_frames
    assert ref_lengths["video"][long_row] == VIDEO.max_frames


@pytest.mark.slow
def test_training_predictions_agree_with_raw_clip(trained):
    """The probabilities train_run saved for the test split equal a raw-clip prediction."""
    tree, _, run, encoder = trained
    saved = load_predictions(run)
    utt = "Ses01F_impro01_M000"  # right half, [LAUGHTER] marker
    row = [str(i) for i in saved["ids"]].index(utt)
    out = Predictor(run, video_encoder=encoder).predict(Clip(**_session1_clips(tree.root)[utt]))
    np.testing.assert_allclose(list(out["probabilities"].values()), saved["probs"][row], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_wrong_half_changes_the_prediction(trained):
    """Sanity: the comparison above can fail - the other frame half gives other logits."""
    tree, _, run, encoder = trained
    clip = dict(_session1_clips(tree.root)["Ses01F_impro01_F000"])
    predictor = Predictor(run, video_encoder=encoder)
    right = predictor.predict(Clip(**clip))["logits"]
    clip["video_side"] = "right"
    wrong = predictor.predict(Clip(**clip))["logits"]
    assert not np.allclose(right, wrong, rtol=RTOL, atol=ATOL)


def _cli_clip_args(clip):
    return ["--audio", str(clip["audio"]), "--video", str(clip["video"]), "--transcript", clip["transcript"],
            "--side", clip["video_side"], "--video-start", str(clip["video_start"]),
            "--video-end", str(clip["video_end"])]


@pytest.mark.slow
def test_cli_predict_builds_the_runs_hf_encoders(trained_hf, capsys):
    """``selfcross predict --json`` (no injected encoder) on raw clips of both frame halves gives
    the logits of the prepared arrays and of the Python API's ``Predictor(run)``: the command
    builds the encoders, layers, precision and text units named in the run's features.json."""
    tree, data, run, encoders = trained_hf
    predictor = Predictor(run)
    for m, folder in encoders.items():
        assert predictor.feature_configs[m].encoder == f"hf:{folder}"  # what the CLI must rebuild
    ref, ids, _ = _prepared_logits(run, data / "fold01")
    clips = _session1_clips(tree.root)
    for utt in ("Ses01F_impro01_F000", "Ses01F_impro01_M000"):  # left half, right half
        code = main(["predict", "--run", str(run), *_cli_clip_args(clips[utt]), "--json"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        out = json.loads(captured.out)
        assert set(out["probabilities"]) == set(read_fold(data / "fold01").class_names)
        assert sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(out["logits"], ref[ids.index(utt)], rtol=RTOL, atol=ATOL, err_msg=utt)
        api = predictor.predict(Clip(**clips[utt]))["logits"]
        np.testing.assert_allclose(out["logits"], api, rtol=RTOL, atol=ATOL, err_msg=utt)
        assert out["top_class"] == predictor.class_names[int(np.argmax(ref[ids.index(utt)]))]


@pytest.mark.slow
def test_cli_predict_manifest_of_raw_clips_with_hf_encoders(trained_hf, tmp_path, capsys):
    """``selfcross predict --manifest`` over every fold01 test utterance (spans and halves in the
    manifest's columns) writes the probabilities of the prepared arrays."""
    tree, data, run, _ = trained_hf
    ref, ids, _ = _prepared_logits(run, data / "fold01")
    clips = _session1_clips(tree.root)
    manifest = tmp_path / "clips.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "audio", "video", "transcript", "side", "video_start", "video_end"])
        for utt in ids:
            c = clips[utt]
            w.writerow([utt, c["audio"], c["video"], c["transcript"], c["video_side"], c["video_start"],
                        c["video_end"]])
    out_csv = tmp_path / "predictions.csv"
    code = main(["predict", "--run", str(run), "--manifest", str(manifest), "--out", str(out_csv)])
    assert code == 0, capsys.readouterr().err
    with open(out_csv, newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    names = read_fold(data / "fold01").class_names
    assert sorted(rows) == sorted(ids)
    for row, utt in enumerate(ids):
        z = np.exp(ref[row] - ref[row].max())
        assert rows[utt]["error"] == ""
        got = [float(rows[utt][f"p_{c}"]) for c in names]
        np.testing.assert_allclose(got, z / z.sum(), atol=2e-6, err_msg=utt)  # CSV keeps 6 decimals
