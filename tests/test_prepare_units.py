"""Fast unit tests of the preparation machinery: folds, cache keys, IEMOCAP line parsing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfcross.errors import ConfigError, DataError
from selfcross.prepare.iemocap import (
    parse_emo_evaluation,
    parse_transcription,
    scan_iemocap,
    speaker_of,
    video_side,
)
from selfcross.prepare.pipeline import UtteranceRecord, cache_key, encoder_identity, plan_group_folds


def _records(spec: list[tuple[int, int, int]]) -> list[UtteranceRecord]:
    """``(group, speaker in group, utterances)`` -> records."""
    out = []
    for g, s, n in spec:
        for i in range(n):
            out.append(UtteranceRecord(id=f"g{g}s{s}u{i}", label="a", speaker=f"g{g}s{s}", group=f"G{g}"))
    return out


@st.composite
def corpora(draw):
    n_groups = draw(st.integers(2, 5))
    spec = []
    for g in range(n_groups):
        for s in range(draw(st.integers(1, 3))):
            spec.append((g, s, draw(st.integers(1, 12))))
    return spec


@settings(max_examples=60, deadline=None)
@given(spec=corpora(), frac=st.sampled_from([0.05, 0.1, 0.2, 0.5]))
def test_group_folds_are_speaker_independent_partitions(spec, frac):
    records = _records(spec)
    speakers_per_group = Counter(g for g, _, _ in spec)
    try:
        plans = plan_group_folds(records, dev_fraction=frac)
    except DataError as e:
        # only possible when some fold's training groups hold a single speaker
        assert "at least two" in str(e)
        total = sum(speakers_per_group.values())
        assert any(total - n < 2 for n in speakers_per_group.values())
        return
    by_id = {r.id: r for r in records}
    groups = sorted({r.group for r in records})
    assert len(plans) == len(groups)
    for k, plan in enumerate(plans):
        assert plan.test_groups == [groups[k]]
        assert sorted(plan.train + plan.dev + plan.test) == sorted(by_id)
        spk = {name: {by_id[i].speaker for i in getattr(plan, name)} for name in ("train", "dev", "test")}
        assert not spk["train"] & spk["test"] and not spk["dev"] & spk["test"]
        assert not spk["train"] & spk["dev"]
        assert plan.dev and plan.train
        assert set(plan.dev_speakers) == spk["dev"]
        assert {by_id[i].group for i in plan.test} == {groups[k]}
        pool = len(plan.train) + len(plan.dev)
        # dev reaches the fraction unless only one training speaker would be left
        assert len(plan.dev) >= frac * pool or len(spk["train"]) == 1


def test_iemocap_like_folds_hold_out_one_speaker():
    records = _records([(g, s, 100) for g in range(5) for s in range(2)])
    plans = plan_group_folds(records, dev_fraction=0.1)
    assert [len(p.dev_speakers) for p in plans] == [1] * 5
    # one speaker of the next session, F and M alternating: the held-out speaker rotates
    assert [p.dev_speakers for p in plans] == [["g1s0"], ["g2s1"], ["g3s0"], ["g4s1"], ["g0s0"]]


def test_speaker_in_two_groups_is_an_error():
    records = _records([(0, 0, 2), (1, 0, 2), (1, 1, 2)])
    records.append(UtteranceRecord(id="x", label="a", speaker="g0s0", group="G1"))
    with pytest.raises(DataError, match="g0s0"):
        plan_group_folds(records)


def test_one_group_is_an_error():
    with pytest.raises(DataError, match="at least two groups"):
        plan_group_folds(_records([(0, 0, 3), (0, 1, 3)]))


def test_cache_key_changes_with_config_and_encoder():
    torch = pytest.importorskip("torch")
    a = cache_key("audio", {"max_frames": 1000})
    assert a == cache_key("audio", {"max_frames": 1000})
    assert a != cache_key("audio", {"max_frames": 999})
    torch.manual_seed(0)
    e1 = torch.nn.Linear(2, 2)
    e2 = torch.nn.Linear(2, 2)
    assert encoder_identity(e1) != encoder_identity(e2)  # same class, other weights
    assert cache_key("video", {}, encoder_identity(e1)) != cache_key("video", {}, encoder_identity(e2))


def test_speaker_and_side_mapping():
    assert speaker_of("Ses01F_impro01_M003") == "Ses01M"
    assert speaker_of("Ses05M_script02_2_F011") == "Ses05F"
    assert video_side("Ses01F_impro01_F000") == "left"  # F wears the markers in a Ses01F dialog
    assert video_side("Ses01F_impro01_M000") == "right"
    assert video_side("Ses03M_script01_1_M000") == "left"
    assert video_side("Ses03M_script01_1_F000", "markers-right") == "left"
    assert video_side("Ses03M_script01_1_F000", "full") == "full"
    with pytest.raises(ConfigError):
        video_side("Ses01F_impro01_F000", "middle")
    with pytest.raises(ValueError):
        speaker_of("not_an_id")


EMO = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
A-E3:\tval 3; act 2; dom  2;\t()

[10.0 - 9.0]\tSes01F_impro01_M000\tang\t[1.0, 4.0, 4.0]
[11.0 - 12.0]\tSes01F_impro02_M001\tang\t[1.0, 4.0, 4.0]
[12.0 - 13.0] Ses01F_impro01_M002 sad
[13.0 - 14.5]\tSes01F_impro01_F001\tXXX\t[2.5, 2.5, 2.5]
"""


def test_emo_evaluation_lines(tmp_path):
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text(EMO)
    problems = []
    entries = parse_emo_evaluation(path, problems)
    assert [(e.utt, e.start, e.end, e.code) for e in entries] == [
        ("Ses01F_impro01_F000", 6.2901, 8.2357, "neu"),
        ("Ses01F_impro01_F001", 13.0, 14.5, "xxx"),
    ]
    assert [(p.line, p.path) for p in problems] == [(7, str(path)), (8, str(path)), (9, str(path))]
    assert "ends" in problems[0].message and "does not belong" in problems[1].message
    with pytest.raises(DataError, match=r"Ses01F_impro01.txt:7"):
        parse_emo_evaluation(path, [], strict=True)


def test_transcription_lines(tmp_path):
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text(
        "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me: sir.\n"
        "Ses01F_impro01_M000 [008.0-009.0]: [LAUGHTER] Yes.\n"
        "\n"
        "this line has no id\n"
    )
    problems = []
    out = parse_transcription(path, problems)
    assert out == {"Ses01F_impro01_F000": "Excuse me: sir.", "Ses01F_impro01_M000": "[LAUGHTER] Yes."}
    assert [p.line for p in problems] == [4]


def test_unreadable_annotation_file_is_reported_not_fatal(iemocap_tree, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(iemocap_tree.root / "Session1" / "dialog", root / "Session1" / "dialog")
    shutil.copytree(iemocap_tree.root / "Session2" / "dialog", root / "Session2" / "dialog")
    bad = root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    bad.write_bytes(b"\xff\xfe\x00 not utf-8 \xc3")
    scan = scan_iemocap(root)
    assert any(p.path == str(bad) and "cannot read" in p.message for p in scan.problems)
    assert {r.group for r in scan.records} == {"Ses02"}  # the other session is still read
    with pytest.raises(DataError, match="cannot read"):
        scan_iemocap(root, strict=True)
    assert Path(scan.records[0].audio).name.endswith(".wav")
