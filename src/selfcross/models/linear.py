"""The linear floor: logistic regression on per-utterance statistics of one fold.

Why: a deep model is only worth its cost if it beats a simple model on the *same* folds.
Per utterance, each frame-sequence modality (audio, video) becomes the mean and standard
deviation of its valid frames (the lengths files say which); text becomes its mean word
vector plus, when the fold stores word ids, TF-IDF over word-id 1-2 grams. Dense features
are standardised on the training split (scikit-learn ``StandardScaler``); TF-IDF is kept
as scikit-learn computes it (l2-normalised rows). A scikit-learn ``LogisticRegression`` is
fitted on train for each ``C`` of :data:`C_GRID`; the ``C`` with the best dev accuracy
(the deep runs' model-selection metric; ties go to the smaller ``C``) is evaluated on test
once. :mod:`selfcross.experiments.baseline` runs it over the folds of a data root into the
results store.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from selfcross.folds.reader import Fold, Split

#: Inverse regularisation strengths tried on each fold's dev split.
C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: Utterances read per chunk (memory-mapped arrays are never read whole).
CHUNK = 256
#: lbfgs iterations before a fit counts as not converged.
MAX_ITER = 5000


@dataclass
class Features:
    """One split's features: ``dense`` [n, D] float64 and ``docs`` (word-id strings) or ``None``."""

    dense: np.ndarray
    docs: list[str] | None


def _frame_statistics(split: Split, modality: str) -> np.ndarray:
    """[n, 2F] mean and std over each utterance's valid frames (``t < length``)."""
    out = []
    for start in range(0, len(split), CHUNK):
        idx = np.arange(start, min(start + CHUNK, len(split)))
        x, lengths = split.get_batch(idx, [modality])
        x64 = x[modality].astype(np.float64)
        mask = (np.arange(x64.shape[1])[None, :] < lengths[modality][:, None])[..., None]
        count = np.maximum(mask.sum(axis=1), 1)
        mean = (x64 * mask).sum(axis=1) / count
        std = np.sqrt((((x64 - mean[:, None, :]) * mask) ** 2).sum(axis=1) / count)
        out.append(np.concatenate([mean, std], axis=1))
    return np.concatenate(out)


def _text_features(split: Split) -> tuple[np.ndarray, list[str] | None]:
    """Mean word vector [n, F] over the words present, and word-id documents for TF-IDF."""
    means: list[np.ndarray] = []
    docs: list[str] | None = [] if split.word_ids([0]) is not None else None
    for start in range(0, len(split), CHUNK):
        idx = np.arange(start, min(start + CHUNK, len(split)))
        x = split.get_batch(idx, ["text"])[0]["text"].astype(np.float64)
        ids = split.word_ids(idx)
        # id 0 is padding; in the vector form a padded position is an all-zero row
        present = (ids != 0) if ids is not None else (x != 0).any(axis=2)
        means.append((x * present[..., None]).sum(axis=1) / np.maximum(present.sum(axis=1), 1)[:, None])
        if docs is not None and ids is not None:
            docs.extend(" ".join(str(i) for i in row[row != 0]) for row in ids)
    return np.concatenate(means), docs


def split_features(split: Split, modalities: Sequence[str]) -> Features:
    """The linear model's input for one split (see the module docstring)."""
    blocks, docs = [], None
    for m in modalities:
        if m == "text":
            mean, docs = _text_features(split)
            blocks.append(mean)
        else:
            blocks.append(_frame_statistics(split, m))
    return Features(np.concatenate(blocks, axis=1), docs)


class LinearFloor:
    """StandardScaler (dense) + TF-IDF (word ids, when present) + LogisticRegression."""

    def __init__(self, c: float) -> None:
        self.c = c
        self.scaler = StandardScaler()
        self.tfidf = TfidfVectorizer(token_pattern=r"\S+", ngram_range=(1, 2), lowercase=False)
        self.model = LogisticRegression(C=c, max_iter=MAX_ITER)
        self.converged = True

    def _matrix(self, f: Features, fit: bool) -> Any:
        dense = self.scaler.fit_transform(f.dense) if fit else self.scaler.transform(f.dense)
        if f.docs is None:
            return dense
        words = self.tfidf.fit_transform(f.docs) if fit else self.tfidf.transform(f.docs)
        return sparse.hstack([sparse.csr_matrix(dense), words], format="csr")

    def fit(self, f: Features, y: np.ndarray) -> LinearFloor:
        """Fit on the training split; records whether lbfgs converged within ``MAX_ITER``."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            self.model.fit(self._matrix(f, fit=True), y)
        self.converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return self

    def probabilities(self, f: Features, n_classes: int) -> np.ndarray:
        """[n, n_classes] class probabilities (columns of classes absent from train are 0)."""
        p = self.model.predict_proba(self._matrix(f, fit=False))
        out = np.zeros((p.shape[0], n_classes))
        out[:, self.model.classes_] = p
        return out


@dataclass
class LinearFit:
    """One fold's linear floor: the chosen model's dev predictions and test probabilities.

    Attributes:
        c: the ``C`` chosen on dev accuracy.
        dev_accuracy_by_c: dev accuracy of every ``C`` tried (keys ``repr(C)``).
        converged: whether lbfgs converged within :data:`MAX_ITER` for the chosen ``C``.
        n_features: ``{"dense": D, "tfidf": number of word-id n-grams}``.
        dev_pred: int ``[n_dev]`` predicted classes.
        test_probs: float ``[n_test, n_classes]`` class probabilities.
    """

    c: float
    dev_accuracy_by_c: dict[str, float]
    converged: bool
    n_features: dict[str, int]
    dev_pred: np.ndarray
    test_probs: np.ndarray


def fit_fold(fold: Fold, modalities: Sequence[str], c_grid: Sequence[float] = C_GRID) -> LinearFit:
    """Fit on train for each C, choose C on dev accuracy (ties: the smaller C), and score dev
    and test with that model once."""
    k = fold.n_classes
    feats = {s: split_features(sp, modalities) for s, sp in fold.splits.items()}
    best: tuple[float, LinearFloor] | None = None
    by_c: dict[str, float] = {}
    for c in c_grid:
        model = LinearFloor(c).fit(feats["train"], fold.train.labels)
        dev_acc = float(np.mean(model.probabilities(feats["dev"], k).argmax(1) == fold.dev.labels))
        by_c[repr(c)] = dev_acc
        if best is None or dev_acc > best[0]:
            best = (dev_acc, model)
    assert best is not None
    model = best[1]
    n_tfidf = len(model.tfidf.vocabulary_) if feats["train"].docs is not None else 0
    return LinearFit(
        c=model.c, dev_accuracy_by_c=by_c, converged=model.converged,
        n_features={"dense": int(feats["train"].dense.shape[1]), "tfidf": n_tfidf},
        dev_pred=model.probabilities(feats["dev"], k).argmax(1),
        test_probs=model.probabilities(feats["test"], k),
    )
