"""Optimizer, learning-rate schedule and loss weights of one run, from its ``TrainConfig``.

The paper's protocol is Adam(lr) (with PyTorch's fused kernel on the fast path) +
ReduceLROnPlateau on the dev loss + plain cross-entropy; the ``strong`` preset can switch
each part (AdamW with decoupled weight decay, linear warm-up then cosine decay,
class-weighted cross-entropy). Defaults build exactly the paper's objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from selfcross.config import TrainConfig
from selfcross.models.kernels import check_kernels
from selfcross.training.budget import Budget


def make_adam(params: Iterable[torch.nn.Parameter], lr: float, kernels: str = "fast") -> torch.optim.Adam:
    """Adam(lr); with ``kernels="fast"`` PyTorch's fused Adam kernel.

    Why fused: the same update (to float rounding) in one kernel over all parameters instead
    of a dozen ``foreach`` passes (docs/performance.md). ``kernels="reference"`` keeps the
    default implementation (the authors' ops); a torch without the fused kernel for this
    device gets the default too.
    """
    params = list(params)
    if check_kernels(kernels) == "fast":
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except RuntimeError:  # fused Adam not built for this device in this torch: same update
            pass
    return torch.optim.Adam(params, lr=lr)


def make_optimizer(params: Any, tc: TrainConfig) -> torch.optim.Optimizer:
    """Adam (the paper; fused with ``kernels="fast"``) or AdamW, with ``tc.weight_decay``."""
    params = list(params)
    if tc.optimizer == "adam" and tc.weight_decay == 0:
        return make_adam(params, tc.lr, tc.kernels)
    cls = torch.optim.AdamW if tc.optimizer == "adamw" else torch.optim.Adam
    if check_kernels(tc.kernels) == "fast":
        try:
            return cls(params, lr=tc.lr, weight_decay=tc.weight_decay, fused=True)
        except RuntimeError:  # fused kernel not built for this device in this torch: same update
            pass
    return cls(params, lr=tc.lr, weight_decay=tc.weight_decay)


def cosine_factor(epoch_index: int, warmup: int, total: int) -> float:
    """LR multiplier of the 0-based epoch: ``(i+1)/warmup`` while warming up, then cosine to 0."""
    if epoch_index < warmup:
        return (epoch_index + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch_index - warmup, span) / span))


class EpochSchedule:
    """Steps the learning rate once per epoch with that epoch's dev loss (if it needs it)."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, tc: TrainConfig, budget: Budget | None = None
    ) -> None:
        """``budget``: the run's resolved epoch counts (default: ``tc``'s epoch counts)."""
        self.kind = tc.schedule
        warmup, cap = (tc.warmup_epochs, tc.max_epochs) if budget is None else (budget.warmup_epochs,
                                                                                budget.max_epochs)
        self.scheduler: Any = None
        if self.kind == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=tc.plateau_factor, patience=tc.plateau_patience
            )
        elif self.kind == "cosine":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda i: cosine_factor(i, warmup, cap)
            )

    def step(self, dev_loss: float) -> None:
        """Call after each epoch's dev evaluation."""
        if self.kind == "plateau":
            self.scheduler.step(dev_loss)
        elif self.scheduler is not None:
            self.scheduler.step()


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> np.ndarray | None:
    """Cross-entropy weights: ``None`` for ``none``; ``n / (k * count_c)`` for ``balanced``
    (scikit-learn's "balanced"; a class absent from training gets weight 0); the square
    root of that for ``sqrt``."""
    if mode == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return np.sqrt(weights) if mode == "sqrt" else weights
