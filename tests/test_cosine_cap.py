"""``train --preset strong --max-epochs 0``: the cosine schedule decays to 0 at the epoch cap,
so without a cap it would train at learning rate 0 after the warm-up: refused in one line."""

from __future__ import annotations

from selfcross.cli import main


def test_cli_train_strong_without_an_epoch_cap_is_refused_in_one_line(tiny_fold, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_fold), "--out", str(tmp_path / "r"), "--no-progress",
                 "--preset", "strong", "--max-epochs", "0", "--threads", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "cosine" in err and "max_epochs" in err
    assert not (tmp_path / "r" / "metrics.json").exists()
