"""Budgets counted in optimizer updates: resolution, early stopping, smoothed selection, and
the cosine schedule without an epoch cap (refused)."""

from __future__ import annotations

import json

import pytest

from selfcross.cli import main
from selfcross.config import STRONG, RunConfig, TrainConfig, apply_preset, set_epoch_cap
from selfcross.errors import ConfigError
from selfcross.experiments.grid import plan_runs
from selfcross.experiments.options import GridPlan
from selfcross.training import train_run
from selfcross.training.budget import Budget, resolve_budget, steps_per_epoch
from tiny_runs import tiny_run_config


@pytest.mark.parametrize("preset", ["paper", "improved"])
@pytest.mark.parametrize("n_train", [90, 300, 10_000])
def test_paper_and_improved_budgets_are_their_epoch_counts_at_any_size(preset, n_train):
    tc = apply_preset(RunConfig(), preset).train
    b = resolve_budget(tc, n_train)
    assert (b.max_epochs, b.warmup_epochs, b.patience, b.min_epochs) == (tc.max_epochs, tc.warmup_epochs,
                                                                          tc.patience, 0)


def test_strong_budget_gives_a_small_corpus_as_many_updates_as_a_large_one():
    tc = apply_preset(RunConfig(), "strong").train
    small, large = resolve_budget(tc, 300), resolve_budget(tc, 10_000)
    assert small.steps_per_epoch == 10 and large.steps_per_epoch == 313
    # the small corpus: the update counts decide (2000 / 10 = 200 epochs, ...)
    assert (small.max_epochs, small.warmup_epochs, small.patience, small.min_epochs) == (200, 20, 50, 80)
    # the large one: the epoch counts are larger (30 x 313 updates > 2000)
    assert (large.max_epochs, large.warmup_epochs, large.patience, large.min_epochs) == (30, 2, 10, 3)
    assert small.max_epochs * small.steps_per_epoch >= STRONG["train"]["max_updates"]


def test_no_cap_stays_no_cap_and_partial_batches_count():
    assert steps_per_epoch(65, 32) == 3 and steps_per_epoch(64, 32) == 2 and steps_per_epoch(0, 32) == 1
    b = resolve_budget(TrainConfig(max_epochs=0, max_updates=500), 64)
    assert b.max_epochs == 0
    assert not Budget(2, 10, 0, 3, 5).may_stop(epoch=4, stale=3)
    assert Budget(2, 10, 0, 3, 5).may_stop(epoch=5, stale=3)


def test_an_explicit_epoch_cap_replaces_the_update_based_one():
    cfg = set_epoch_cap(apply_preset(RunConfig(), "strong"), 3)
    b = resolve_budget(cfg.train, 300)
    assert (b.max_epochs, b.warmup_epochs, b.min_epochs) == (3, STRONG["train"]["warmup_epochs"], 0)


@pytest.mark.parametrize("field", ["max_updates", "warmup_updates", "patience_updates", "min_updates"])
def test_negative_update_counts_are_refused(field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: -1})


@pytest.mark.slow
def test_min_updates_keeps_early_stopping_from_ending_the_run(tiny_fold, tmp_path):
    # 90 training rows, batch 32: 3 updates per epoch; 18 updates = 6 epochs at least
    cfg = tiny_run_config(max_epochs=8, patience=1, min_updates=18)
    metrics = train_run(cfg, tiny_fold, tmp_path / "r", progress=False)
    assert len(metrics["history"]) >= 6
    plain = train_run(tiny_run_config(max_epochs=8, patience=1), tiny_fold, tmp_path / "p", progress=False)
    assert len(plain["history"]) < 6  # without the minimum, patience 1 ends it sooner


