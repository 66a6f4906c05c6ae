"""Training and evaluation: the authors' protocol, metrics, run folders.

Public API:

* :func:`train_run` — one training run on one fold, written to a run folder.
* :func:`evaluate_run` / :func:`evaluate_model` — metrics (and predictions) of a saved run
  or an in-memory model on one split.
* :func:`save_run` / :func:`load_run` — atomic run folders (``config.json``,
  ``model.safetensors``, ``metrics.json``, ``predictions.npz``).
* :func:`classification_metrics`, :func:`paper_label`, :func:`format_metrics_table`.
* :class:`Standardizer` — per-feature standardization fitted on the training split.
"""

from selfcross.training.loop import (
    evaluate_model,
    evaluate_run,
    evaluate_run_full,
    fit_model_config,
    train_run,
)
from selfcross.training.metrics import classification_metrics, format_metrics_table, metric_label, paper_label
from selfcross.training.rundir import load_predictions, load_run, save_run
from selfcross.training.standardize import Standardizer

__all__ = [
    "Standardizer",
    "classification_metrics",
    "evaluate_model",
    "evaluate_run",
    "evaluate_run_full",
    "fit_model_config",
    "format_metrics_table",
    "load_predictions",
    "load_run",
    "metric_label",
    "paper_label",
    "save_run",
    "train_run",
]
