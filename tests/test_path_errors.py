"""Paths of the wrong kind get one line naming them (exit 2), never a traceback or a wrong word."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from selfcross.cli import main
from selfcross.errors import DataError
from selfcross.features.audio import load_audio


def _manifest(tmp_path: Path, audio: str) -> Path:
    path = tmp_path / "clips.csv"
    path.write_text("id,label,speaker,audio\n" + "".join(
        f"u{i},{'ab'[i % 2]},s{i},{audio if i == 0 else f'c{i}.wav'}\n" for i in range(10)))
    for i in range(1, 10):
        sf.write(tmp_path / f"c{i}.wav", np.full(4000, 0.1 * i, dtype=np.float32), 16000)
    return path


def test_output_folder_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path, "c1.wav")
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc = main(["prepare-manifest", str(manifest), str(afile), "--folds", "2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"selfcross prepare-manifest: error: {afile}: is a file")


def test_folder_given_as_audio_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "adir").mkdir()
    with pytest.raises(DataError, match="is a folder, not an audio file"):
        load_audio(tmp_path / "adir")
    rc = main(["prepare-manifest", str(_manifest(tmp_path, "adir")), str(tmp_path / "out"), "--folds", "2",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "is a folder, not a file" in err and "does not exist" not in err


def test_csv_given_to_import_mmsa_is_not_called_a_pickle(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "scores.csv"
    csv.write_text("id,score\na,1.0\n")
    rc = main(["import-features", "mmsa", str(csv), str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "is a text file (CSV?), not a pickle" in err and "is a pickle;" not in err
