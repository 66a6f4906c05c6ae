"""What is learned from a split: classes (cross-entropy) or sentiment scores (L1 regression).

Why a module of its own: the task decides the model's output width, the loss, the number
that selects the best epoch on dev and the metrics; the training loop only asks this
module. Classification is the paper's protocol. Regression is the multimodal-sentiment
protocol (MulT, MISA, Self-MM, MMSA): one output, L1 loss, the epoch with the lowest dev
MAE is kept, and the scores are reported as the field reports them:

* ``mae``: mean absolute error; ``pearson_r``: Pearson correlation (``scipy.stats.pearsonr``;
  ``None`` when either side is constant);
* ``acc2_has0`` / ``f1_has0``: negative (< 0) vs non-negative (>= 0), all utterances;
  ``acc2_non0`` / ``f1_non0``: negative vs positive, score-0 utterances left out;
  F1 weighted over the two classes, as MMSA computes it;
* ``acc5`` / ``acc7``: ``round(clip(score, -h, h))`` of prediction and truth agree
  (h = 2, 3; NumPy's half-to-even rounding), the binnings of :mod:`selfcross.sentiment`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, f1_score

from selfcross.sentiment import bin_scores
from selfcross.training.metrics import accuracy_and_balanced

#: Tasks a run can be trained for.
TASKS: tuple[str, ...] = ("classification", "regression")
#: Regression metrics in the order they are printed.
REGRESSION_METRICS: tuple[str, ...] = (
    "mae", "pearson_r", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc5", "acc7",
)
#: The metric each task's reports and paired tests lead with, and whether higher is better.
MAIN_METRIC: dict[str, tuple[str, bool]] = {
    "classification": ("accuracy", True),
    "regression": ("mae", False),
}


def n_outputs(task: str, n_classes: int) -> int:
    """Output width of the model's head: one per class, or one score."""
    return 1 if task == "regression" else n_classes


def task_loss(
    task: str, outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy on class indices, or L1 between the single output and the scores."""
    if task == "regression":
        return F.l1_loss(outputs[:, 0], targets.to(outputs.dtype), reduction=reduction)
    return F.cross_entropy(outputs, targets, reduction=reduction)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Every sentiment-regression metric of one split (see the module docstring)."""
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"need as many predictions as scores (got {p.size} and {t.size}), at least one")
    constant = np.ptp(t) == 0 or np.ptp(p) == 0
    nz = t != 0
    out: dict[str, Any] = {
        "mae": float(np.mean(np.abs(p - t))),
        "pearson_r": None if constant else float(pearsonr(p, t).statistic),
        "acc2_has0": float(accuracy_score(t >= 0, p >= 0)),
        "f1_has0": float(f1_score(t >= 0, p >= 0, average="weighted", zero_division=0)),
        "acc2_non0": None,
        "f1_non0": None,
    }
    if nz.any():
        out["acc2_non0"] = float(accuracy_score(t[nz] > 0, p[nz] > 0))
        out["f1_non0"] = float(f1_score(t[nz] > 0, p[nz] > 0, average="weighted", zero_division=0))
    for k in (5, 7):
        key = f"sentiment{k}"
        out[f"acc{k}"] = float(np.mean(bin_scores(t, key)[0] == bin_scores(p, key)[0]))
    out["n"] = int(t.size)
    return out


def dev_summary(task: str, outputs: torch.Tensor, data: Any, n_classes: int) -> dict[str, float]:
    """The per-epoch dev numbers kept in the run's history (and shown on the progress bar)."""
    if task == "regression":
        m = regression_metrics(data.scores_np, outputs[:, 0].float().cpu().numpy())
        r = m["pearson_r"]
        return {"dev_mae": m["mae"], "dev_pearson_r": float("nan") if r is None else r}
    accuracy, balanced = accuracy_and_balanced(data.labels_np, outputs.argmax(dim=1).cpu().numpy())
    return {"dev_accuracy": accuracy, "dev_balanced_accuracy": balanced}


def dev_selection(task: str, summary: dict[str, float]) -> float:
    """The number the best epoch maximises, from a :func:`dev_summary`: dev accuracy, or
    minus the dev MAE."""
    name, higher = MAIN_METRIC[task]
    value = summary[f"dev_{name}"]
    return value if higher else -value
