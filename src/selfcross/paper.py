"""The paper's reported numbers (Rajan, Brutti & Cavallaro, ICASSP 2022), held once.

Values are fractions (0..1), mean over 5 folds x 10 seeds, as docs/paper.md (Results) gives them.
The paper prints "WA" for balanced accuracy and "UA" for plain accuracy (docs/paper.md, Metric names);
here they are stored by what they are.
"""

from __future__ import annotations

#: (model kind, modality code) -> {"balanced_accuracy": x, "accuracy": y}
PAPER_RESULTS: dict[tuple[str, str], dict[str, float]] = {
    ("self", "a"): {"balanced_accuracy": 0.365, "accuracy": 0.452},
    ("self", "v"): {"balanced_accuracy": 0.454, "accuracy": 0.513},
    ("self", "t"): {"balanced_accuracy": 0.474, "accuracy": 0.535},
    ("self", "av"): {"balanced_accuracy": 0.483, "accuracy": 0.567},
    ("cross", "av"): {"balanced_accuracy": 0.481, "accuracy": 0.566},
    ("self", "at"): {"balanced_accuracy": 0.518, "accuracy": 0.574},
    ("cross", "at"): {"balanced_accuracy": 0.501, "accuracy": 0.562},
    ("self", "vt"): {"balanced_accuracy": 0.563, "accuracy": 0.614},
    ("cross", "vt"): {"balanced_accuracy": 0.567, "accuracy": 0.617},
    ("self", "atv"): {"balanced_accuracy": 0.587, "accuracy": 0.642},
    ("cross", "atv"): {"balanced_accuracy": 0.578, "accuracy": 0.636},
}

#: Tri-modal ablation: variant -> (mean, std) for each metric.
PAPER_ABLATION: dict[str, dict[str, tuple[float, float]]] = {
    "cross-noSP": {"balanced_accuracy": (0.570, 0.021), "accuracy": (0.634, 0.015)},
    "cross": {"balanced_accuracy": (0.578, 0.024), "accuracy": (0.636, 0.012)},
    "self-noSP": {"balanced_accuracy": (0.584, 0.021), "accuracy": (0.638, 0.019)},
    "self": {"balanced_accuracy": (0.587, 0.022), "accuracy": (0.642, 0.019)},
    "self+cross": {"balanced_accuracy": (0.585, 0.028), "accuracy": (0.642, 0.020)},
}

#: The paper's metric labels: our name -> label printed in the paper (docs/paper.md, Metric names).
PAPER_METRIC_LABELS: dict[str, str] = {"balanced_accuracy": "WA", "accuracy": "UA"}
