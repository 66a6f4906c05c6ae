"""Run folders: write them atomically, read them back with clear errors.

A run folder holds::

    config.json         RunConfig: model, training protocol, data path + fingerprint, environment
    model.safetensors   model weights (+ standardizer.<modality>.mean|std when fitted)
    metrics.json        {"dev": {...}, "test": {...}, "best_epoch", "epochs_run", "wall_time_s", "history"}
    history.csv         metrics.json's per-epoch history, one row per epoch (for spreadsheets)
    predictions.npz     test predictions: y_true, y_pred, probs, ids
    features/           features.json, vocab.txt, W_embedding.npy copied from the data (optional)

Why atomic: the authors' script saved every run to one fixed path, so parallel runs
overwrote each other (FACTS.md §3). Here everything is written into a temporary folder
beside the target and renamed into place at the end: a run folder is complete or absent,
and an interrupted run never leaves a folder that looks finished.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from selfcross.config import RunConfig
from selfcross.errors import CheckpointError, ConfigError, SelfcrossError
from selfcross.tasks import clean_json
from selfcross.training.callbacks import history_columns
from selfcross.training.environment import DTYPES
from selfcross.training.standardize import PREFIX, Standardizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
PREDICTIONS_FILE = "predictions.npz"
FEATURES_DIR = "features"


def check_out_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Refuse an existing, non-empty ``out_dir`` unless ``overwrite`` (checked before training).

    Raises:
        ConfigError: the folder exists and holds files, or is a file.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"{out}: run folder exists and is not empty; choose another --out or pass --overwrite"
        )
    return out


def save_run(
    out_dir: str | Path,
    config: RunConfig,
    model: torch.nn.Module,
    metrics: Mapping[str, Any] | None = None,
    standardizer: Standardizer | None = None,
    predictions: Mapping[str, Any] | None = None,
    feature_files: Sequence[str | Path] = (),
    overwrite: bool = False,
) -> Path:
    """Write a complete run folder atomically and return its path.

    Args:
        out_dir: the run folder to create (its parent is created if needed).
        config: the run's configuration (written as ``config.json``).
        model: the trained model; its ``state_dict`` goes to ``model.safetensors``.
        metrics: ``metrics.json`` content (omitted when ``None``); its ``history`` is also
            written as ``history.csv``.
        standardizer: its statistics go into ``model.safetensors`` under ``standardizer.``.
        predictions: arrays for ``predictions.npz`` (``y_true``, ``y_pred``, ``probs``, ``ids``);
            ``ids=None`` is stored as an empty array.
        feature_files: files copied into ``features/`` (feature configs, vocabulary, embeddings).
        overwrite: replace an existing non-empty folder (the old one is removed only after the
            new one is complete).

    Raises:
        ConfigError: ``out_dir`` exists, is not empty and ``overwrite`` is false.
    """
    out = check_out_dir(out_dir, overwrite).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        config.save(tmp / CONFIG_FILE)
        tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
        if standardizer is not None:
            tensors.update(standardizer.state_dict())
        # one metadata key only: safetensors writes metadata from a hash map in random order,
        # and identical runs should give byte-identical files (the version is in config.json)
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if metrics is not None:
            # strict JSON: an undefined number is null (its reason is under the metrics' "undefined")
            (tmp / METRICS_FILE).write_text(
                json.dumps(clean_json(metrics), indent=2, sort_keys=True, allow_nan=False) + "\n")
            if metrics.get("history"):
                write_history_csv(metrics["history"], tmp / HISTORY_FILE)
        if predictions is not None:
            arrays = {k: np.asarray(v) for k, v in predictions.items() if k != "ids"}
            ids = predictions.get("ids")
            arrays["ids"] = np.asarray([] if ids is None else list(ids), dtype=str)
            np.savez(tmp / PREDICTIONS_FILE, **arrays)
        if feature_files:
            (tmp / FEATURES_DIR).mkdir()
            for f in feature_files:
                shutil.copy2(f, tmp / FEATURES_DIR / Path(f).name)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_history_csv(history: Sequence[Mapping[str, Any]], path: Path) -> None:
    """One row per epoch, a column per key of the rows (empty where a row lacks one)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=history_columns(history))
        writer.writeheader()
        writer.writerows(history)


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first, then deleted."""
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "run")
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old / "run", out)  # put the previous run back
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)  # rename(2) accepts an empty target folder


def read_json(path: Path) -> Any:
    """Read one JSON file of a run folder; problems are :class:`CheckpointError` naming it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing from the run folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, RunConfig, Standardizer | None]:
    """Rebuild the model of a run folder, in eval mode, in the run's dtype, on ``device``.

    Returns:
        ``(model, config, standardizer)``; ``standardizer`` is ``None`` when the run was
        trained without one.

    Raises:
        CheckpointError: the folder or a file is missing, ``config.json`` is invalid, or the
            weights do not match the configured model (missing, unexpected or mis-shaped
            tensors are listed).
    """
    from selfcross.models import FusionModel  # models import torch.nn only; keep start-up light

    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError(f"{run}: no such run folder")
    cfg_path = run / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: missing from the run folder")
    try:
        config = RunConfig.load(cfg_path)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    weights = run / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing from the run folder")
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({e})") from None

    try:
        model = FusionModel(config.model)
    except SelfcrossError as e:
        raise CheckpointError(f"{cfg_path}: the model it describes cannot be built ({e})") from None
    model = model.to(DTYPES[config.train.dtype])
    standardizer = Standardizer.from_state_dict(tensors, source=str(weights))
    state = {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}
    _check_weights_match(model, state, weights)
    model.load_state_dict(state)
    model.to(torch.device(device)).eval()
    return model, config, standardizer


def _check_weights_match(model: torch.nn.Module, state: dict[str, torch.Tensor], weights: Path) -> None:
    """Raise :class:`CheckpointError` listing missing, unexpected and mis-shaped tensors, if any."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(
        f"{k} {tuple(state[k].shape)} (model expects {tuple(expected[k].shape)})"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"missing tensors: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected tensors: {', '.join(unexpected)}")
        if mis_shaped:
            parts.append(f"mis-shaped tensors: {', '.join(mis_shaped)}")
        raise CheckpointError(f"{weights}: does not match the model in {CONFIG_FILE}: " + "; ".join(parts))


def load_predictions(run_dir: str | Path) -> dict[str, np.ndarray]:
    """The arrays of ``predictions.npz`` (``y_true``, ``y_pred``, ``probs``, ``ids``)."""
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing from the run folder")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
