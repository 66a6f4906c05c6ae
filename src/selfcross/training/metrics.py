"""Classification metrics, named by what they are, and the paper's labels for two of them.

Why a module of its own: the paper's "WA" is *balanced* accuracy and its "UA" is *plain*
accuracy, the opposite of most speech-emotion papers (FACTS.md §4). selfcross stores every
number under an unambiguous name (``accuracy``, ``balanced_accuracy``) and only maps to the
paper's labels when printing with ``--paper-labels``.

Conventions (chosen once, here):

* ``balanced_accuracy`` = mean of per-class recall over the classes **present in y_true**.
  A class with no true example has no recall (0/0); it is left out of the mean. This is
  scikit-learn's ``balanced_accuracy_score`` (its warning about such classes silenced, see
  :func:`accuracy_and_balanced`). Predictions of such a class still count as errors for the
  classes they were taken from.
* ``recall_per_class[name]`` is ``None`` for a class absent from y_true (undefined, not 0).
* ``precision_macro`` / ``f1_macro`` average over the classes present in y_true **or**
  y_pred (scikit-learn's default label set). A class never predicted has precision 0/0,
  counted as 0 (``zero_division=0``); a class predicted but absent from y_true has
  precision 0 and F1 0. Classes absent from both say nothing and are left out.
* ``precision_weighted`` / ``f1_weighted`` weight classes by their support in y_true, so
  absent classes have weight 0; ``zero_division=0`` as above.
* ``confusion_matrix`` always has every class (rows = true, columns = predicted).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
)

from selfcross.paper import PAPER_METRIC_LABELS

#: Scalar metrics in the order they are printed.
SCALAR_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "precision_weighted",
    "precision_macro",
    "f1_macro",
    "f1_weighted",
)

#: One-line explanation of the paper's metric labels (FACTS.md §4), printed with them.
PAPER_LABEL_NOTE: str = (
    "paper labels (Rajan et al. 2022): WA = balanced_accuracy (mean per-class recall), "
    "UA = accuracy (plain); most speech-emotion papers use the opposite names"
)


def accuracy_and_balanced(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """Plain and balanced accuracy (scikit-learn's), e.g. for early stopping on the dev split.

    scikit-learn warns when a class is predicted that has no true example, or when only one
    class occurs; both are covered by the module docstring's convention, so it is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        return float(accuracy_score(y_true, y_pred)), float(balanced_accuracy_score(y_true, y_pred))


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Every metric selfcross reports for one split, as a JSON-ready dict.

    Args:
        y_true: true labels, ints in ``0 .. len(class_names) - 1``, shape ``[N]``.
        y_pred: predicted labels, same range and shape.
        class_names: class name of each label index.

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``precision_weighted``, ``precision_macro``,
        ``f1_macro``, ``f1_weighted`` (floats), ``recall_per_class`` ({name: float or None}),
        ``confusion_matrix`` (``[n_classes][n_classes]`` ints, rows = true), ``n`` (int).
        See the module docstring for absent classes and zero divisions.

    Raises:
        ValueError: empty input, shapes that disagree, or labels out of range.
    """
    yt = np.asarray(y_true).reshape(-1)
    yp = np.asarray(y_pred).reshape(-1)
    k = len(class_names)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has {yt.size} labels but y_pred has {yp.size}")
    if yt.size == 0:
        raise ValueError("no labels to score: the split is empty")
    if k == 0:
        raise ValueError("class_names is empty")
    for name, arr in (("y_true", yt), ("y_pred", yp)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= k:
            raise ValueError(f"{name} has labels outside 0..{k - 1} ({k} classes)")
    yt = yt.astype(np.int64)
    yp = yp.astype(np.int64)

    cm = confusion_matrix(yt, yp, labels=np.arange(k))
    support = cm.sum(axis=1)
    present = support > 0
    recall = np.full(k, np.nan)
    recall[present] = np.diag(cm)[present] / support[present]

    accuracy, balanced = accuracy_and_balanced(yt, yp)
    return {
        "accuracy": accuracy,
        "balanced_accuracy": balanced,
        "precision_weighted": float(precision_score(yt, yp, average="weighted", zero_division=0)),
        "precision_macro": float(precision_score(yt, yp, average="macro", zero_division=0)),
        "f1_macro": float(f1_score(yt, yp, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(yt, yp, average="weighted", zero_division=0)),
        "recall_per_class": {
            str(name): (float(recall[i]) if present[i] else None) for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.astype(int).tolist(),
        "n": int(yt.size),
    }


def paper_label(name: str) -> str:
    """The label the paper prints for metric ``name`` (``WA``/``UA``), else ``name`` itself."""
    return PAPER_METRIC_LABELS.get(name, name)


def metric_label(name: str, paper_labels: bool = False) -> str:
    """Display label: ``name``, or with ``paper_labels`` e.g. ``"WA (balanced_accuracy)"``."""
    if paper_labels and name in PAPER_METRIC_LABELS:
        return f"{paper_label(name)} ({name})"
    return name


def format_metrics_table(
    results: Mapping[str, Mapping[str, Any]],
    paper_labels: bool = False,
    per_class: bool = True,
    metrics: Sequence[str] = SCALAR_METRICS,
) -> str:
    """A compact text table of metrics, one column per split.

    Args:
        results: split name -> :func:`classification_metrics` dict (e.g. ``{"dev": ..,
            "test": ..}``), or :func:`~selfcross.tasks.regression_metrics` dicts.
        paper_labels: label accuracy/balanced accuracy as the paper does (UA/WA) and add the
            one-line mapping note (FACTS.md §4).
        per_class: also print per-class recall rows (``-`` where the class is absent).
        metrics: the metric rows, in order (a task's ``metrics``; default: classification's).

    Returns:
        The table as a string (no trailing newline).
    """
    splits = list(results)
    rows: list[tuple[str, list[str]]] = []
    order = tuple(metrics)
    paper_labels = paper_labels and all(m in order for m in PAPER_METRIC_LABELS)
    if paper_labels:  # the paper's table lists WA first, then UA
        order = ("balanced_accuracy", "accuracy", *(m for m in order if m not in PAPER_METRIC_LABELS))
    for name in order:
        rows.append((metric_label(name, paper_labels), [_fmt(results[s].get(name)) for s in splits]))
    if per_class:
        names: list[str] = []
        for s in splits:
            for n in results[s].get("recall_per_class", {}):
                if n not in names:
                    names.append(n)
        for n in names:
            vals = [_fmt(results[s].get("recall_per_class", {}).get(n)) for s in splits]
            rows.append((f"recall[{n}]", vals))
    rows.append(("n", [str(results[s].get("n", "-")) for s in splits]))

    width = max(len(r[0]) for r in rows)
    colw = [max(len(s), 7) for s in splits]
    lines = ["  ".join([" " * width, *(s.rjust(w) for s, w in zip(splits, colw))])]
    for label, vals in rows:
        lines.append("  ".join([label.ljust(width), *(v.rjust(w) for v, w in zip(vals, colw))]))
    if paper_labels:
        lines.append(PAPER_LABEL_NOTE)
    for s in splits:
        for name, reason in (results[s].get("undefined") or {}).items():
            lines.append(f"{name} ({s}) is undefined: {reason}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
