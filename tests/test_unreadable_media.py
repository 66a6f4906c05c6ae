"""Unreadable media in a manifest stop the preparation (one line, exit 2) unless
``--skip-unreadable``; silent and shorter-than-one-window clips are warned about on the console."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from selfcross.cli import main
from test_manifest import corpus, tone  # noqa: F401 - the fixture

ARGS = ["--folds", "2", "--modalities", "a", "--no-progress", "--max-audio-frames", "150"]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still declares the full length


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a wav file at all " * 40)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncate, _garbage, _empty], ids=["truncated", "garbage", "0-byte"])
def test_unreadable_clip_stops_with_one_line(corpus: Path, damage,  # noqa: F811
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = corpus / "clips" / "s2_u1.wav"
    damage(bad)
    rc = main(["prepare-manifest", str(corpus / "manifest.csv"), str(corpus / "root"), *ARGS])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert str(bad) in err and "s2_u1" in err and "--skip-unreadable" in err


def test_skip_unreadable_leaves_the_clip_out(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    _garbage(corpus / "clips" / "s2_u1.wav")
    rc = main(["prepare-manifest", str(corpus / "manifest.csv"), str(corpus / "root"), *ARGS,
               "--skip-unreadable"])
    assert rc == 0 and "23 utterances, 1 skipped" in capsys.readouterr().out
    assert "unreadable audio file" in (corpus / "root" / "prepare_report.md").read_text()


def test_silent_and_too_short_clips_are_warned_about(corpus: Path,  # noqa: F811
                                                     caplog: pytest.LogCaptureFixture,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    sf.write(corpus / "clips" / "s1_u0.wav", np.zeros(16000 // 2, dtype=np.float32), 16000)
    sf.write(corpus / "clips" / "s3_u3.wav", tone(0.6)[:100], 16000)  # 6 ms < one 25 ms window
    with caplog.at_level(logging.WARNING):
        rc = main(["prepare-manifest", str(corpus / "manifest.csv"), str(corpus / "root"), *ARGS])
    assert rc == 0
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert "s1_u0.wav" in warned and "every sample is zero" in warned
    assert "s3_u3.wav" in warned and "shorter than one 25 ms analysis window" in warned
