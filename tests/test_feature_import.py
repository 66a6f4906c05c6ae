"""import-features: MMSA / MulT / MFN files in their published layouts -> a data root."""

from __future__ import annotations

import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from feature_files import WritesAFile, write_mfn, write_mmsa, write_mult
from selfcross.cli import main
from selfcross.errors import DataError
from selfcross.folds import read_fold
from selfcross.prepare import import_features
from selfcross.prepare.feature_import import detect_side, padding_runs, to_back_padding
from selfcross.sentiment import bin_scores

ICT_MMMO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ict-mmmo"
SPLITS = {"train": "train", "valid": "dev", "test": "test"}


def test_mmsa_unaligned_layout_keeps_lengths_scores_ids_and_feature_sizes(tmp_path):
    data = write_mmsa(tmp_path / "unaligned_50.pkl")
    result = import_features("mmsa", tmp_path / "unaligned_50.pkl", tmp_path / "root", trust_pickle=True)
    fold = read_fold(result.fold)
    assert fold.shapes == {"audio": (8, 5), "video": (6, 7), "text": (10, 16)}
    assert fold.class_names == ("negative", "non-negative")
    assert {m: p.source for m, p in result.padding.items()} == {
        "audio": "file", "video": "file", "text": "zero steps"}
    for src, split in SPLITS.items():
        part = data[src]
        np.testing.assert_array_equal(np.load(result.fold / f"{split}_audio_seqN.npy"), part["audio_lengths"])
        np.testing.assert_array_equal(np.load(result.fold / f"{split}_video_seqN.npy"),
                                      part["vision_lengths"])
        np.testing.assert_array_equal(np.load(result.fold / f"{split}_audio_mfcc.npy"), part["audio"])
        np.testing.assert_array_equal(np.load(result.fold / f"{split}_score.npy"), part["regression_labels"])
        np.testing.assert_array_equal(np.load(result.fold / f"{split}_label.npy"),
                                      (part["regression_labels"] >= 0).astype(int))
        assert getattr(fold, split).ids == list(part["id"])
    assert result.report.is_file()


def test_mmsa_sims_unimodal_labels_are_reported_not_used(tmp_path):
    write_mmsa(tmp_path / "unaligned_39.pkl", sims=True)
    result = import_features("mmsa", tmp_path / "unaligned_39.pkl", tmp_path / "root", trust_pickle=True,
                             labels="sentiment3")
    assert "regression_labels_A, regression_labels_T, regression_labels_V" in result.report.read_text()
    assert read_fold(result.fold).class_names == ("negative", "neutral", "positive")


def test_mult_sentiment_front_padding_is_detected_and_moved_to_the_back(tmp_path):
    data = write_mult(tmp_path / "mosi_data.pkl")
    result = import_features("mult", tmp_path / "mosi_data.pkl", tmp_path / "root", trust_pickle=True,
                             labels="sentiment7")
    assert {p.side for p in result.padding.values()} == {"front"}
    part = data["train"]
    video = part["vision"]
    lengths = (video != 0).any(axis=2).sum(axis=1)
    out = np.load(result.fold / "train_video.npy")
    np.testing.assert_array_equal(np.load(result.fold / "train_video_seqN.npy"), lengths)
    for i, ln in enumerate(lengths):
        np.testing.assert_array_equal(out[i, :ln], video[i, video.shape[1] - ln:])
        assert not out[i, ln:].any()
    audio = np.load(result.fold / "train_audio_mfcc.npy")
    assert np.isfinite(audio).all()  # the -inf value was set to 0, as MulT's loader does
    assert "-inf values set to 0" in result.report.read_text()
    scores = part["labels"].reshape(-1)
    np.testing.assert_array_equal(np.load(result.fold / "train_label.npy"),
                                  np.round(np.clip(scores, -3, 3)) + 3)
    assert read_fold(result.fold).train.ids[0] == "v0_0.0_1.5"


