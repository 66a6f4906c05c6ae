"""Reader of processed folds: batches, lengths, dropping, memory maps, and every malformed input."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfcross.errors import DataError
from selfcross.folds import (
    fingerprint,
    layout,
    list_folds,
    read_fold,
    write_classes,
    write_embedding,
    write_split,
)
from selfcross.labels import IEMOCAP7

SIZES = {"train": 9, "dev": 5, "test": 6}
TA, FA, TV, FV, TT, V, FT = 8, 3, 4, 5, 6, 12, 4


def _split_arrays(rng: np.random.Generator, n: int, text_form: str, emb: np.ndarray) -> dict[str, np.ndarray]:
    a_len = rng.integers(1, TA + 1, n)
    v_len = rng.integers(1, TV + 1, n)
    t_len = rng.integers(1, TT + 1, n)
    audio = np.zeros((n, TA, FA), np.float32)
    video = np.zeros((n, TV, FV), np.float32)
    ids = np.zeros((n, TT), np.int64)
    for i in range(n):
        audio[i, : a_len[i]] = rng.normal(size=(a_len[i], FA)) + 0.1
        video[i, : v_len[i]] = rng.normal(size=(v_len[i], FV)) + 0.1
        ids[i, : t_len[i]] = rng.integers(1, V, t_len[i])
    out = {
        "audio": audio,
        "audio_seqN": a_len,
        "video": video,
        "video_seqN": v_len,
        "label": np.arange(n) % len(IEMOCAP7),
        "audio_prosody": rng.normal(size=(n, 7)).astype(np.float32),
    }
    if text_form == "ids":
        out["text_ids"] = ids
    else:
        out["text"] = emb[ids]
    return out


def make_fold(path: Path, text_form: str = "ids", seed: int = 0, with_ids: bool = True) -> Path:
    """A tiny valid fold: audio 8x3, video 4x5, text 6 tokens x 4-d (vocab 12)."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(V, FT)).astype(np.float32)
    emb[0] = 0.0
    for split, n in SIZES.items():
        arrays = _split_arrays(rng, n, text_form, emb)
        write_split(path, split, arrays, [f"{split}_{i}" for i in range(n)] if with_ids else None)
    if text_form == "ids":
        write_embedding(path, emb)
    return path


@pytest.fixture
def fold(tmp_path: Path) -> Path:
    return make_fold(tmp_path / "fold01")


def _err(fold_dir: Path, modalities=None) -> str:
    with pytest.raises(DataError) as e:
        read_fold(fold_dir, modalities)
    return str(e.value)


def _resave(path: Path, arr: np.ndarray) -> None:
    np.save(path, arr)


# ----------------------------------------------------------------------------- valid input
def test_reads_valid_fold(fold):
    f = read_fold(fold)
    assert f.modalities == ("audio", "video", "text")
    assert f.shapes == {"audio": (TA, FA), "video": (TV, FV), "text": (TT, FT)}
    assert f.class_names == IEMOCAP7.names
    assert f.text_form == "ids"
    assert [len(s) for s in f.splits.values()] == list(SIZES.values())
    x, lengths = f.train.get_batch(np.array([3, 0, 3]))
    assert x["audio"].shape == (3, TA, FA) and x["audio"].dtype == np.float32
    assert x["text"].shape == (3, TT, FT) and x["text"].dtype == np.float32
    assert all(v.dtype == np.int64 and v.shape == (3,) for v in lengths.values())
    np.testing.assert_array_equal(x["audio"][0], x["audio"][2])
    assert f.train.ids[:2] == ["train_0", "train_1"]
    assert f.train.prosody is not None and f.train.prosody.shape == (SIZES["train"], 7)


def test_arrays_are_memory_mapped(fold):
    f = read_fold(fold)
    assert isinstance(f.train._arrays["audio"], np.memmap)
    assert isinstance(f.train._arrays["video"], np.memmap)
    assert isinstance(f.train._text_ids, np.memmap)


