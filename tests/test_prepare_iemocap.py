"""prepare-iemocap end to end on the miniature IEMOCAP tree (tests/iemocap_tree.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from iemocap_tree import channel_mean_encoder
from selfcross.cli import main
from selfcross.errors import DataError
from selfcross.folds import list_folds, read_fold
from selfcross.labels import IEMOCAP7, IEMOCAP7_CODES
from selfcross.prepare.iemocap import prepare_iemocap, scan_iemocap, speaker_of
from selfcross.prepare.options import FeatureOptions
from selfcross.prepare.pipeline import count_extractions

SEVEN = set(IEMOCAP7_CODES)
CODE_TO_NAME = dict(zip(IEMOCAP7_CODES, IEMOCAP7.names))


@pytest.fixture(scope="module")
def prepared(iemocap_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "root"
    encoder = channel_mean_encoder()
    result = prepare_iemocap(iemocap_tree.root, out,
                             FeatureOptions(glove=iemocap_tree.glove, video_encoder=encoder, progress=False))
    return iemocap_tree, result, out, encoder


def _all_ids(fold):
    return {s: list(getattr(fold, s).ids) for s in ("train", "dev", "test")}


def test_reader_accepts_every_fold_with_paper_shapes(prepared):
    tree, result, out, _ = prepared
    folds = list_folds(out)
    assert [p.name for p in folds] == ["fold01", "fold02", "fold03"]  # one per session present
    for p in folds:
        fold = read_fold(p)
        assert fold.class_names == IEMOCAP7.names
        assert fold.modalities == ("audio", "video", "text")
        assert fold.shapes["audio"] == (1000, 120)
        assert fold.shapes["video"] == (32, 3)  # channel-mean encoder: 3 features
        assert fold.shapes["text"] == (128, 300)
        for split in (fold.train, fold.dev, fold.test):
            assert len(split) > 0
            x, lengths = split.get_batch(np.arange(len(split)), fold.modalities)
            assert x["audio"].shape == (len(split), 1000, 120)
            assert np.all(lengths["audio"] >= 1) and np.all(lengths["audio"] <= 1000)
            assert np.all(lengths["video"] >= 1) and np.all(lengths["video"] <= 32)
            # padding is zero past the valid length
            for i, n in enumerate(lengths["audio"]):
                assert not np.any(x["audio"][i, n:])


def test_labels_and_fold_membership(prepared):
    tree, result, out, _ = prepared
    expected = tree.kept(SEVEN)
    assert sorted(result.kept) == expected
    tested = []
    for k, p in enumerate(list_folds(out), start=1):
        fold = read_fold(p)
        ids = _all_ids(fold)
        assert sorted(sum(ids.values(), [])) == expected  # every kept utterance in one split
        assert all(u.startswith(f"Ses{k:02d}") for u in ids["test"])  # fold k tests session k
        assert not any(u.startswith(f"Ses{k:02d}") for u in ids["train"] + ids["dev"])
        for split in ("train", "dev", "test"):
            s = getattr(fold, split)
            names = [fold.class_names[i] for i in s.labels]
            assert names == [CODE_TO_NAME[tree.labels[u]] for u in s.ids]
        tested += ids["test"]
    assert sorted(tested) == expected


def test_no_speaker_in_two_splits_of_a_fold(prepared):
    _, result, out, _ = prepared
    for p, plan in zip(list_folds(out), result.folds):
        fold = read_fold(p)
        spk = {s: {speaker_of(u) for u in getattr(fold, s).ids} for s in ("train", "dev", "test")}
        assert not spk["train"] & spk["test"]
        assert not spk["dev"] & spk["test"]
        assert not spk["train"] & spk["dev"]
        assert spk["dev"] == set(plan.dev_speakers)


def test_long_utterance_is_cut_to_1000_frames(prepared):
    _, _, out, _ = prepared
    fold = read_fold(out / "fold01")
    i = fold.test.ids.index("Ses01F_impro01_M002")  # 11.8 s
    _, lengths = fold.test.get_batch(np.array([i]), ("audio", "video"))
    assert lengths["audio"][0] == 1000
    assert lengths["video"][0] == 32  # 3 frames/s over 11.8 s -> capped at 32


def test_video_half_follows_the_speaker(prepared):
    # markers-left: the dialog letter (F) names the actor on the left (red half), M is right (blue)
    _, _, out, _ = prepared
    fold = read_fold(out / "fold01")
    x, lengths = fold.test.get_batch(np.arange(len(fold.test)), ("video",))
    for i, u in enumerate(fold.test.ids):
        rgb = x["video"][i, : lengths["video"][i]].mean(axis=0)
        if speaker_of(u).endswith("F"):
            assert rgb[0] > rgb[2], u
        else:
            assert rgb[2] > rgb[0], u


def test_text_ids_vocab_and_embedding(prepared):
    _, _, out, _ = prepared
    vocab = (out / "vocab.txt").read_text().split("\n")[:-1]
    assert vocab[:2] == ["<pad>", "<unk>"]
    assert "<laughter>" in vocab  # the [LAUGHTER] marker became a token
    fold = read_fold(out / "fold01")
    emb = np.load(out / "fold01" / "W_embedding.npy")
    assert emb.shape == (len(vocab), 300)
    ids = np.load(out / "fold01" / "test_nlp_trans.npy")
    row = ids[fold.test.ids.index("Ses01F_impro01_M000")]
    words = [vocab[i] for i in row if i]
    assert words == ["do", "you", "have", "your", "forms", "<laughter>"]
    assert (out / "classes.txt").read_text().split() == list(IEMOCAP7.names)
    import json

    feats = json.loads((out / "features.json").read_text())
    assert set(feats) == {"audio", "video", "text"}
    assert feats["text"]["embedding_dim"] == 300


def test_skip_report(prepared):
    tree, result, out, _ = prepared
    skips = {s.id: s.reason for s in result.skipped}
    for utt, reason in tree.expected_skips.items():
        assert skips[utt] == reason, utt
    for utt, code in tree.labels.items():
        if code not in SEVEN:
            assert skips[utt] == "unused label"
    assert skips["Ses01F_impro01_MXX0"] == "transcript for an unknown utterance"
    report = (out / "prepare_report.md").read_text()
    for reason in set(tree.expected_skips.values()) | {"unused label", "transcript for an unknown utterance"}:
        assert f"| {reason} |" in report
    assert "Ses02F_impro01_F000" in report
    assert "3 folds instead of the paper's 5" in report
    # counts per class x session: angry is in every session once
    assert "| angry | 1 | 1 | 1 | 3 |" in report


def test_malformed_line_reported_with_file_and_line(prepared):
    tree, result, out, _ = prepared
    path, line = tree.malformed
    assert any(p.path == str(path) and p.line == line for p in result.problems)
    assert f"{path}:{line}" in (out / "prepare_report.md").read_text()


def test_strict_stops_at_the_malformed_line(iemocap_tree, tmp_path):
    path, line = iemocap_tree.malformed
    with pytest.raises(DataError, match=f"{path.name}:{line}"):
        prepare_iemocap(iemocap_tree.root, tmp_path / "out",
                        FeatureOptions(glove=iemocap_tree.glove, video_encoder="none", progress=False),
                        strict=True)
    assert not (tmp_path / "out").exists()  # nothing extracted before the check


def test_second_run_reuses_the_cache(prepared):
    tree, first, out, encoder = prepared
    before = {p: np.load(p) for p in sorted((out / "fold02").glob("*.npy"))}
    again = prepare_iemocap(tree.root, out,
                            FeatureOptions(glove=tree.glove, video_encoder=encoder, progress=False))
    # only the unreadable wav is retried (failures are not cached); video is all reused
    assert again.cache["video"] == {"hits": first.cache["video"]["computed"], "computed": 0}
    assert again.cache["audio"]["computed"] == 1
    assert count_extractions(again) == 1
    assert sorted(again.kept) == sorted(first.kept)
    for p, a in before.items():
        np.testing.assert_array_equal(np.load(p), a)


def test_changed_config_is_not_served_from_a_stale_cache(prepared, tmp_path):
    from selfcross.features.audio import AudioConfig

    tree, first, out, _ = prepared
    work = tmp_path / "root"
    shutil.copytree(out, work)
    res = prepare_iemocap(tree.root, work,
                          FeatureOptions(glove=tree.glove, video_encoder="none", progress=False,
                                         audio_config=AudioConfig(max_frames=200)))
    # every audio file is extracted again; one more than before: without video, the utterance
    # whose video span is outside the dialog video is no longer skipped
    assert res.cache["audio"] == {"hits": 0, "computed": first.cache["audio"]["computed"] + 1}
    assert "Ses02F_impro01_M003" in res.kept
    fold = read_fold(work / "fold01")
    assert fold.modalities == ("audio", "text")  # --video-encoder none: no video written
    assert fold.shapes["audio"] == (200, 120)
    assert not (work / "fold01" / "train_video.npy").exists()


def test_cli_with_workers_matches_in_process_features(prepared, tmp_path, capsys):
    tree, _, out, _ = prepared
    work = tmp_path / "cli"
    rc = main(["prepare-iemocap", str(tree.root), str(work), "--glove", str(tree.glove),
               "--video-encoder", "none", "--workers", "2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert "wrote 3 folds" in capsys.readouterr().out
    a = np.load(work / "fold02" / "test_audio_mfcc.npy")
    b = np.load(out / "fold02" / "test_audio_mfcc.npy")
    ids_a = (work / "fold02" / "test_ids.txt").read_text().split()
    ids_b = (out / "fold02" / "test_ids.txt").read_text().split()
    common = [u for u in ids_a if u in ids_b]  # without video, the span check skips nothing
    assert common == ids_b
    for u in common:
        np.testing.assert_allclose(a[ids_a.index(u)], b[ids_b.index(u)], rtol=1e-5, atol=1e-5)


def test_cli_errors_are_one_line(tmp_path, capsys):
    rc = main(["prepare-iemocap", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--glove", "g.txt"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


def test_four_classes_merge_happy_and_excited(iemocap_tree):
    scan = scan_iemocap(iemocap_tree.root, labels="four")
    assert scan.class_set.names == ("angry", "happy", "sad", "neutral")
    by_id = {r.id: r.label for r in scan.records}
    assert by_id["Ses01F_impro01_F002"] == "happy"  # exc
    assert by_id["Ses01F_impro01_M002"] == "happy"  # hap
    skipped = {s.id: (s.reason, s.detail) for s in scan.skipped}
    assert skipped["Ses01F_impro01_F003"] == ("unused label", "fru")
    assert skipped["Ses03F_impro01_M001"] == ("unused label", "sur")


def test_tree_speech_is_espeak_when_installed(iemocap_tree):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: the tree uses generated waveforms")
    assert iemocap_tree.speech == "espeak-ng"


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        scan_iemocap(tmp_path / "absent")
    with pytest.raises(DataError, match="no Session1..Session5"):
        scan_iemocap(tmp_path)


def test_paths_point_into_the_release(iemocap_tree):
    scan = scan_iemocap(iemocap_tree.root)
    r = next(r for r in scan.records if r.id == "Ses02F_impro01_M000")
    assert r.audio == Path(iemocap_tree.root, "Session2/sentences/wav/Ses02F_impro01/Ses02F_impro01_M000.wav")
    assert r.video == Path(iemocap_tree.root, "Session2/dialog/avi/DivX/Ses02F_impro01.avi")
    assert r.video_span == (3.0, 4.8)
    assert (r.speaker, r.group, r.video_side) == ("Ses02M", "Ses02", "right")
