"""Training runs end to end: learning, determinism, evaluation, standardization, CLI.

Tiny hand-written folds keep most tests to a few seconds; one module-scoped run on the
``small`` synthetic benchmark (fold01, tri-modal self) checks that the protocol learns.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import selfcross
from selfcross.cli import main
from selfcross.config import ModelConfig, RunConfig, TrainConfig, apply_preset
from selfcross.errors import ConfigError
from selfcross.folds import read_fold
from selfcross.training import evaluate_run, load_run, train_run
from selfcross.training.loop import evaluate_run_full
from selfcross.training.optimizer import make_adam
from selfcross.training.rundir import load_predictions
from selfcross.training.standardize import valid_mask
from tiny_runs import CLASSES, strip_time, tiny_run_config, write_tiny_fold


# ----------------------------------------------------------------------------- tiny folds
@pytest.mark.slow
def test_same_seed_same_metrics_and_weights(tiny_fold, tmp_path):
    cfg = tiny_run_config(seed=5, max_epochs=2)
    m1 = train_run(cfg, tiny_fold, tmp_path / "a", progress=False)
    m2 = train_run(cfg, tiny_fold, tmp_path / "b", progress=False)
    assert strip_time(m1) == strip_time(m2)
    assert strip_time(json.loads((tmp_path / "a" / "metrics.json").read_text())) == strip_time(m1)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()
    m3 = train_run(tiny_run_config(seed=6, max_epochs=1), tiny_fold, tmp_path / "c", progress=False)
    assert m3["history"][0]["train_loss"] != m1["history"][0]["train_loss"]
    # the caller's config is left alone; the written one is filled in
    assert cfg.environment == {} and cfg.data == {}


@pytest.mark.slow
def test_run_folder_contents_and_provenance(tiny_fold, tmp_path):
    metrics = train_run(tiny_run_config(max_epochs=2), tiny_fold, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {
        "config.json",
        "model.safetensors",
        "metrics.json",
        "history.csv",
        "predictions.npz",
        "features",
    }
    assert {p.name for p in (run / "features").iterdir()} == {"features.json", "W_embedding.npy"}
    cfg = json.loads((run / "config.json").read_text())
    env = cfg["environment"]
    for key in ("selfcross_version", "torch_version", "python_version", "platform", "device", "threads"):
        assert env[key] not in (None, "")
    assert env["threads"] == 1 and env["device"] == "cpu"
    assert env["results_version"] == selfcross.RESULTS_VERSION  # tells code versions' results apart
    assert cfg["train"]["seed"] == 1
    assert cfg["data"]["fingerprint"] and Path(cfg["data"]["fold_dir"]) == tiny_fold.resolve()
    assert cfg["data"]["n_train"] == 90 and cfg["class_names"] == list(CLASSES)
    assert cfg["model"]["shapes"]["audio"] == {"seq_len": 12, "feat_dim": 4, "mixed_len": 6, "layers": None}
    assert cfg["model"]["shapes"]["video"] == {"seq_len": 6, "feat_dim": 5, "mixed_len": 5, "layers": None}
    assert cfg["model"]["n_classes"] == 3
    for key in ("dev", "test", "best_epoch", "epochs_run", "wall_time_s", "history"):
        assert key in metrics
    assert metrics["epochs_run"] == len(metrics["history"]) == 2
    best = metrics["history"][metrics["best_epoch"] - 1]
    # dev metrics are those of the restored best epoch
    assert metrics["dev"]["accuracy"] == best["dev_accuracy"]
    assert metrics["dev"]["balanced_accuracy"] == pytest.approx(best["dev_balanced_accuracy"], abs=1e-12)
    preds = load_predictions(run)
    assert preds["ids"][0] == "test_000" and preds["probs"].shape == (30, 3)
    np.testing.assert_allclose(preds["probs"].sum(1), 1, rtol=1e-5)


@pytest.mark.slow
def test_early_stopping_ends_the_run_patience_epochs_after_the_best(tiny_fold, tmp_path):
    # lr = 0: the model never changes, dev accuracy never improves after epoch 1
    metrics = train_run(tiny_run_config(max_epochs=40, patience=3, lr=0.0), tiny_fold, tmp_path / "r",
                        progress=False)
    assert metrics["best_epoch"] == 1
    assert metrics["epochs_run"] == len(metrics["history"]) == 1 + 3


@pytest.mark.slow
def test_best_weights_are_restored(tiny_fold, tmp_path):
    long = train_run(tiny_run_config(seed=2, max_epochs=40, patience=2), tiny_fold, tmp_path / "long",
                     progress=False)
    accs = [h["dev_accuracy"] for h in long["history"]]
    best = long["best_epoch"]
    assert accs.index(max(accs)) == best - 1  # the first best epoch
    assert long["epochs_run"] == best + 2  # stopped by patience, after the weights moved on
    # the same seed trained for exactly `best` epochs has the best epoch's weights
    train_run(tiny_run_config(seed=2, max_epochs=best, patience=2), tiny_fold, tmp_path / "short",
              progress=False)
    a = load_file(str(tmp_path / "long" / "model.safetensors"))
    b = load_file(str(tmp_path / "short" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.slow
def test_learning_rate_drops_on_a_dev_loss_plateau(tiny_fold, tmp_path):
    # lr so small that the dev loss cannot improve by ReduceLROnPlateau's relative 1e-4
    cfg = tiny_run_config(max_epochs=9, patience=20, lr=1e-6, plateau_patience=2, plateau_factor=0.1)
    lrs = [h["lr"] for h in train_run(cfg, tiny_fold, tmp_path / "r", progress=False)["history"]]
    # epoch 1 sets the best loss; 3 epochs without improvement (> patience 2) -> x0.1
    assert lrs == pytest.approx([1e-6] * 4 + [1e-7] * 3 + [1e-8] * 2, rel=1e-9)


@pytest.mark.slow
def test_max_epochs_0_means_no_cap(tiny_fold, tmp_path):
    from itertools import islice

    assert len(list(islice(TrainConfig(max_epochs=0).epochs(), 500))) == 500  # beyond any default cap
    assert list(TrainConfig(max_epochs=3).epochs()) == [1, 2, 3]
    with pytest.raises(ConfigError, match="max_epochs"):
        TrainConfig(max_epochs=-1)
    metrics = train_run(tiny_run_config(max_epochs=0, patience=1, lr=0.0), tiny_fold, tmp_path / "r",
                        progress=False)
    assert metrics["epochs_run"] == 2  # ended by early stopping, the only stop there is


@pytest.mark.slow
def test_evaluate_reproduces_test_metrics(tiny_fold, tmp_path):
    metrics = train_run(tiny_run_config(max_epochs=2), tiny_fold, tmp_path / "r", progress=False)
    assert evaluate_run(tmp_path / "r", tiny_fold) == metrics["test"]
    assert evaluate_run(tmp_path / "r", tiny_fold, split="dev") == metrics["dev"]
    full = evaluate_run_full(tmp_path / "r", tiny_fold)
    assert full["fingerprint_matches"] is True
    np.testing.assert_array_equal(full["y_pred"], load_predictions(tmp_path / "r")["y_pred"])


@pytest.mark.slow
def test_standardizer_is_fitted_on_train_only_and_stored(tmp_path):
    fold = write_tiny_fold(tmp_path / "data", seed=3, train_shift=10.0)
    cfg = apply_preset(tiny_run_config(), "improved")
    cfg.train.max_epochs = 1  # after the preset, which sets its own budget
    metrics = train_run(cfg, fold, tmp_path / "run", progress=False)
    _, saved, std = load_run(tmp_path / "run")
    assert saved.train.standardize and saved.preset == "improved"
    assert saved.environment["amp_active"] is False  # documented no-op on CPU
    assert std is not None and set(std.modalities) == {"audio", "video", "text"}
    f = read_fold(fold)
    for split, should_match in ((f.train, True), (f.test, False)):
        x, n = split.get_batch(np.arange(len(split)), ("audio",))
        frames = x["audio"][valid_mask(n["audio"], x["audio"])].astype(np.float64)
        assert np.allclose(std.stats["audio"][0], frames.mean(0), rtol=1e-6) is should_match
    # test frames are ~10 below the train mean once standardized; evaluation still reproduces
    assert evaluate_run(tmp_path / "run", fold) == metrics["test"]


@pytest.mark.slow
def test_float64_run(tiny_fold, tmp_path):
    train_run(tiny_run_config(max_epochs=1, dtype="float64"), tiny_fold, tmp_path / "r", progress=False)
    assert all(
        t.dtype == torch.float64 for t in load_file(str(tmp_path / "r" / "model.safetensors")).values()
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["self", "cross"])
def test_fast_kernels_train_like_the_authors_ops(tiny_fold, tmp_path, kind):
    """Whole training runs, float64, dropout off (so no random stream differs): our kernels and
    the authors' ops (``kernels="reference"``) give the same losses and predictions."""
    runs = {}
    for kernels in ("fast", "reference"):
        cfg = tiny_run_config(seed=3, max_epochs=2, dtype="float64", kernels=kernels)
        cfg.model = ModelConfig(kind=kind, attn_dropout=0.0, text_dropout=0.0)
        runs[kernels] = train_run(cfg, tiny_fold, tmp_path / kernels, progress=False)
        assert json.loads((tmp_path / kernels / "config.json").read_text())["train"]["kernels"] == kernels
    fast, ref = runs["fast"], runs["reference"]
    for a, b in zip(fast["history"], ref["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-9)
    assert fast["test"]["accuracy"] == ref["test"]["accuracy"]
    with pytest.raises(ConfigError, match="kernels"):
        TrainConfig(kernels="turbo")


@pytest.mark.slow
def test_evaluate_on_a_fold_of_other_shapes_is_a_data_error(tiny_fold, tmp_path):
    train_run(tiny_run_config(max_epochs=1), tiny_fold, tmp_path / "r", progress=False)
    other = write_tiny_fold(tmp_path / "other", t_audio=10)
    assert main(["evaluate", "--run", str(tmp_path / "r"), "--data", str(other)]) == 2


# ------------------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_train_then_evaluate(tiny_fold, tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(tiny_fold),
        "--model",
        "cross",
        "--modalities",
        "at",
        "--seed",
        "2",
        "--out",
        str(run),
        "--no-stat-pool",
        "--max-epochs",
        "2",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "balanced_accuracy" in out and "best epoch" in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["kind"] == "cross" and cfg["model"]["pooling"] == "concat"
    assert cfg["model"]["modalities"] == ["audio", "text"] and cfg["train"]["seed"] == 2
    stored = json.loads((run / "metrics.json").read_text())

    assert main(["evaluate", "--run", str(run), "--data", str(tiny_fold), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == stored["test"]

    assert main(["evaluate", "--run", str(run), "--data", str(tiny_fold), "--paper-labels"]) == 0
    out = capsys.readouterr().out
    assert "WA (balanced_accuracy)" in out and "UA (accuracy)" in out
    assert "matches metrics.json (test)" in out

    # an existing run folder is not overwritten silently
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "cross", "--modalities", "a"], "needs at least two modalities"),
        (["--modalities", "ax"], "unknown modality"),
        (["--device", "tpu"], "device"),
    ],
)
def test_cli_train_errors_exit_2(tiny_fold, tmp_path, capsys, extra, message):
    args = ["train", "--data", str(tiny_fold), "--out", str(tmp_path / "r"), "--no-progress",
            "--max-epochs", "1"]
    assert main(args + extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_missing_inputs_exit_2(tmp_path, capsys):
    args = ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(args) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "r"), "--data", str(tmp_path)]) == 2
    assert "no such run folder" in capsys.readouterr().err


