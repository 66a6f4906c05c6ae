"""The synthetic benchmark's planted ordering, and a linear probe that measures it.

``make-synthetic`` promises (docs/synthetic.md): text > video > audio, every pair of
modalities beats both of its parts, and all three beat every pair. :func:`ordering_margins`
turns per-modality-set accuracies into the smallest gap of each promise;
:func:`probe_accuracy` gives those accuracies in seconds, without training a model
(shrinkage LDA on time-averaged features), so tests and ``benchmarks/synthetic_probe.py``
can check the generator over many data seeds. ``benchmarks/synthetic_ordering.py`` checks
the same promises with the trained model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selfcross.folds import read_fold
from selfcross.labels import PAPER_MODALITY_SETS, parse_modalities

#: The modality pairs, as modality-set codes.
PAIRS: tuple[str, ...] = ("av", "at", "vt")


def ordering_margins(acc: dict[str, float]) -> dict[str, float]:
    """The smallest gap of each planted promise (negative = broken).

    Args:
        acc: modality-set code (``a``, ``v``, ``t``, ``av``, ``at``, ``vt``, ``atv``) ->
            accuracy.

    Returns:
        ``t-v``, ``v-a``, ``pair-part`` (the smallest pair minus either of its parts) and
        ``atv-pair`` (all three minus the best pair).
    """
    return {
        "t-v": acc["t"] - acc["v"],
        "v-a": acc["v"] - acc["a"],
        "pair-part": min(acc[p] - acc[c] for p in PAIRS for c in p),
        "atv-pair": min(acc["atv"] - acc[p] for p in PAIRS),
    }


def ordering_failures(acc: dict[str, float]) -> list[str]:
    """The planted promises that ``acc`` (modality-set code -> accuracy) breaks, in words."""
    out = []
    if not acc["t"] > acc["v"] > acc["a"]:
        out.append("t > v > a")
    out += [f"{p} > {c}" for p in PAIRS for c in p if not acc[p] > acc[c]]
    out += [f"atv > {p}" for p in PAIRS if not acc["atv"] > acc[p]]
    return out


def probe_accuracy(fold_dir: str | Path) -> dict[str, float]:
    """Test accuracy of shrinkage LDA fitted on the training split's time-averaged features.

    Args:
        fold_dir: one fold folder of a synthetic data root (e.g. ``root/fold01``).

    Returns:
        modality-set code -> test accuracy, for each of the paper's seven modality sets.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    fold = read_fold(fold_dir, check_values=False)
    feats = {}
    for name in ("train", "test"):
        x, lengths = fold.splits[name].get_batch(np.arange(len(fold.splits[name])))
        feats[name] = {m: x[m].sum(1) / lengths[m][:, None] for m in x}
    acc = {}
    for code in PAPER_MODALITY_SETS:
        mods = parse_modalities(code)
        x_train = np.concatenate([feats["train"][m] for m in mods], 1)
        x_test = np.concatenate([feats["test"][m] for m in mods], 1)
        clf = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(x_train, fold.train.labels)
        acc[code] = float(np.mean(clf.predict(x_test) == fold.test.labels))
    return acc
