"""``selfcross tune``: the search space, the dev-only views (the test split is never read),
best.json reproducing its dev score, pruning, and resuming after ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import selfcross
from selfcross.cli import main
from selfcross.config import STRONG
from selfcross.errors import ConfigError
from selfcross.experiments.grid import plan_runs
from selfcross.experiments.options import GridPlan
from selfcross.experiments.tune import TuneSpec, dev_only_view, run_tune, search_space
from tiny_runs import write_tiny_fold

optuna = pytest.importorskip("optuna")


def tiny_root(path: Path, without_test: bool = False) -> Path:
    """A one-fold data root; ``without_test`` deletes every test array (nothing could read it)."""
    fold = write_tiny_fold(path)
    if without_test:
        for f in fold.glob("test_*"):
            f.unlink()
    return path


def spec_for(root: Path, tmp: Path, trials: int, **kw) -> TuneSpec:
    return TuneSpec(data_root=root, storage=f"sqlite:///{tmp / 'tune.sqlite'}", study="s", out=tmp / "out",
                    modalities=("audio",), trials=trials, max_epochs=kw.pop("max_epochs", 3), progress=False,
                    **kw)


# ----------------------------------------------------------------------------- the space
def test_search_space_keeps_what_the_modalities_use_and_takes_overrides():
    audio = search_space("strong", ("audio",))
    text = search_space("strong", ("text",))
    assert "model.spec_time_masks" in audio and "model.word_dropout" not in audio
    assert "model.word_dropout" in text and "model.pool_steps" not in text
    over = search_space("strong", ("audio",), {"train.lr": {"type": "float", "low": 1e-5, "high": 1e-4},
                                               "model.hidden": None})
    assert over["train.lr"]["high"] == 1e-4 and "model.hidden" not in over


@pytest.mark.parametrize("entry, message", [
    ({"train.learning_rate": {"type": "float", "low": 0.1, "high": 1}}, "not a model"),
    ({"train.lr": {"type": "uniform", "low": 0.1, "high": 1}}, "needs a type"),
    ({"train.lr": {"type": "float", "low": 1, "high": 0.1}}, "low"),
])
def test_a_bad_search_space_entry_is_one_line(tmp_path, capsys, entry, message):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(entry))
    code = main(["tune", "--data", str(tmp_path), "--space", str(path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err


def test_a_missing_optuna_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    code = main(["tune", "--data", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "selfcross[tune]" in err


def test_the_dev_only_view_links_test_to_dev_and_never_to_test(tmp_path):
    fold = tiny_root(tmp_path / "root") / "fold01"
    view = dev_only_view(fold, tmp_path / "views" / "fold01")
    for link in view.glob("test_*"):
        assert link.resolve() == (fold / link.name.replace("test_", "dev_", 1)).resolve()
    assert all(not p.resolve().name.startswith("test_") for p in view.iterdir())
    assert (view.parent / "classes.txt").resolve() == (fold.parent / "classes.txt").resolve()


def test_grid_config_file_applies_the_tuned_values_under_their_own_label():
    recipe = {"preset": "strong", "name": "tuned", "train": {"lr": 0.02}, "model": {"pool_stride": 5}}
    runs, _ = plan_runs(GridPlan(models=["self"], modalities=["a"], seeds=[1, 2], config_file=recipe), [1])
    assert {r.key.preset for r in runs} == {"tuned"}
    cfg = runs[0].config
    assert cfg.preset == "strong" and cfg.train.lr == 0.02 and cfg.model.pool_stride == 5
    assert cfg.train.optimizer == STRONG["train"]["optimizer"]
    with pytest.raises(ConfigError, match="unknown"):
        plan_runs(GridPlan(models=["self"], modalities=["a"], seeds=[1],
                           config_file={"preset": "strong", "train": {"lr_max": 1}}), [1])


# ------------------------------------------------------------------------- tuning itself
@pytest.mark.slow
def test_tuning_never_reads_the_test_split_and_best_json_reproduces_its_dev_score(tmp_path):
    blind = tiny_root(tmp_path / "blind", without_test=True)
    result = run_tune(spec_for(blind, tmp_path, trials=3))
    best = json.loads(result.best_json.read_text())
    assert best["tuning"]["dev_score"] == result.best_value
    assert (result.report.parent / "figures" / "history.png").is_file()
    assert "## Best trial" in result.report.read_text()
    # the same data with its test split: train --config best.json gives the tuned dev score
    full = tiny_root(tmp_path / "full") / "fold01"
    out = tmp_path / "run"
    assert main(["train", "--data", str(full), "--config", str(result.best_json), "--modalities", "a",
                 "--seed", "1", "--threads", "1", "--out", str(out), "--no-progress"]) == 0
    dev = json.loads((out / "metrics.json").read_text())["dev"]
    assert dev["f1_weighted"] == best["tuning"]["per_unit"]["dev_f1_weighted_fold01_seed1"]
    assert len(best["tuning"]["per_unit"]) == 1


@pytest.mark.slow
def test_the_first_trial_is_the_preset_and_a_hopeless_trial_is_pruned(tmp_path):
    root = tiny_root(tmp_path / "root")
    space = {"train.lr": {"type": "float", "low": 1e-8, "high": 1e-2, "log": True}}
    spec = spec_for(root, tmp_path, trials=1, space=space, max_epochs=6, prune_startup=1, prune_warmup=0)
    first = run_tune(spec).study.trials[0]
    assert first.params["train.lr"] == STRONG["train"]["lr"] and first.state.name == "COMPLETE"
    study = optuna.load_study(study_name="s", storage=spec.storage)
    study.enqueue_trial({"train.lr": 1e-8})  # learns nothing: trails the preset at every epoch
    spec.trials = 2
    hopeless = run_tune(spec).study.trials[1]
    assert hopeless.params["train.lr"] == 1e-8
    assert hopeless.state.name == "PRUNED" and hopeless.last_step < 6


@pytest.mark.slow
def test_kill_9_keeps_the_finished_trials_and_a_rerun_continues_the_study(tmp_path):
    root = tiny_root(tmp_path / "root")
    spec = spec_for(root, tmp_path, trials=50, max_epochs=2, pruner="none")
    env = {**os.environ, "PYTHONPATH": str(Path(selfcross.__file__).parents[1])}
    cmd = [sys.executable, "-m", "selfcross", "tune", "--data", str(root), "--modalities", "a",
           "--trials", "50", "--max-epochs", "2", "--pruner", "none", "--storage", spec.storage,
           "--study", "s", "--out", str(spec.out), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        done = []
        deadline = time.monotonic() + 300  # a safety net for a broken run, not a measurement
        while not done and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if (tmp_path / "tune.sqlite").is_file():
                try:
                    study = optuna.load_study(study_name="s", storage=spec.storage)
                except KeyError:  # the study row is not written yet
                    continue
                done = [t for t in study.trials if t.state.name == "COMPLETE"]
        assert done, f"no trial completed: {proc.stderr.read().decode() if proc.poll() is not None else ''}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    study = optuna.load_study(study_name="s", storage=spec.storage)
    before = {t.number: t.value for t in study.trials if t.state.name == "COMPLETE"}
    assert len(before) < 50
    spec.trials = len(before) + 1
    result = run_tune(spec)
    after = {t.number: t.value for t in result.study.trials if t.state.name == "COMPLETE"}
    assert {k: after[k] for k in before} == before
    assert len(after) == len(before) + 1 and result.ran == 1


def test_grid_cli_refuses_a_preset_that_differs_from_the_config_file(tmp_path, capsys):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"preset": "strong", "train": {"lr": 0.01}}))
    code = main(["grid", "--data", str(tmp_path), "--config", str(path), "--preset", "paper",
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "differs" in err