# ------------------------------------------------------------------ small synthetic benchmark
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from selfcross.synthetic import make_synthetic

    base = tmp_path_factory.mktemp("small")
    root = make_synthetic(base / "data", preset="small", seed=0)
    fold = root / "fold01"
    cfg = RunConfig(model=ModelConfig(kind="self"), train=TrainConfig(seed=1, max_epochs=3, num_threads=1))
    metrics = train_run(cfg, fold, base / "run", progress=False)
    return fold, base / "run", metrics


@pytest.mark.slow
def test_small_synthetic_trimodal_self_learns(small_run):
    fold, _, metrics = small_run
    labels = read_fold(fold).test.labels
    majority = np.bincount(labels).max() / len(labels)
    assert metrics["test"]["accuracy"] > majority + 0.1
    assert metrics["test"]["balanced_accuracy"] > 1 / 7 + 0.1


@pytest.mark.slow
def test_small_synthetic_evaluate_reproduces(small_run):
    fold, run, metrics = small_run
    assert evaluate_run(run, fold) == metrics["test"]
    assert {p.name for p in (run / "features").iterdir()} >= {"W_embedding.npy", "vocab.txt"}


def test_memory_mapped_and_in_memory_batches_are_identical(tiny_fold):
    from selfcross.training.batches import SplitData
    from selfcross.training.standardize import Standardizer

    fold = read_fold(tiny_fold)
    mods = ("audio", "video", "text")
    std = Standardizer.fit(fold.train, mods)
    ram = SplitData(fold.dev, mods, torch.float32, torch.device("cpu"), std)
    mm = SplitData(fold.dev, mods, torch.float32, torch.device("cpu"), std, ram_limit=0)
    assert ram.in_memory and not mm.in_memory
    idx = torch.tensor([5, 0, 29, 5])
    (xa, na, ya), (xb, nb, yb) = ram.batch(idx), mm.batch(idx)
    assert torch.equal(ya, yb) and ya.tolist() == fold.dev.labels[[5, 0, 29, 5]].tolist()
    for m in mods:
        assert torch.equal(xa[m], xb[m]) and torch.equal(na[m], nb[m])
        assert xa[m].shape == (4, *fold.shapes[m])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_kernels_use_fused_adam_with_the_same_update(dtype):
    torch.manual_seed(0)
    start = [torch.randn(5, 3, dtype=dtype), torch.randn(7, dtype=dtype)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(3)]
    results = {}
    for kernels in ("fast", "reference"):
        params = [p.clone().requires_grad_() for p in start]
        opt = make_adam(params, 1e-2, kernels)
        assert bool(opt.defaults.get("fused")) == (kernels == "fast")
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.clone()
            opt.step()
        results[kernels] = [p.detach() for p in params]
    tol = {"rtol": 1e-6, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-14}
    for a, b in zip(results["fast"], results["reference"]):
        torch.testing.assert_close(a, b, **tol)
