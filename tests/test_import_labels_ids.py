"""import-features: one-class binnings refused, learning options and rows kept printed, ids
written when the file has none; train refuses one class; explain addresses rows without ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from feature_files import write_mfn
from selfcross.cli import main
from tiny_runs import write_tiny_fold


def test_binning_every_score_into_one_class_is_an_error(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = write_mfn(tmp_path / "mfn")  # ratings 1..5: sentiment2 without --center says non-negative
    rc = main(["import-features", "mfn", str(tmp_path / "mfn"), str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    y = data["train"]["y"]
    assert rc == 2 and len(err.splitlines()) == 1
    assert "--labels sentiment2" in err and "'non-negative'" in err and "--center" in err
    assert f"{y.min():g}..{y.max():g}" in err
    assert not (tmp_path / "out" / "fold01").exists()


def test_import_prints_what_changes_learning_and_rows_kept(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = write_mfn(tmp_path / "mfn")
    rc = main(["import-features", "mfn", str(tmp_path / "mfn"), str(tmp_path / "out"), "--center", "3",
               "--labels", "sentiment2-non0"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "--labels sentiment2-non0: negative (< 0) vs positive (> 0); score 0 left out" in out
    assert "--center 3: 3 subtracted from every score before binning" in out
    for src, split in (("train", "train"), ("valid", "dev"), ("test", "test")):
        y = data[src]["y"]
        zero = int((y == 3).sum())
        kept = f"{split} {y.size - zero} of {y.size}" + (f" ({zero} left out: score 0)" if zero else "")
        assert kept in out


def test_ids_are_split_and_row_when_the_file_has_none(tmp_path: Path) -> None:
    data = write_mfn(tmp_path / "mfn")
    assert main(["import-features", "mfn", str(tmp_path / "mfn"), str(tmp_path / "out"), "--center", "3",
                 "--labels", "sentiment2-non0"]) == 0
    y = data["test"]["y"]
    ids = (tmp_path / "out" / "fold01" / "test_ids.txt").read_text().split()
    assert ids == [f"test_{i}" for i in range(y.size) if y[i] != 3]  # positions in the file's split


def test_train_refuses_a_training_split_with_one_class(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    fold = write_tiny_fold(tmp_path)
    np.save(fold / "train_label.npy", np.zeros_like(np.load(fold / "train_label.npy")))
    rc = main(["train", "--data", str(fold), "--out", str(tmp_path / "run"), "--model", "self",
               "--modalities", "a", "--max-epochs", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "the training split holds one class" in err
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_explain_on_a_fold_without_ids_says_how_to_address_rows(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    fold = write_tiny_fold(tmp_path)
    for s in ("train", "dev", "test"):
        (fold / f"{s}_ids.txt").unlink(missing_ok=True)
    assert main(["train", "--data", str(fold), "--out", str(tmp_path / "run"), "--model", "self",
                 "--modalities", "a", "--max-epochs", "1", "--no-progress", "--threads", "1"]) == 0
    capsys.readouterr()
    base = ["explain", "--run", str(tmp_path / "run"), "--data", str(fold), "--out", str(tmp_path / "x")]
    assert main([*base, "--ids", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no utterance ids" in err and "--ids test:0" in err
    assert main([*base, "--ids", "test:3"]) == 0
    assert (tmp_path / "x" / "test_3.png").is_file()