def test_lengths_from_files(fold):
    f = read_fold(fold)
    ids = np.load(fold / "dev_nlp_trans.npy")
    seq = np.load(fold / "dev_audio_seqN.npy")
    _, lengths = f.dev.get_batch(np.arange(len(f.dev)))
    np.testing.assert_array_equal(lengths["text"], (ids != 0).sum(1))
    np.testing.assert_array_equal(lengths["audio"], seq)


def test_lengths_inferred_without_seqn(fold):
    expected = np.load(fold / "test_audio_seqN.npy")
    for s in layout.SPLITS:
        (fold / layout.split_file(s, "audio_seqN")).unlink()
    f = read_fold(fold, "a")
    np.testing.assert_array_equal(f.test.lengths["audio"], expected)


def test_ids_and_vectors_give_identical_batches(tmp_path):
    a = read_fold(make_fold(tmp_path / "ids", "ids", seed=3))
    b = read_fold(make_fold(tmp_path / "vec", "vectors", seed=3))
    assert (a.text_form, b.text_form) == ("ids", "vectors")
    idx = np.array([4, 1, 1, 0])
    xa, la = a.train.get_batch(idx)
    xb, lb = b.train.get_batch(idx)
    for m in ("audio", "video", "text"):
        np.testing.assert_array_equal(xa[m], xb[m])
        np.testing.assert_array_equal(la[m], lb[m])


def test_modality_subset(fold):
    f = read_fold(fold, "at")
    assert f.modalities == ("audio", "text")
    x, _ = f.test.get_batch([0])
    assert set(x) == {"audio", "text"}
    with pytest.raises(DataError, match="not read"):
        f.test.get_batch([0], "v")


def test_zero_video_utterances_dropped_and_reported(fold, caplog):
    seq = np.load(fold / "train_video_seqN.npy")
    seq[[0, 4]] = 0
    _resave(fold / "train_video_seqN.npy", seq)
    with caplog.at_level(logging.WARNING, logger="selfcross.folds"):
        f = read_fold(fold, "atv")
    assert read_fold(fold, "at").train.n_dropped == 0  # kept when video is not read
    assert f.train.n_dropped == 2
    assert len(f.train) == SIZES["train"] - 2
    assert f.train.dropped_ids == ["train_0", "train_4"]
    assert "train_0" not in f.train.ids
    np.testing.assert_array_equal(f.train.labels, (np.arange(SIZES["train"]) % 7)[[1, 2, 3, 5, 6, 7, 8]])
    assert f.dev.n_dropped == 0
    assert "dropped 2 utterance(s)" in caplog.text
    x, _ = f.train.get_batch([0])
    np.testing.assert_array_equal(x["audio"][0], np.load(fold / "train_audio_mfcc.npy")[1])


def test_load_all_matches_memory_mapped(fold):
    f = read_fold(fold)
    idx = np.array([2, 0, 5])
    before = f.train.get_batch(idx)
    f.train.load_all()
    assert set(f.train._ram) == {"audio", "video", "text"}
    after = f.train.get_batch(idx)
    for m in before[0]:
        np.testing.assert_array_equal(before[0][m], after[0][m])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(idx=st.lists(st.integers(0, SIZES["train"] - 1), min_size=0, max_size=12))
def test_batch_rows_follow_index(fold, idx):
    f = read_fold(fold, check_values=False)
    audio = np.load(fold / "train_audio_mfcc.npy")
    x, lengths = f.train.get_batch(np.asarray(idx, dtype=np.int64))
    assert x["audio"].shape[0] == len(idx) == lengths["video"].shape[0]
    np.testing.assert_array_equal(x["audio"], audio[np.asarray(idx, dtype=np.int64)])


def test_batch_index_out_of_range(fold):
    f = read_fold(fold)
    with pytest.raises(IndexError):
        f.dev.get_batch([SIZES["dev"]])
    with pytest.raises(IndexError):
        f.dev.get_batch([-1])


