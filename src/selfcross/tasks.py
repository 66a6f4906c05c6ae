"""What is learned from a split: classes (cross-entropy) or sentiment scores (L1 regression).

Why a module of its own: the task decides the model's output width, the loss, the number
that selects the best epoch on dev, the metrics, how predictions are stored and printed,
which report section describes a study, and its name on the command line. Every other
module asks a :class:`Task` (resolved once, by :func:`get_task`, from ``TrainConfig.task``)
instead of branching on the task's name -- as Hugging Face's heads pick their loss from
``config.problem_type``. A new task is one subclass and one :data:`REGISTRY` entry.

Classification is the paper's protocol. Regression is the multimodal-sentiment protocol
(MulT, MISA, Self-MM, MMSA): one output, L1 loss, the epoch with the lowest dev MAE is kept,
and the scores are reported as the field reports them:

* ``mae``: mean absolute error; ``pearson_r``: Pearson correlation (``scipy.stats.pearsonr``;
  undefined -- ``None``, with its reason under ``undefined`` -- when either side is constant);
* ``acc2_has0`` / ``f1_has0``: negative (< 0) vs non-negative (>= 0), all utterances;
  ``acc2_non0`` / ``f1_non0``: negative vs positive, score-0 utterances left out (undefined
  when every score is 0); F1 weighted over the two classes, as MMSA computes it;
* ``acc5`` / ``acc7``: ``round(clip(score, -h, h))`` of prediction and truth agree
  (h = 2, 3; NumPy's half-to-even rounding), the binnings of :mod:`selfcross.sentiment`.

Undefined metrics: a metric dict holds a number or ``None`` for each metric, and
``undefined``: metric -> the reason (e.g. ``{"pearson_r": "constant predictions"}``);
reports print such a metric as undefined with that reason.

Import cost: ``selfcross.config`` imports this module for the task names, so torch,
scikit-learn, SciPy and :mod:`selfcross.training.metrics` (whose package imports the training
loop and torch) are imported where a task first computes something.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from selfcross.errors import ConfigError, DataError

#: Regression metrics in the order they are printed.
REGRESSION_METRICS: tuple[str, ...] = (
    "mae", "pearson_r", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc5", "acc7",
)


class Task:
    """One learning task: what a run's head, loss, selection, metrics and outputs are."""

    #: The task's name (``TrainConfig.task``, ``--task``, the store's ``task`` column).
    name: ClassVar[str]
    #: The metric reports and paired tests lead with, and whether higher is better.
    main_metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    #: The metrics of one split, in the order they are printed.
    metrics: ClassVar[tuple[str, ...]]
    #: NumPy dtype of stored truths and predictions (class indices or scores).
    prediction_dtype: ClassVar[type]
    #: Whether predictions are classes (per-utterance right/wrong tests such as McNemar apply).
    has_classes: ClassVar[bool]
    #: Whether the main metric is a fraction (printed in percent).
    main_is_fraction: ClassVar[bool]
    #: Appended to a run key, so that runs of two tasks never share one (empty: the default
    #: task's keys, and with them its run folders, stay as they were before tasks existed).
    key_suffix: ClassVar[str]
    #: ``module:function`` writing this task's report (``(store, study, out, **options)``).
    report: ClassVar[str]
    #: One line for ``--task`` in ``--help``.
    help: ClassVar[str]

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def report_function(self) -> Callable[..., Any]:
        """The function :attr:`report` names (imported when a report is written)."""
        module, _, function = self.report.partition(":")
        return getattr(importlib.import_module(module), function)

    def n_outputs(self, n_classes: int) -> int:
        """Output width of the model's head."""
        raise NotImplementedError

    def targets(self, split: Any, dtype: Any, device: Any) -> Any:
        """The split's training targets as a tensor on ``device``."""
        raise NotImplementedError

    def loss(self, outputs: Any, targets: Any, reduction: str = "mean", weight: Any = None) -> Any:
        """The training loss of a batch (``weight``: per-class weights, where the task has classes)."""
        raise NotImplementedError

    def class_weight_mode(self, train_config: Any) -> str:
        """The class-weighting mode the training loop applies (``none`` without classes)."""
        return "none"

    def dev_summary(self, outputs: Any, data: Any) -> dict[str, float]:
        """The per-epoch dev numbers kept in the run's history (and shown on the progress bar)."""
        raise NotImplementedError

    def selection(self, train_config: Any, summary: Mapping[str, float]) -> float:
        """The number the best epoch maximises, from a :meth:`dev_summary` (NaN: undefined)."""
        value = summary[f"dev_{self.main_metric}"]
        return value if self.higher_is_better else -value

    def selection_name(self, train_config: Any) -> str:
        """The dev metric :meth:`selection` is computed from (for messages)."""
        return f"dev {self.main_metric}"

    def evaluate(self, outputs: Any, data: Any, class_names: Sequence[str]) -> dict[str, Any]:
        """``metrics``, ``y_true``, ``y_pred`` (and ``probs`` where the task has classes)."""
        raise NotImplementedError

    def predict_one(self, logits: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
        """What ``predict`` returns for one utterance from its head's outputs."""
        raise NotImplementedError

    def failed_prediction(self) -> dict[str, Any]:
        """The prediction fields of a manifest row that could not be read."""
        raise NotImplementedError

    def describe_prediction(self, out: Mapping[str, Any]) -> list[str]:
        """The lines ``selfcross predict`` prints for one :meth:`predict_one` result."""
        raise NotImplementedError

    def csv_header(self, class_names: Sequence[str]) -> list[str]:
        """The prediction columns of a predictions CSV (between ``id`` and ``error``)."""
        raise NotImplementedError

    def csv_cells(self, result: Mapping[str, Any], class_names: Sequence[str]) -> list[str]:
        """One predictions-CSV row's prediction cells (empty for a row that failed)."""
        raise NotImplementedError

    def stored(self, values: Any) -> list[int] | list[float]:
        """Predictions (or truths) as the Python numbers the results store keeps."""
        kind = int if self.prediction_dtype is np.int64 else float
        return [kind(v) for v in np.asarray(values).reshape(-1)]


class Classification(Task):
    """Classes: cross-entropy, dev ``select_on`` (accuracy by default), class indices stored."""

    name = "classification"
    main_metric = "accuracy"
    higher_is_better = True
    prediction_dtype = np.int64
    has_classes = True
    main_is_fraction = True
    key_suffix = ""
    report = "selfcross.analysis.report:classification_report"
    help = "the paper's (classes, cross-entropy, best dev accuracy)"

    @property
    def metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        from selfcross.training.metrics import SCALAR_METRICS  # start-up cost (module docstring)

        return SCALAR_METRICS

    def n_outputs(self, n_classes: int) -> int:
        return int(n_classes)

    def targets(self, split: Any, dtype: Any, device: Any) -> Any:
        import torch

        return torch.from_numpy(np.asarray(split.labels, dtype=np.int64).copy()).to(device)

    def loss(self, outputs: Any, targets: Any, reduction: str = "mean", weight: Any = None) -> Any:
        import torch.nn.functional as F

        if weight is None:  # the paper's loss, called exactly as before weights existed
            return F.cross_entropy(outputs, targets, reduction=reduction)
        return F.cross_entropy(outputs, targets, weight=weight, reduction=reduction)

    def class_weight_mode(self, train_config: Any) -> str:
        return str(train_config.class_weights)

    def dev_summary(self, outputs: Any, data: Any) -> dict[str, float]:
        from sklearn.metrics import f1_score

        from selfcross.training.metrics import accuracy_and_balanced  # start-up cost (module docstring)

        y_true, y_pred = data.labels_np, outputs.argmax(dim=1).cpu().numpy()
        accuracy, balanced = accuracy_and_balanced(y_true, y_pred)
        out = {"dev_accuracy": accuracy, "dev_balanced_accuracy": balanced}
        for average in ("macro", "weighted"):
            out[f"dev_f1_{average}"] = float(f1_score(y_true, y_pred, average=average, zero_division=0))
        return out

    def selection(self, train_config: Any, summary: Mapping[str, float]) -> float:
        return summary[f"dev_{train_config.select_on}"]

    def selection_name(self, train_config: Any) -> str:
        return f"dev {train_config.select_on}"

    def evaluate(self, outputs: Any, data: Any, class_names: Sequence[str]) -> dict[str, Any]:
        import torch

        from selfcross.training.metrics import classification_metrics  # start-up cost (module docstring)

        probs = torch.softmax(outputs, dim=1).cpu().numpy()
        y_pred = probs.argmax(axis=1).astype(np.int64)
        return {"metrics": classification_metrics(data.labels_np, y_pred, class_names),
                "y_true": data.labels_np, "y_pred": y_pred, "probs": probs}

    def predict_one(self, logits: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
        e = np.exp(logits - logits.max())
        probs = e / e.sum()
        return {"top_class": class_names[int(np.argmax(probs))],
                "probabilities": {c: float(p) for c, p in zip(class_names, probs)}}

    def failed_prediction(self) -> dict[str, Any]:
        return {"top_class": "", "probabilities": None}

    def describe_prediction(self, out: Mapping[str, Any]) -> list[str]:
        probs = out["probabilities"]
        width = max(len(c) for c in probs)
        lines = [f"{c:<{width}}  {p:6.3f}  {'#' * round(40 * p)}"
                 for c, p in sorted(probs.items(), key=lambda kv: -kv[1])]
        return [*lines, f"top class: {out['top_class']}"]

    def csv_header(self, class_names: Sequence[str]) -> list[str]:
        return ["top_class", *(f"p_{c}" for c in class_names)]

    def csv_cells(self, result: Mapping[str, Any], class_names: Sequence[str]) -> list[str]:
        probs = result["probabilities"]
        return [result["top_class"], *("" if probs is None else f"{probs[c]:.6f}" for c in class_names)]


class Regression(Task):
    """Sentiment scores: one output, L1, lowest dev MAE, float scores stored."""

    name = "regression"
    main_metric = "mae"
    higher_is_better = False
    metrics = REGRESSION_METRICS
    prediction_dtype = np.float64
    has_classes = False
    main_is_fraction = False
    key_suffix = "-reg"
    report = "selfcross.analysis.regression_report:make_regression_report"
    help = ("sentiment scores of a data root written by import-features (one output, L1 loss, best dev "
            "MAE; reports MAE, Pearson r, Acc-2 has-0/non-0 with F1, Acc-5, Acc-7)")

    def n_outputs(self, n_classes: int) -> int:
        return 1

    def targets(self, split: Any, dtype: Any, device: Any) -> Any:
        import torch

        scores = getattr(split, "scores", None)
        if scores is None:
            raise DataError(getattr(split, "fold_dir", None),
                            f"split {split.name!r} has no sentiment scores (S_score.npy); "
                            "regression needs a data root written by import-features")
        return torch.from_numpy(np.asarray(scores, dtype=np.float64).copy()).to(device=device, dtype=dtype)

    def loss(self, outputs: Any, targets: Any, reduction: str = "mean", weight: Any = None) -> Any:
        import torch.nn.functional as F

        return F.l1_loss(outputs[:, 0], targets.to(outputs.dtype), reduction=reduction)

    def dev_summary(self, outputs: Any, data: Any) -> dict[str, float]:
        m = regression_metrics(data.scores_np, outputs[:, 0].float().cpu().numpy())
        # a history row keeps numbers: undefined is NaN here, null in the JSON written from it
        return {f"dev_{k}": math.nan if m[k] is None else m[k] for k in ("mae", "pearson_r")}

    def evaluate(self, outputs: Any, data: Any, class_names: Sequence[str]) -> dict[str, Any]:
        scores = outputs[:, 0].double().cpu().numpy()
        return {"metrics": regression_metrics(data.scores_np, scores), "y_true": data.scores_np,
                "y_pred": scores}

    def predict_one(self, logits: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
        return {"score": float(logits[0])}

    def failed_prediction(self) -> dict[str, Any]:
        return {"score": None}

    def describe_prediction(self, out: Mapping[str, Any]) -> list[str]:
        return [f"sentiment score: {out['score']:+.4f}"]

    def csv_header(self, class_names: Sequence[str]) -> list[str]:
        return ["score"]

    def csv_cells(self, result: Mapping[str, Any], class_names: Sequence[str]) -> list[str]:
        return ["" if result["score"] is None else f"{result['score']:.6f}"]


#: Every task, by name (the CLI's ``--task`` choices are these names).
REGISTRY: dict[str, Task] = {t.name: t for t in (Classification(), Regression())}
#: Tasks a run can be trained for.
TASKS: tuple[str, ...] = tuple(REGISTRY)
#: The task of a config that does not name one (every run before tasks existed).
DEFAULT_TASK: str = TASKS[0]


def get_task(name: str | Task | None) -> Task:
    """The task called ``name`` (``None``: the default task; a :class:`Task` is returned as is).

    Raises:
        ConfigError: no such task.
    """
    if isinstance(name, Task):
        return name
    task = REGISTRY.get(DEFAULT_TASK if name is None else name)
    if task is None:
        raise ConfigError(f"task {name!r} must be one of {', '.join(TASKS)}")
    return task


def task_help() -> str:
    """``--task``'s help: every task's one line (argparse fills in the default)."""
    return "; ".join(f"{t.name}: {t.help}" for t in REGISTRY.values()) + " (default: %(default)s)"


def task_of_config(config: Mapping[str, Any]) -> Task:
    """The task of a stored ``RunConfig.to_dict()`` (older configs name none: the default)."""
    return get_task((config.get("train") or {}).get("task"))


def n_outputs(task: str, n_classes: int) -> int:
    """Output width of the model's head: one per class, or one score."""
    return get_task(task).n_outputs(n_classes)


def task_loss(task: str, outputs: Any, targets: Any, reduction: str = "mean") -> Any:
    """Cross-entropy on class indices, or L1 between the single output and the scores."""
    return get_task(task).loss(outputs, targets, reduction)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Every sentiment-regression metric of one split (see the module docstring)."""
    from scipy.stats import pearsonr
    from sklearn.metrics import accuracy_score, f1_score

    from selfcross.sentiment import bin_scores  # start-up cost (module docstring)

    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"need as many predictions as scores (got {p.size} and {t.size}), at least one")
    if not np.isfinite(p).all():  # a diverged model: no metric means anything
        reason = "the model's outputs are not finite"
        return {**dict.fromkeys(REGRESSION_METRICS), "n": int(t.size),
                "undefined": dict.fromkeys(REGRESSION_METRICS, reason)}
    nz = t != 0
    undefined: dict[str, str] = {}
    if np.ptp(p) == 0 or np.ptp(t) == 0:
        which = "predictions" if np.ptp(p) == 0 else "true scores"
        undefined["pearson_r"] = f"constant {which}: the correlation is 0/0"
    if not nz.any():
        undefined["acc2_non0"] = undefined["f1_non0"] = "every true score is 0: no utterance left"
    out: dict[str, Any] = {
        "mae": float(np.mean(np.abs(p - t))),
        "pearson_r": None if "pearson_r" in undefined else float(pearsonr(p, t).statistic),
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
    out["undefined"] = undefined
    return out


def undefined_reason(metrics: Mapping[str, Any], name: str) -> str | None:
    """Why ``name`` has no value in a metric dict (``None`` when it has one)."""
    value = metrics.get(name)
    if value is not None and not (isinstance(value, float) and math.isnan(value)):
        return None
    reasons = metrics.get("undefined") or {}
    return reasons.get(name) or ("not computed" if name not in metrics else "undefined")


def clean_json(x: Any) -> Any:
    """NaN/inf -> None, NumPy scalars and arrays -> Python, recursively: what
    ``json.dumps(..., allow_nan=False)`` accepts. The one JSON cleaner of selfcross (run folders,
    the results store, reports): an undefined number is written as null, and a metric dict says
    why under ``undefined``."""
    if isinstance(x, Mapping):
        return {k: clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [clean_json(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    return x
