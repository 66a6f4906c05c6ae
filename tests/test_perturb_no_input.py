"""A perturbation that removes every modality a model uses is refused (``drop:a`` on audio only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfcross.cli import main
from selfcross.config import ModelConfig, RunConfig, TrainConfig
from selfcross.training import train_run
from tiny_runs import write_tiny_fold


@pytest.fixture(scope="module")
def fold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_fold(tmp_path_factory.mktemp("noinput"))


def test_evaluate_refuses_dropping_the_only_modality(fold: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = RunConfig(model=ModelConfig(kind="self", modalities=("audio",)),
                    train=TrainConfig(max_epochs=1, num_threads=1))
    train_run(cfg, fold, tmp_path / "run", progress=False)
    base = ["evaluate", "--run", str(tmp_path / "run"), "--data", str(fold), "--perturb"]
    assert main([*base, "drop:a"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'drop:a'" in err[0] and "only modality" in err[0]
    assert main([*base, "noise:a=10"]) == 0  # other perturbations of the one modality still apply


def test_grid_refuses_drop_when_every_run_using_the_modality_uses_only_it(
        fold: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.sqlite"
    rc = main(["grid", "--data", str(fold.parent), "--models", "self", "--modalities", "a,t", "--seeds", "1",
               "--db", str(db), "--robustness", "drop:a", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "'drop:a'" in err[0] and "no input" in err[0]
    assert not db.exists()