def test_classes_txt_in_data_root(tmp_path):
    make_fold(tmp_path / "fold01")
    names = ["a", "b", "c", "d", "e", "f", "g"]
    write_classes(tmp_path, names)
    assert read_fold(tmp_path / "fold01").class_names == tuple(names)


def test_fingerprint_stable_under_copy_and_sensitive_to_content(tmp_path, fold):
    fp = fingerprint(fold)
    copy = tmp_path / "copy"
    shutil.copytree(fold, copy)
    assert fingerprint(copy) == fp
    lab = np.load(copy / "test_label.npy")
    lab[0] = (lab[0] + 1) % 7
    _resave(copy / "test_label.npy", lab)
    assert fingerprint(copy) != fp


def test_list_folds(tmp_path):
    for k in (1, 2, 3):
        (tmp_path / layout.fold_name(k)).mkdir()
    (tmp_path / "notes").mkdir()
    assert [p.name for p in list_folds(tmp_path)] == ["fold01", "fold02", "fold03"]
    shutil.rmtree(tmp_path / "fold02")
    with pytest.raises(DataError, match="fold02 is missing"):
        list_folds(tmp_path)
    with pytest.raises(DataError, match="no fold folders"):
        list_folds(tmp_path / "notes")


# ------------------------------------------------------------------------- malformed input
def test_missing_label_file(fold):
    (fold / "dev_label.npy").unlink()
    assert "dev_label.npy" in _err(fold)


def test_missing_requested_modality(fold):
    for s in layout.SPLITS:
        (fold / layout.split_file(s, "video")).unlink()
    assert read_fold(fold).modalities == ("audio", "text")
    msg = _err(fold, "atv")
    assert "train_video.npy" in msg and "requested" in msg


def test_modality_missing_from_one_split(fold):
    (fold / "test_audio_mfcc.npy").unlink()
    assert "test_audio_mfcc.npy" in _err(fold)


def test_missing_embedding(fold):
    (fold / "W_embedding.npy").unlink()
    assert "W_embedding.npy" in _err(fold, "t")


def test_first_dimensions_disagree(fold):
    a = np.load(fold / "dev_audio_mfcc.npy")
    _resave(fold / "dev_audio_mfcc.npy", np.concatenate([a, a[:1]]))
    msg = _err(fold)
    assert "dev_audio_mfcc.npy" in msg and "rows" in msg


def test_seqn_rows_disagree(fold):
    _resave(fold / "dev_video_seqN.npy", np.ones(SIZES["dev"] + 2, np.int64))
    assert "dev_video_seqN.npy" in _err(fold)


def test_negative_seqn(fold):
    s = np.load(fold / "dev_audio_seqN.npy")
    s[1] = -3
    _resave(fold / "dev_audio_seqN.npy", s)
    assert "dev_audio_seqN.npy" in _err(fold)


def test_wrong_rank(fold):
    _resave(fold / "train_video.npy", np.zeros((SIZES["train"], TV * FV), np.float32))
    msg = _err(fold)
    assert "train_video.npy" in msg and "3-D" in msg


def test_feature_size_differs_between_splits(fold):
    _resave(fold / "test_audio_mfcc.npy", np.ones((SIZES["test"], TA, FA + 1), np.float32))
    msg = _err(fold)
    assert "test_audio_mfcc.npy" in msg and "train" in msg


def test_ids_exceed_embedding_rows(fold):
    ids = np.load(fold / "train_nlp_trans.npy")
    ids[2, 0] = V + 5
    _resave(fold / "train_nlp_trans.npy", ids)
    msg = _err(fold)
    assert "train_nlp_trans.npy" in msg and str(V + 5) in msg


