"""Tiny hand-written folds and run configs shared by the training tests (the fixture is in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from selfcross.config import ModelConfig, RunConfig, TrainConfig
from selfcross.folds import write_classes, write_embedding, write_split
from selfcross.training.standardize import valid_mask

CLASSES = ("neg", "neu", "pos")


def write_tiny_fold(root: Path, seed: int = 0, t_audio: int = 12, train_shift: float = 0.0) -> Path:
    """A 3-class fold with audio [12, 4], video [6, 5], text ids [8] + embedding [20, 6].

    Each modality carries class evidence (frame means, cue words). ``train_shift`` moves
    the training split's audio frames only (to check where standardization is fitted).
    """
    rng = np.random.default_rng(seed)
    fold = root / "fold01"
    emb = rng.normal(size=(20, 6)).astype(np.float32)
    emb[0] = 0.0
    write_embedding(fold, emb)
    for split, n in (("train", 90), ("dev", 30), ("test", 30)):
        labels = np.arange(n) % 3
        rng.shuffle(labels)
        arrays = {"label": labels.astype(np.int64)}
        for m, (t, f) in (("audio", (t_audio, 4)), ("video", (6, 5))):
            lengths = rng.integers(2, t + 1, size=n)
            x = rng.normal(size=(n, t, f)) + 0.8 * (labels[:, None, None] - 1)
            if m == "audio" and split == "train":
                x += train_shift
            x[~valid_mask(lengths, x)] = 0.0
            arrays[m] = x.astype(np.float32)
            arrays[f"{m}_seqN"] = lengths.astype(np.int64)
        ids = np.zeros((n, 8), np.int64)
        for i, c in enumerate(labels):
            k = rng.integers(2, 9)
            words = rng.integers(2, 20, size=k)
            words[: k // 2] = 2 + c  # cue words 2, 3, 4
            ids[i, :k] = words
        arrays["text_ids"] = ids
        write_split(fold, split, arrays, ids=[f"{split}_{i:03d}" for i in range(n)])
    write_classes(root, CLASSES)
    (root / "features.json").write_text(json.dumps({"audio": {"n_mfcc": 4}}))
    return fold


def tiny_run_config(seed: int = 1, **train_kw) -> RunConfig:
    train = TrainConfig(seed=seed, max_epochs=train_kw.pop("max_epochs", 3), num_threads=1, **train_kw)
    return RunConfig(model=ModelConfig(kind="self"), train=train)


def strip_time(metrics: dict) -> dict:
    """Metrics without the wall-clock fields (run and per-epoch time), which no seed fixes."""
    out = {k: v for k, v in metrics.items() if k != "wall_time_s"}
    out["history"] = [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in metrics["history"]]
    return out
