"""CLI: make-synthetic and validate-data (summary, and one-line errors with exit status 2)."""

from __future__ import annotations

import numpy as np

from selfcross.cli import main
from selfcross.folds import layout


def test_make_synthetic_then_validate(tmp_path, capsys):
    root = tmp_path / "syn"
    assert main(["make-synthetic", str(root), "--seed", "3", "--folds", "2"]) == 0
    assert [p.name for p in sorted(root.glob("fold*"))] == ["fold01", "fold02"]
    capsys.readouterr()
    assert main(["validate-data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "ok: 2 fold(s) valid" in out
    assert "surprised" in out and "dropped" in out and "audio 50x20" in out
    assert main(["validate-data", str(root / "fold02"), "--modalities", "at"]) == 0
    assert "ok: 1 fold(s) valid" in capsys.readouterr().out


def test_validate_reports_bad_file_in_one_line(tmp_path, capsys):
    root = tmp_path / "syn"
    main(["make-synthetic", str(root), "--folds", "1"])
    capsys.readouterr()
    p = root / "fold01" / layout.split_file("dev", "label")
    lab = np.load(p)
    lab[0] = 9
    np.save(p, lab)
    assert main(["validate-data", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("selfcross validate-data: error:")
    assert "dev_label.npy" in err[-1] and "out of range" in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_validate_missing_root_and_gap(tmp_path, capsys):
    assert main(["validate-data", str(tmp_path / "nothing")]) == 2
    assert "nothing" in capsys.readouterr().err
    (tmp_path / "fold01").mkdir()
    (tmp_path / "fold03").mkdir()
    assert main(["validate-data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fold02 is missing" in err[0]


def test_make_synthetic_bad_folds(tmp_path, capsys):
    assert main(["make-synthetic", str(tmp_path / "x"), "--folds", "7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "folds" in err[0]