def test_non_integer_ids(fold):
    _resave(fold / "train_nlp_trans.npy", np.load(fold / "train_nlp_trans.npy").astype(np.float32))
    assert "train_nlp_trans.npy" in _err(fold)


@pytest.mark.parametrize("bad", [7, -1])
def test_labels_out_of_range(fold, bad):
    lab = np.load(fold / "test_label.npy")
    lab[1] = bad
    _resave(fold / "test_label.npy", lab)
    msg = _err(fold)
    assert "test_label.npy" in msg and "out of range" in msg


def test_labels_out_of_range_for_classes_txt(fold):
    write_classes(fold, ["x", "y", "z"])
    assert "train_label.npy" in _err(fold)


def test_non_integer_labels(fold):
    _resave(fold / "dev_label.npy", np.full(SIZES["dev"], 1.5))
    msg = _err(fold)
    assert "dev_label.npy" in msg and "integer" in msg


def test_integral_float_labels_accepted(fold):
    _resave(fold / "dev_label.npy", np.load(fold / "dev_label.npy").astype(np.float64))
    assert read_fold(fold).dev.labels.dtype == np.int64


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_inf_values(fold, value):
    a = np.load(fold / "dev_audio_mfcc.npy")
    a[3, 1, 0] = value
    _resave(fold / "dev_audio_mfcc.npy", a)
    msg = _err(fold)
    assert "dev_audio_mfcc.npy" in msg and "NaN or inf" in msg and "row 3" in msg
    read_fold(fold, check_values=False)  # the check can be skipped for checked data


def test_nan_in_embedding(fold):
    e = np.load(fold / "W_embedding.npy")
    e[3, 1] = np.nan
    _resave(fold / "W_embedding.npy", e)
    assert "W_embedding.npy" in _err(fold)


def test_nan_found_beyond_first_chunk(fold, monkeypatch):
    import selfcross.folds.reader as reader

    monkeypatch.setattr(reader, "SCAN_CHUNK_BYTES", 1)  # one row per chunk
    a = np.load(fold / "train_video.npy")
    a[-1, 0, 0] = np.nan
    _resave(fold / "train_video.npy", a)
    assert f"row {SIZES['train'] - 1}" in _err(fold)


def test_empty_split(fold):
    _resave(fold / "dev_label.npy", np.zeros(0, np.int64))
    msg = _err(fold)
    assert "dev_label.npy" in msg and "empty" in msg


def test_split_empty_after_drop(fold):
    _resave(fold / "test_video_seqN.npy", np.zeros(SIZES["test"], np.int64))
    msg = _err(fold)
    assert "test_video_seqN.npy" in msg and "empty" in msg


def test_truncated_npy(fold):
    p = fold / "train_audio_mfcc.npy"
    p.write_bytes(p.read_bytes()[:-40])
    msg = _err(fold)
    assert "train_audio_mfcc.npy" in msg and "truncated" in msg


@pytest.mark.parametrize("content", [b"", b"this is not an npy file at all", b"\x93NUMPY\x01\x00garbage"])
def test_garbage_npy(fold, content):
    (fold / "test_video.npy").write_bytes(content)
    assert "test_video.npy" in _err(fold)


def test_pickled_object_array(fold):
    np.save(fold / "train_label.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    assert "train_label.npy" in _err(fold)


def test_ids_txt_line_count(fold):
    (fold / "dev_ids.txt").write_text("only\ntwo\n")
    msg = _err(fold)
    assert "dev_ids.txt" in msg and "2 lines" in msg


def test_empty_classes_txt(fold):
    (fold / "classes.txt").write_text("\n\n")
    assert "classes.txt" in _err(fold)


def test_no_modalities(tmp_path):
    d = tmp_path / "fold01"
    for s in layout.SPLITS:
        write_split(d, s, {"label": np.zeros(3, np.int64)})
    assert "no modality files" in _err(d)


def test_not_a_folder(tmp_path):
    assert "no such fold folder" in _err(tmp_path / "nope")
