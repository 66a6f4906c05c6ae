"""The ``strong`` preset's switches: each changes what it claims; ``paper``/``improved`` do not move."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from selfcross.config import (
    STRONG,
    ModalityShape,
    ModelConfig,
    TrainConfig,
    apply_preset,
    set_epoch_cap,
)
from selfcross.errors import ConfigError
from selfcross.models import FusionModel
from selfcross.models.augment import SpecMask, WordDropout
from selfcross.models.encoders import pool_time
from selfcross.training import train_run
from selfcross.training.optimizer import EpochSchedule, class_weights, cosine_factor, make_optimizer
from tiny_runs import tiny_run_config


# ----------------------------------------------------------------------------- time mixing
def test_pool_keeps_order_and_averages_only_valid_frames():
    x = torch.arange(1.0, 8.0).view(1, 7, 1).repeat(2, 1, 1)  # frames 1..7
    out = pool_time(x, 3, torch.tensor([7, 4]))
    assert out.shape == (2, 3, 1)
    assert out[0, :, 0].tolist() == [2.0, 5.0, 7.0]  # windows (1,2,3), (4,5,6), (7)
    assert out[1, :, 0].tolist() == [2.0, 4.0, 0.0]  # frame 4 alone; no valid frame in the last


def audio_pool_model(**switches) -> FusionModel:
    shape = {"audio": ModalityShape(12, 3, 6)}
    cfg = ModelConfig(
        kind="self",
        modalities=("audio",),
        shapes=shape,
        hidden=6,
        heads=2,
        n_classes=3,
        time_mixing="pool",
        pool_stride=4,
        **switches,
    )
    torch.manual_seed(0)
    return FusionModel(cfg).eval()


def test_pool_model_ignores_padding_and_has_no_time_mixing_conv():
    model = audio_pool_model(mask_padding=True, packed_gru=True, masked_mean=True)
    assert model.encoders["audio"].conv is None and model.encoders["audio"].out_len == 3
    x = torch.randn(2, 12, 3)
    lengths = {"audio": torch.tensor([5, 12])}
    noisy = x.clone()
    noisy[0, 5:] = 100.0  # padding of the first clip
    torch.testing.assert_close(model(audio=x, lengths=lengths), model(audio=noisy, lengths=lengths))
    reversed_time = model(audio=x.flip(1), lengths={"audio": torch.tensor([12, 12])})
    assert not torch.allclose(model(audio=x, lengths={"audio": torch.tensor([12, 12])}), reversed_time)


def test_time_mixing_none_feeds_every_frame_to_the_gru():
    shape = {"audio": ModalityShape(12, 3, 6)}
    model = FusionModel(
        ModelConfig(kind="self", modalities=("audio",), shapes=shape, hidden=6, heads=2, time_mixing="none")
    )
    assert model.encoders["audio"].conv is None and model.encoders["audio"].out_len == 12


def test_bad_time_mixing_is_a_config_error():
    with pytest.raises(ConfigError, match="time_mixing"):
        ModelConfig(time_mixing="lstm")


# ----------------------------------------------------------------------------- augmentation
def test_spec_mask_is_training_only_and_zeroes_whole_spans_inside_the_valid_frames():
    mask = SpecMask(time_masks=1, time_width=3, feat_masks=0, feat_width=0)
    x = torch.ones(64, 10, 4)
    lengths = torch.full((64,), 6)
    assert torch.equal(mask.eval()(x, lengths), x)
    torch.manual_seed(0)
    out = mask.train()(x, lengths)
    zero_steps = (out == 0).all(dim=2)  # time masks zero every feature of a step
    assert torch.equal((out == 0).any(dim=2), zero_steps)
    assert not zero_steps[:, 6:].any()  # never beyond the valid frames
    widths = zero_steps.sum(1)
    assert widths.max() <= 3 and widths.sum() > 0
    for row in zero_steps:  # one contiguous span per clip
        idx = row.nonzero().flatten()
        assert len(idx) == 0 or int(idx[-1] - idx[0]) + 1 == len(idx)


def test_spec_mask_feature_spans_zero_whole_channels():
    torch.manual_seed(1)
    out = SpecMask(feat_masks=1, feat_width=2).train()(torch.ones(32, 5, 8))
    zero_channels = (out == 0).all(dim=1)
    assert torch.equal((out == 0).any(dim=1), zero_channels) and zero_channels.sum(1).max() <= 2
    assert zero_channels.any()


def test_word_dropout_zeroes_whole_words_in_training_only():
    drop = WordDropout(0.3)
    x = torch.ones(200, 50, 6)
    assert torch.equal(drop.eval()(x), x)
    torch.manual_seed(0)
    out = drop.train()(x)
    zero_words = (out == 0).all(dim=2)
    assert torch.equal((out == 0).any(dim=2), zero_words)  # a word is dropped whole
    assert abs(float(zero_words.float().mean()) - 0.3) < 0.02  # 10,000 draws
    assert torch.equal(out[~zero_words], x[~zero_words])  # kept words unscaled


# ----------------------------------------------------------------------------- loss, optimizer, schedule
def test_class_weights_as_computed_by_hand():
    labels = np.array([0, 0, 0, 1])
    weights = class_weights(labels, 3, "balanced")
    np.testing.assert_allclose(weights, [4 / (2 * 3), 4 / (2 * 1), 0.0])
    assert class_weights(labels, 3, "none") is None
    np.testing.assert_allclose(class_weights(labels, 3, "sqrt"), np.sqrt(weights))


@pytest.mark.parametrize("kernels", ["fast", "reference"])
def test_adamw_applies_decoupled_weight_decay(kernels):
    p = torch.nn.Parameter(torch.full((3,), 2.0))
    opt = make_optimizer([p], TrainConfig(optimizer="adamw", weight_decay=0.1, lr=0.5, kernels=kernels))
    assert isinstance(opt, torch.optim.AdamW)
    p.grad = torch.zeros(3)  # no gradient: only the decay moves the weights
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), 2.0 * (1 - 0.5 * 0.1)))


def test_paper_optimizer_has_no_decay():
    p = torch.nn.Parameter(torch.full((3,), 2.0))
    opt = make_optimizer([p], TrainConfig())
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["weight_decay"] == 0
    p.grad = torch.zeros(3)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), 2.0))


def test_cosine_schedule_gives_the_expected_lr_sequence():
    p = torch.nn.Parameter(torch.zeros(1))
    tc = TrainConfig(lr=1.0, schedule="cosine", warmup_epochs=2, max_epochs=6)
    opt = make_optimizer([p], tc)
    schedule = EpochSchedule(opt, tc)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        p.grad = torch.zeros(1)
        opt.step()  # an epoch's updates come before the schedule's step
        schedule.step(dev_loss=1.0)
    expected = [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    np.testing.assert_allclose(seen, expected)
    assert cosine_factor(1, 2, 6) == 1.0


def test_plateau_and_none_schedules():
    p = torch.nn.Parameter(torch.zeros(1))
    tc = TrainConfig(lr=1.0, plateau_patience=1, plateau_factor=0.1)
    opt = make_optimizer([p], tc)
    schedule = EpochSchedule(opt, tc)
    assert isinstance(schedule.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    for _ in range(3):
        schedule.step(dev_loss=1.0)  # no improvement after the first epoch
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    flat = make_optimizer([p], TrainConfig(lr=1.0, schedule="none"))
    for _ in range(3):
        EpochSchedule(flat, TrainConfig(schedule="none")).step(dev_loss=1.0)
    assert flat.param_groups[0]["lr"] == 1.0


# ----------------------------------------------------------------------------- selection
@pytest.mark.slow
@pytest.mark.parametrize("select_on", ["f1_macro", "balanced_accuracy"])
def test_select_on_keeps_the_epoch_with_the_best_dev_metric(tiny_fold, tmp_path, select_on):
    cfg = tiny_run_config(max_epochs=8, patience=8, select_on=select_on)
    metrics = train_run(cfg, tiny_fold, tmp_path / "r", progress=False)
    scores = [h[f"dev_{select_on}"] for h in metrics["history"]]
    assert metrics["best_epoch"] == scores.index(max(scores)) + 1
    assert metrics["dev"][select_on] == pytest.approx(max(scores))


@pytest.mark.slow
def test_strong_preset_trains_on_a_tiny_fold_with_its_schedule(tiny_fold, tmp_path):
    cfg = set_epoch_cap(apply_preset(tiny_run_config(), "strong"), 4)
    cfg.train.patience = 4
    metrics = train_run(cfg, tiny_fold, tmp_path / "r", progress=False)
    assert len(metrics["history"]) == 4
    lrs = [h["lr"] for h in metrics["history"]]
    want = [cfg.train.lr * cosine_factor(i, cfg.train.warmup_epochs, 4) for i in range(4)]
    np.testing.assert_allclose(lrs, want)  # warm-up, then cosine: the schedule the loop really used
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["preset"] == "strong" and saved["train"]["optimizer"] == "adamw"
    assert all(np.isfinite(h["train_loss"]) for h in metrics["history"])


@pytest.mark.slow
def test_cli_train_preset_strong_keeps_an_explicit_epoch_cap(tiny_fold, tmp_path):
    from selfcross.cli import main

    out = tmp_path / "r"
    args = ["train", "--data", str(tiny_fold), "--out", str(out), "--quiet", "--preset", "strong"]
    assert main([*args, "--max-epochs", "1", "--threads", "1"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["preset"] == "strong" and saved["train"]["max_epochs"] == 1
    assert saved["model"]["time_mixing"] == STRONG["model"]["time_mixing"]