def test_mult_iemocap_one_hot_pairs_become_four_classes(tmp_path):
    write_mult(tmp_path / "iemocap_data.pkl", iemocap=True)
    result = import_features("mult", tmp_path / "iemocap_data.pkl", tmp_path / "root", trust_pickle=True)
    fold = read_fold(result.fold)
    assert fold.class_names == ("neutral", "happy", "sad", "angry")
    np.testing.assert_array_equal(fold.train.labels, np.arange(12) % 4)
    assert not (result.fold / "train_score.npy").exists()


def test_mfn_layout_front_padding_text_embeddings_and_centered_ratings(tmp_path):
    data = write_mfn(tmp_path / "mfn")
    result = import_features("mfn", tmp_path / "mfn", tmp_path / "root", center=3)
    fold = read_fold(result.fold)
    assert fold.shapes == {"audio": (7, 5), "video": (7, 3), "text": (7, 4)}
    assert {p.side for p in result.padding.values()} == {"front"}
    for src, split in SPLITS.items():
        np.testing.assert_array_equal(np.load(result.fold / f"{split}_audio_seqN.npy"), data[src]["lengths"])
        np.testing.assert_allclose(np.load(result.fold / f"{split}_score.npy"), data[src]["y"] - 3)


def test_mfn_modality_missing_from_a_split_is_left_out_and_reported(tmp_path):
    write_mfn(tmp_path / "mfn", text_splits=("valid", "test"))
    result = import_features("mfn", tmp_path / "mfn", tmp_path / "root", center=3)
    assert result.modalities == ("audio", "video")
    assert "text: files only for split(s) valid, test; not imported." in result.report.read_text()
    with pytest.raises(DataError, match="has no text features"):
        import_features("mfn", tmp_path / "mfn", tmp_path / "root2", modalities="avt")


def test_mfn_reads_the_real_ict_mmmo_release(tmp_path):
    result = import_features("mfn", ICT_MMMO, tmp_path / "mmmo", center=3, labels="sentiment2-non0")
    fold = read_fold(result.fold)
    assert fold.shapes == {"audio": (20, 74), "video": (20, 36)}
    assert {p.side for p in result.padding.values()} == {"front"}
    assert "text: files only for split(s) valid, test" in result.report.read_text()
    scores = {s: np.load(result.fold / f"{s}_score.npy") for s in ("train", "dev", "test")}
    assert all(np.isin(v * 2, np.arange(-4, 5)).all() and (v != 0).all() for v in scores.values())
    # 220 / 40 / 80 videos, of which 20 / 3 / 6 are rated 3.0 (score 0) and left out by Non0
    assert (len(fold.train), len(fold.dev), len(fold.test)) == (200, 37, 74)
    everything = read_fold(import_features("mfn", ICT_MMMO, tmp_path / "all", center=3).fold)
    assert (len(everything.train), len(everything.dev), len(everything.test)) == (220, 40, 80)


def test_padding_side_and_move_to_back():
    x = np.zeros((3, 5, 2))
    x[0, 2:] = 1  # front padding of 2
    x[1, 1:] = 1
    x[2, 0, 0] = 1
    x[2, 1:] = 2  # no padding
    lead, trail = padding_runs(x)
    assert lead.tolist() == [2, 1, 0] and trail.tolist() == [0, 0, 0]
    assert detect_side([x]) == ("front", 3, 0)
    out = to_back_padding(x, 5 - lead)
    assert (out[0, :3] == 1).all() and not out[0, 3:].any()
    np.testing.assert_array_equal(out[2], x[2])


def test_sentiment_binnings_follow_mmsa():
    s = np.array([-3.4, -2.5, -0.5, 0.0, 0.5, 1.5, 2.6])
    assert bin_scores(s, "sentiment7")[0].tolist() == [0, 1, 3, 3, 3, 5, 6]  # half to even, clipped
    assert bin_scores(s, "sentiment5")[0].tolist() == [0, 0, 2, 2, 2, 4, 4]
    assert bin_scores(s, "sentiment3")[0].tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert bin_scores(s, "sentiment2")[0].tolist() == [0, 0, 0, 1, 1, 1, 1]
    labels, keep = bin_scores(s, "sentiment2-non0")
    assert keep.tolist() == [True, True, True, False, True, True, True]
    assert labels[keep].tolist() == [0, 0, 0, 1, 1, 1]


