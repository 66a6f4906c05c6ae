"""Training-time modality dropout: what a dropped modality looks like, rates, switch off = no change."""

from __future__ import annotations

import pytest
import torch

from selfcross.config import TrainConfig
from selfcross.errors import ConfigError
from selfcross.training.modality_dropout import drop_modalities


def _batch(b: int = 4000):
    inputs = {m: torch.ones(b, 3, 2) for m in ("audio", "video", "text")}
    lengths = {m: torch.full((b,), 3) for m in inputs}
    return inputs, lengths


def test_drops_at_rate_p_zero_and_length_zero_never_everything() -> None:
    inputs, lengths = _batch()
    x, n = drop_modalities(inputs, lengths, 0.4, torch.Generator().manual_seed(0))
    dropped = torch.stack([(x[m].abs().sum(dim=(1, 2)) == 0) for m in inputs], dim=1)
    for j, m in enumerate(inputs):
        assert torch.equal(dropped[:, j], n[m] == 0)  # zeroed frames go with length 0
    assert not dropped.all(dim=1).any()  # every utterance keeps a modality
    # P(drop) = p, minus the rescued all-three rows (p^3 of them, one modality each)
    expected = 0.4 - 0.4**3 / 3
    assert dropped.float().mean().item() == pytest.approx(expected, abs=0.02)
    assert torch.equal(inputs["audio"], torch.ones(4000, 3, 2))  # the caller's batch is untouched


def test_single_modality_is_never_dropped() -> None:
    x, n = drop_modalities({"text": torch.ones(50, 2, 2)}, {"text": torch.full((50,), 2)}, 0.9,
                           torch.Generator().manual_seed(1))
    assert torch.equal(x["text"], torch.ones(50, 2, 2)) and torch.equal(n["text"], torch.full((50,), 2))


def test_same_seed_same_drops() -> None:
    inputs, lengths = _batch(64)
    a = drop_modalities(inputs, lengths, 0.3, torch.Generator().manual_seed(5))
    b = drop_modalities(inputs, lengths, 0.3, torch.Generator().manual_seed(5))
    assert all(torch.equal(a[0][m], b[0][m]) for m in inputs)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_probability_out_of_range(p: float) -> None:
    with pytest.raises(ConfigError, match="modality_dropout"):
        TrainConfig(modality_dropout=p)


@pytest.mark.slow
def test_training_with_modality_dropout_differs_and_is_reproducible(tmp_path) -> None:
    from selfcross.training import train_run
    from tiny_runs import strip_time, tiny_run_config, write_tiny_fold

    fold = write_tiny_fold(tmp_path / "data")
    runs = {}
    for name, p in (("off", 0.0), ("on", 0.5), ("on_again", 0.5)):
        cfg = tiny_run_config(max_epochs=2)
        cfg.train.modality_dropout = p
        runs[name] = strip_time(train_run(cfg, fold, tmp_path / name, progress=False))["history"]
    assert runs["on"] == runs["on_again"]
    assert runs["on"][0]["train_loss"] != runs["off"][0]["train_loss"]
