"""Run folders (save/load round trip, atomicity, clear errors), the standardizer, model-config fitting."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from selfcross.config import ModalityShape, ModelConfig, RunConfig, TrainConfig, paper_shapes
from selfcross.errors import CheckpointError, ConfigError
from selfcross.models import FusionModel
from selfcross.training import load_run, save_run
from selfcross.training import rundir as rundir_mod
from selfcross.training.loop import fit_model_config
from selfcross.training.rundir import load_predictions
from selfcross.training.standardize import Standardizer, valid_mask

TINY_SHAPES = {
    "audio": ModalityShape(12, 4, 6),
    "video": ModalityShape(6, 5, 4),
    "text": ModalityShape(8, 6, None),
}


def tiny_config(**model_kw) -> RunConfig:
    model = ModelConfig(shapes=dict(TINY_SHAPES), hidden=6, heads=2, head_hidden=8, n_classes=3, **model_kw)
    return RunConfig(model=model, train=TrainConfig(seed=3), class_names=("a", "b", "c"))


def tiny_inputs(b: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(b, s.seq_len, s.feat_dim, generator=g) for m, s in TINY_SHAPES.items()}


def make_standardizer() -> Standardizer:
    rng = np.random.default_rng(0)
    return Standardizer({"audio": (rng.normal(size=4), rng.uniform(0.5, 2, size=4))})


def test_round_trip_restores_model_config_and_standardizer(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config()
    model = FusionModel(cfg.model).eval()
    std = make_standardizer()
    metrics = {"test": {"accuracy": 0.5}, "best_epoch": 2}
    preds = {
        "y_true": np.array([0, 1]),
        "y_pred": np.array([1, 1]),
        "probs": np.eye(2, 3),
        "ids": ["u1", "u2"],
    }
    out = save_run(tmp_path / "run", cfg, model, metrics, std, preds)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "metrics.json",
        "model.safetensors",
        "predictions.npz",
    ]
    loaded, cfg2, std2 = load_run(out)
    assert cfg2.to_dict() == cfg.to_dict()
    assert not loaded.training
    x = tiny_inputs()
    with torch.no_grad():
        assert torch.equal(loaded(**x), model(**x))
    assert std2 is not None
    np.testing.assert_array_equal(std2.stats["audio"][0], std.stats["audio"][0])
    np.testing.assert_array_equal(std2.stats["audio"][1], std.stats["audio"][1])
    assert json.loads((out / "metrics.json").read_text()) == metrics
    p = load_predictions(out)
    assert p["ids"].tolist() == ["u1", "u2"] and p["y_pred"].tolist() == [1, 1]
    # the standardizer sits next to the weights under its own prefix
    keys = load_file(str(out / "model.safetensors")).keys()
    assert {"standardizer.audio.mean", "standardizer.audio.std"} <= set(keys)


def test_round_trip_float64_without_standardizer(tmp_path):
    cfg = tiny_config(kind="cross", modalities=("audio", "text"))
    cfg.train.dtype = "float64"
    model = FusionModel(cfg.model).double().eval()
    save_run(tmp_path / "r", cfg, model)
    loaded, _, std = load_run(tmp_path / "r")
    assert std is None
    assert next(loaded.parameters()).dtype == torch.float64
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_failure_mid_save_leaves_no_run_folder(tmp_path, monkeypatch):
    cfg = tiny_config()
    model = FusionModel(cfg.model)

    def boom(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(rundir_mod, "save_file", boom)
    with pytest.raises(OSError, match="simulated"):
        save_run(tmp_path / "run", cfg, model, {"x": 1})
    assert list(tmp_path.iterdir()) == []  # neither the run nor a temporary folder


def test_existing_run_is_refused_or_replaced_atomically(tmp_path, monkeypatch):
    cfg = tiny_config()
    model = FusionModel(cfg.model)
    save_run(tmp_path / "run", cfg, model, {"version": 1})
    with pytest.raises(ConfigError, match="not empty"):
        save_run(tmp_path / "run", cfg, model, {"version": 2})
    # a failed overwrite keeps the previous run intact
    monkeypatch.setattr(rundir_mod, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        save_run(tmp_path / "run", cfg, model, {"version": 2}, overwrite=True)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == {"version": 1}
    monkeypatch.undo()
    save_run(tmp_path / "run", cfg, model, {"version": 2}, overwrite=True)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == {"version": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    # an empty folder (e.g. made by a job scheduler) is accepted without --overwrite
    (tmp_path / "empty").mkdir()
    save_run(tmp_path / "empty", cfg, model)
    assert (tmp_path / "empty" / "model.safetensors").is_file()


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_missing_files_are_named(tmp_path, missing):
    cfg = tiny_config()
    save_run(tmp_path / "run", cfg, FusionModel(cfg.model))
    (tmp_path / "run" / missing).unlink()
    with pytest.raises(CheckpointError, match=missing):
        load_run(tmp_path / "run")


def test_no_run_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such run folder"):
        load_run(tmp_path / "nope")


def test_weights_not_matching_config_list_the_tensors(tmp_path):
    cfg = tiny_config()
    run = save_run(tmp_path / "run", cfg, FusionModel(cfg.model))
    w = run / "model.safetensors"
    tensors = load_file(str(w))
    tensors.pop("head.1.bias")
    tensors["extra.weight"] = torch.zeros(2)
    tensors["head.0.weight"] = torch.zeros(3, 3)
    save_file(tensors, str(w))
    with pytest.raises(CheckpointError) as e:
        load_run(run)
    msg = str(e.value)
    assert "model.safetensors" in msg
    assert "missing tensors: head.1.bias" in msg
    assert "unexpected tensors: extra.weight" in msg
    assert "mis-shaped tensors: head.0.weight (3, 3)" in msg


def test_garbage_files_are_checkpoint_errors(tmp_path):
    cfg = tiny_config()
    run = save_run(tmp_path / "run", cfg, FusionModel(cfg.model))
    (run / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_run(run)
    (run / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_run(run)


# ------------------------------------------------------------------------------ standardizer
class ArraySplit:
    """A stand-in for ``selfcross.data.Split`` over in-memory arrays."""

    def __init__(self, arrays, lengths, labels):
        self.arrays, self.lengths, self.labels = arrays, lengths, np.asarray(labels)
        self.ids = None

    def __len__(self):
        return len(self.labels)

    def get_batch(self, index, modalities):
        idx = np.asarray(index)
        return ({m: self.arrays[m][idx] for m in modalities}, {m: self.lengths[m][idx] for m in modalities})


def padded(rng, n, t, f, loc, scale):
    lengths = rng.integers(1, t + 1, size=n)
    x = rng.normal(loc, scale, size=(n, t, f)).astype(np.float32)
    x[~valid_mask(lengths, x)] = 0.0
    return x, lengths


def test_standardizer_uses_valid_frames_only_and_keeps_padding_zero():
    rng = np.random.default_rng(1)
    x, lengths = padded(rng, 37, 9, 3, loc=[5.0, -2.0, 0.5], scale=[2.0, 0.5, 1.0])
    split = ArraySplit({"audio": x}, {"audio": lengths}, np.zeros(37, int))
    std = Standardizer.fit(split, ("audio",), chunk=5)  # chunks exercise the pairwise merge
    frames = x[valid_mask(lengths, x)].astype(np.float64)
    np.testing.assert_allclose(std.stats["audio"][0], frames.mean(0), rtol=1e-10)
    np.testing.assert_allclose(std.stats["audio"][1], frames.std(0), rtol=1e-10)
    out = std.transform({"audio": x}, {"audio": lengths})["audio"]
    assert out.dtype == np.float32
    mask = valid_mask(lengths, x)
    assert np.all(out[~mask] == 0)
    np.testing.assert_allclose(out[mask].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out[mask].std(0), 1, atol=1e-4)


def test_standardizer_constant_feature_is_not_divided_by_zero():
    x = np.ones((4, 3, 2), np.float32)
    split = ArraySplit({"video": x}, {"video": np.array([3, 3, 3, 3])}, np.zeros(4, int))
    std = Standardizer.fit(split, ("video",))
    out = std.transform({"video": x}, {"video": np.array([3, 3, 3, 3])})["video"]
    assert np.all(np.isfinite(out)) and np.all(out == 0)


def test_standardizer_state_dict_round_trip_and_errors():
    std = make_standardizer()
    back = Standardizer.from_state_dict(std.state_dict())
    np.testing.assert_array_equal(back.stats["audio"][1], std.stats["audio"][1])
    assert Standardizer.from_state_dict({"gru.weight": torch.zeros(1)}) is None
    with pytest.raises(CheckpointError, match="mean"):
        Standardizer.from_state_dict({"standardizer.audio.mean": torch.zeros(3)}, source="f")


# --------------------------------------------------------------------------- model config
def test_fit_model_config_paper_and_scaled_shapes():
    base = ModelConfig()
    paper = fit_model_config(base, {"audio": (1000, 120), "video": (32, 2048), "text": (128, 300)}, 7)
    assert paper.shapes == paper_shapes()
    small = fit_model_config(base, {"audio": (100, 20), "video": (16, 32), "text": (32, 32)}, 4)
    assert small.shapes["audio"] == ModalityShape(100, 20, 50)
    assert small.shapes["video"] == ModalityShape(16, 32, round(16 * 25 / 32))
    assert small.shapes["text"] == ModalityShape(32, 32, None)
    assert small.n_classes == 4
    assert base.shapes == paper_shapes()  # the input config is not modified
    # a config that already matches the fold keeps its own mixing length
    mine = ModelConfig(modalities=("audio",), shapes={"audio": ModalityShape(100, 20, 7)})
    assert fit_model_config(mine, {"audio": (100, 20)}, 7).shapes["audio"].mixed_len == 7


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 64))
def test_scaled_mixing_length_is_valid(t_audio, t_video):
    cfg = fit_model_config(
        ModelConfig(modalities=("audio", "video")), {"audio": (t_audio, 3), "video": (t_video, 3)}, 7
    )
    for m, t in (("audio", t_audio), ("video", t_video)):
        assert 1 <= cfg.shapes[m].mixed_len <= t