# ------------------------------------------------------------------ pickles are untrusted
def test_pickle_is_refused_without_trust_pickle(tmp_path, capsys):
    write_mmsa(tmp_path / "aligned_50.pkl")
    rc = main(["import-features", "mmsa", str(tmp_path / "aligned_50.pkl"), str(tmp_path / "root")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--trust-pickle" in err and "aligned_50.pkl" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "root").exists()


def test_pickle_that_would_write_a_file_is_refused_even_when_trusted(tmp_path, capsys):
    target = tmp_path / "written_by_the_pickle.txt"
    data = write_mult(tmp_path / "mosi_data.pkl")
    data["train"]["payload"] = WritesAFile(str(target))
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(data))
    rc = main(["import-features", "mult", str(tmp_path / "evil.pkl"), str(tmp_path / "root"),
               "--trust-pickle"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "io.open" in err and "evil.pkl" in err and len(err.splitlines()) == 1
    assert not target.exists()
    assert not (tmp_path / "root").exists()
    pickle.loads((tmp_path / "evil.pkl").read_bytes())  # the plain unpickler does run it
    assert target.exists()


# ----------------------------------------------------------------------------- bad input
def _remove(key: str):
    def edit(data: dict) -> None:
        split, _, name = key.partition("/")
        del (data[split] if name else data)[name or split]
    return edit


def _set(split: str, key: str, fn):
    def edit(data: dict) -> None:
        data[split][key] = fn(data[split][key])
    return edit


def _nan(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[2, 1, 0] = np.nan
    return x


BAD = {
    "missing split": (_remove("valid"), "'valid'"),
    "missing key": (_remove("train/audio"), "'train/audio'"),
    "mismatched N": (_set("test", "vision", lambda x: x[:-1]), "'test/vision'"),
    "NaN features": (_set("train", "vision", _nan), "'train/vision'"),
    "feature sizes differ across splits": (_set("test", "text", lambda x: x[:, :, :5]), "'test/text'"),
    "labels of the wrong shape": (_set("valid", "labels",
                                       lambda y: np.repeat(y, 2, axis=1)), "'valid/labels'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_mult_input_is_one_line_naming_file_and_key_and_writes_nothing(tmp_path, capsys, case):
    edit, key = BAD[case]
    data = write_mult(tmp_path / "mosi_data.pkl")
    edit(data)
    (tmp_path / "mosi_data.pkl").write_bytes(pickle.dumps(data))
    rc = main(["import-features", "mult", str(tmp_path / "mosi_data.pkl"), str(tmp_path / "root"),
               "--trust-pickle"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "mosi_data.pkl" in err and key in err
    assert not (tmp_path / "root").exists()


def test_bad_mfn_labels_shape_and_missing_dataset_name_the_file(tmp_path, capsys):
    import h5py

    write_mfn(tmp_path / "mfn")
    with h5py.File(tmp_path / "mfn" / "y_test.h5", "w") as f:
        f.create_dataset("d1", data=np.zeros((8, 2)))
    rc = main(["import-features", "mfn", str(tmp_path / "mfn"), str(tmp_path / "root")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "y_test.h5" in err and "'d1'" in err and not (tmp_path / "root").exists()
    shutil.rmtree(tmp_path / "mfn")
    write_mfn(tmp_path / "mfn")
    with h5py.File(tmp_path / "mfn" / "video_valid.h5", "w") as f:
        f.create_dataset("features", data=np.zeros((6, 7, 3)))
    rc = main(["import-features", "mfn", str(tmp_path / "mfn"), str(tmp_path / "root")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "video_valid.h5" in err and "'d1' is missing" in err
    assert not (tmp_path / "root").exists()


def test_mfn_without_h5py_names_the_extra(tmp_path, monkeypatch, capsys):
    write_mfn(tmp_path / "mfn")
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ModuleNotFoundError
    rc = main(["import-features", "mfn", str(tmp_path / "mfn"), str(tmp_path / "root")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "pip install 'selfcross[hdf5]'" in err and not (tmp_path / "root").exists()