@pytest.mark.slow
def test_select_window_keeps_the_epoch_with_the_best_trailing_mean(tiny_fold, tmp_path):
    cfg = tiny_run_config(max_epochs=8, patience=8, select_window=3, select_on="f1_weighted")
    metrics = train_run(cfg, tiny_fold, tmp_path / "r", progress=False)
    s = [h["dev_f1_weighted"] for h in metrics["history"]]
    means = [sum(s[max(0, i - 2): i + 1]) / len(s[max(0, i - 2): i + 1]) for i in range(len(s))]
    assert metrics["best_epoch"] == means.index(max(means)) + 1


@pytest.mark.slow
def test_warmup_updates_set_the_warmup_length_in_epochs(tiny_fold, tmp_path):
    # 3 updates per epoch: 9 warm-up updates = 3 warm-up epochs, lr rising over the first three
    cfg = tiny_run_config(max_epochs=5, schedule="cosine", warmup_updates=9, lr=3e-3)
    lrs = [h["lr"] for h in train_run(cfg, tiny_fold, tmp_path / "r", progress=False)["history"]]
    assert lrs[:4] == pytest.approx([1e-3, 2e-3, 3e-3, 3e-3]) and lrs[4] < 3e-3  # then the cosine


def test_grid_strong_without_an_epoch_cap_is_refused():
    with pytest.raises(ConfigError, match="cosine"):
        plan_runs(GridPlan(models=["self"], modalities=["a"], seeds=[1], preset="strong", max_epochs=0), [1])
    improved = GridPlan(models=["self"], modalities=["a"], seeds=[1], preset="improved", max_epochs=0)
    runs, _ = plan_runs(improved, [1])
    assert runs[0].config.train.max_epochs == 0  # a plateau schedule needs no cap


def test_cli_train_help_says_the_combination_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "refused with the strong preset's cosine" in " ".join(capsys.readouterr().out.split())


def test_train_config_file_applies_preset_and_switches(tiny_fold, tmp_path):
    from selfcross.cli import build_parser
    from selfcross.cli.training import build_run_config

    path = tmp_path / "best.json"
    path.write_text(json.dumps({"preset": "strong", "name": "tuned", "train": {"lr": 0.01},
                                "model": {"hidden": 12}, "tuning": {"dev_score": 0.5}}))
    args = build_parser().parse_args(["train", "--data", str(tiny_fold), "--out", "x", "--config", str(path)])
    cfg = build_run_config(args)
    assert cfg.preset == "strong" and cfg.train.lr == 0.01 and cfg.model.hidden == 12
    assert cfg.model.time_mixing == STRONG["model"]["time_mixing"]
    bad = build_parser().parse_args(["train", "--data", str(tiny_fold), "--out", "x", "--config", str(path),
                                     "--preset", "paper"])
    with pytest.raises(ConfigError, match="differs"):
        build_run_config(bad)
    path.write_text(json.dumps({"preset": "strong", "train": {"learning_rate": 0.01}}))
    with pytest.raises(ConfigError, match="learning_rate"):
        build_run_config(args)


def test_pool_steps_and_spec_time_share_scale_with_each_modality_length():
    from selfcross.config import ModalityShape, ModelConfig
    from selfcross.models import FusionModel

    cfg = apply_preset(RunConfig(), "strong").model
    assert (cfg.stride_for(500), cfg.stride_for(20), cfg.stride_for(32)) == (20, 1, 2)
    shapes = {"audio": ModalityShape(500, 4, 25), "video": ModalityShape(20, 3, 16)}
    mc = ModelConfig(modalities=("audio", "video"), shapes=shapes, time_mixing="pool", pool_steps=25,
                     spec_time_masks=2, spec_time_share=0.08)
    model = FusionModel(mc)
    assert (model.encoders["audio"].pool_stride, model.encoders["video"].pool_stride) == (20, 1)
    assert (cfg.spec_width_for(500), cfg.spec_width_for(20)) == (40, 2)
    assert model.encoders["audio"].spec_mask.time_width == 40
    with pytest.raises(ConfigError, match="pool_steps"):
        ModelConfig(pool_steps=-1)
