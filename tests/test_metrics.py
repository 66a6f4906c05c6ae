"""Metric functions against values computed by hand (and sklearn where it agrees)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score

from selfcross.training.metrics import (
    PAPER_LABEL_NOTE,
    classification_metrics,
    format_metrics_table,
    metric_label,
    paper_label,
)


def test_hand_computed_with_class_absent_from_y_true():
    # classes a b c d; d never occurs in y_true but is predicted once (a false positive).
    # confusion (rows true): a [2 1 0 0], b [0 1 0 1], c [0 0 1 0], d [0 0 0 0]
    names = ["a", "b", "c", "d"]
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 3, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sklearn warning may leak out
        m = classification_metrics(y_true, y_pred, names)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls a 2/3, b 1/2, c 1; d undefined and left out of the mean
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["recall_per_class"] == {"a": pytest.approx(2 / 3), "b": 0.5, "c": 1.0, "d": None}
    # precisions a 1, b 1/2, c 1, d 0 (predicted once, wrong); macro over the 4 seen classes
    assert m["precision_macro"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert m["precision_weighted"] == pytest.approx((3 * 1 + 2 * 0.5 + 1 * 1) / 6)
    # F1 a 0.8, b 0.5, c 1, d 0
    assert m["f1_macro"] == pytest.approx((0.8 + 0.5 + 1 + 0) / 4)
    assert m["f1_weighted"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 1) / 6)
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_zero_division_class_never_predicted_and_class_absent_everywhere():
    # classes x y z: y is never predicted (precision 0/0 -> 0), z appears nowhere (left out)
    m = classification_metrics(np.array([0, 1, 1]), np.array([0, 0, 0]), ["x", "y", "z"])
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["balanced_accuracy"] == pytest.approx(0.5)  # recall x 1, y 0
    assert m["recall_per_class"] == {"x": 1.0, "y": 0.0, "z": None}
    assert m["precision_macro"] == pytest.approx((1 / 3 + 0) / 2)
    assert m["precision_weighted"] == pytest.approx((1 * (1 / 3) + 2 * 0) / 3)
    assert m["f1_macro"] == pytest.approx((0.5 + 0) / 2)
    assert m["f1_weighted"] == pytest.approx(0.5 / 3)
    assert m["confusion_matrix"] == [[1, 0, 0], [2, 0, 0], [0, 0, 0]]


def test_perfect_predictions():
    y = np.array([0, 1, 2, 2, 1])
    m = classification_metrics(y, y, ["p", "q", "r"])
    for k in ("accuracy", "balanced_accuracy", "precision_macro", "precision_weighted", "f1_macro"):
        assert m[k] == 1.0


def test_balanced_differs_from_plain_on_imbalanced_data():
    # 8 of class 0, 2 of class 1; predicting all 0 gives accuracy .8 but balanced .5
    m = classification_metrics([0] * 8 + [1] * 2, [0] * 10, ["major", "minor"])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["balanced_accuracy"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "y_true, y_pred, msg",
    [
        ([], [], "empty"),
        ([0, 1], [0], "labels but"),
        ([0, 3], [0, 1], "outside"),
        ([0, 1], [0, -1], "outside"),
        ([0.0, 1.0], [0, 1], "integer"),
    ],
)
def test_bad_input_is_a_clear_error(y_true, y_pred, msg):
    with pytest.raises(ValueError, match=msg):
        classification_metrics(np.asarray(y_true), np.asarray(y_pred), ["a", "b", "c"])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 6).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=40),
        )
    )
)
def test_properties_against_sklearn(data):
    k, pairs = data
    yt = np.array([p[0] for p in pairs])
    yp = np.array([p[1] for p in pairs])
    m = classification_metrics(yt, yp, [f"c{i}" for i in range(k)])
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (k, k) and cm.sum() == len(pairs)
    assert m["accuracy"] == pytest.approx(np.trace(cm) / len(pairs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(yt, yp))
    present = [v for v in m["recall_per_class"].values() if v is not None]
    assert len(present) == len(set(yt.tolist()))
    assert m["balanced_accuracy"] == pytest.approx(np.mean(present))
    for key in ("precision_macro", "precision_weighted", "f1_macro", "f1_weighted"):
        assert 0.0 <= m[key] <= 1.0


def test_paper_labels_follow_facts_section_4():
    # the paper's WA is balanced accuracy and its UA is plain accuracy
    assert paper_label("balanced_accuracy") == "WA"
    assert paper_label("accuracy") == "UA"
    assert paper_label("f1_macro") == "f1_macro"
    assert metric_label("balanced_accuracy", paper_labels=True) == "WA (balanced_accuracy)"
    assert metric_label("balanced_accuracy") == "balanced_accuracy"


def test_format_table():
    m = classification_metrics([0, 1, 1], [0, 1, 0], ["neg", "pos", "none"])
    plain = format_metrics_table({"dev": m, "test": m})
    assert "balanced_accuracy" in plain and "WA" not in plain
    assert "recall[none]" in plain  # absent class shown as '-'
    row = next(line for line in plain.splitlines() if line.startswith("recall[none]"))
    assert row.split()[1:] == ["-", "-"]
    paper = format_metrics_table({"test": m}, paper_labels=True)
    assert "WA (balanced_accuracy)" in paper and "UA (accuracy)" in paper
    assert PAPER_LABEL_NOTE in paper
    acc_row = next(line for line in paper.splitlines() if line.startswith("UA (accuracy)"))
    assert acc_row.split()[-1] == f"{2 / 3:.4f}"
