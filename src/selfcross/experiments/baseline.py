"""The linear floor: logistic regression on per-utterance statistics, on the folds of a data root.

Why: a deep model is only worth its cost if it beats a simple model on the *same* folds.
Per utterance, each frame-sequence modality (audio, video) becomes the mean and standard
deviation of its valid frames (the lengths files say which); text becomes its mean word
vector plus, when the fold stores word ids, TF-IDF over word-id 1-2 grams. Dense features
are standardised on the training split (scikit-learn ``StandardScaler``); TF-IDF is kept
as scikit-learn computes it (l2-normalised rows). A scikit-learn ``LogisticRegression`` is
fitted on train for each ``C`` of :data:`C_GRID`; the ``C`` with the best dev accuracy
(the deep runs' model-selection metric; ties go to the smaller ``C``) is evaluated on test
once.

Results go to the results store as model ``linear`` (pooling ``stat``, preset ``none``,
seed 0: the fit is deterministic), one run per (modality set, fold), so ``selfcross report``
shows it beside self and cross and pairs it with every seed of the same fold.
"""

from __future__ import annotations

import csv
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from selfcross import RESULTS_VERSION
from selfcross.config import config_hash
from selfcross.errors import DataError
from selfcross.experiments.store import Predictions, ResultsStore, RunKey
from selfcross.folds import layout
from selfcross.folds.reader import Fold, Split, is_fold, list_folds, read_fold
from selfcross.labels import PAPER_MODALITY_SETS, modality_code, parse_modalities
from selfcross.training.metrics import classification_metrics

#: Model kind, pooling, preset and seed of linear runs in the results store.
LINEAR_KIND = "linear"
LINEAR_POOLING = "stat"
LINEAR_PRESET = "none"
LINEAR_SEED = 0
#: Inverse regularisation strengths tried on each fold's dev split.
C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: Utterances read per chunk (memory-mapped arrays are never read whole).
CHUNK = 256
MAX_ITER = 5000


@dataclass
class Features:
    """One split's features: ``dense`` [n, D] float64 and ``docs`` (word-id strings) or ``None``."""

    dense: np.ndarray
    docs: list[str] | None


@dataclass
class FoldResult:
    """One linear run: the fold, its metrics (``dev``, ``test``, chosen ``C``) and where it came from."""

    fold: int
    modalities: str
    metrics: dict[str, Any]
    resumed: bool = False


@dataclass
class BaselineSummary:
    """What :func:`run_baseline` did: every fold result and the files written."""

    results: list[FoldResult] = field(default_factory=list)
    table_md: Path | None = None
    table_csv: Path | None = None
    db: str = ""

    def table(self) -> str:
        """The markdown results table (per fold and mean)."""
        return _markdown_table(self.results)


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


def fit_fold(
    fold: Fold, modalities: Sequence[str], c_grid: Sequence[float] = C_GRID
) -> tuple[dict[str, Any], Predictions]:
    """Fit on train for each C, choose C on dev accuracy, evaluate that model on test once.

    Returns:
        ``(metrics, test predictions)``; metrics has ``dev``, ``test``
        (:func:`~selfcross.training.metrics.classification_metrics`), ``C``, ``dev_accuracy_by_C``,
        ``converged`` and ``n_features``.
    """
    k, names = fold.n_classes, fold.class_names
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
    dev_pred = model.probabilities(feats["dev"], k).argmax(1)
    probs = model.probabilities(feats["test"], k)
    metrics = {
        "dev": classification_metrics(fold.dev.labels, dev_pred, names),
        "test": classification_metrics(fold.test.labels, probs.argmax(1), names),
        "C": model.c, "dev_accuracy_by_C": by_c, "converged": model.converged,
        "n_features": {"dense": int(feats["train"].dense.shape[1]),
                       "tfidf": len(model.tfidf.vocabulary_) if feats["train"].docs is not None else 0},
    }
    return metrics, Predictions(fold.test.labels, probs.argmax(1), probs, fold.test.ids)


def baseline_config(modalities: Sequence[str], c_grid: Sequence[float] = C_GRID) -> dict[str, Any]:
    """The result-relevant description of a linear run (hashed like a deep run's config)."""
    return {"model": {"kind": LINEAR_KIND, "modalities": list(modalities),
                      "features": "mean+std of valid frames; text: mean word vector + TF-IDF "
                                  "word-id 1-2 grams",
                      "scaler": "StandardScaler", "classifier": "LogisticRegression(lbfgs)",
                      "C_grid": list(c_grid), "select_on": "dev accuracy", "max_iter": MAX_ITER}}


def resolve_folds(data: str | Path) -> dict[int, Path]:
    """Fold number -> folder for a data root (``fold01 ..``) or a single fold folder."""
    path = Path(data)
    if is_fold(path):
        return {layout.fold_number(path.name) or 1: path}
    return {k: p for k, p in enumerate(list_folds(path), start=1)}


def _modality_sets(spec: Sequence[str] | str | None, available: tuple[str, ...], fold_dir: Path) -> list[str]:
    """Requested modality-set codes; default = every paper set the fold can serve."""
    if spec is None:
        return [c for c in PAPER_MODALITY_SETS if set(parse_modalities(c)) <= set(available)]
    sets = [spec] if isinstance(spec, str) else list(spec)
    codes = []
    for s in sets:
        mods = parse_modalities(s)
        missing = [m for m in mods if m not in available]
        if missing:
            raise DataError(fold_dir, f"has no {', '.join(missing)} (requested by --modalities {s}); "
                                      f"this fold has: {', '.join(available) or 'nothing'}")
        codes.append(modality_code(mods))
    return list(dict.fromkeys(codes))


def run_baseline(
    data: str | Path,
    out_dir: str | Path,
    modalities: Sequence[str] | str | None = None,
    db: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> BaselineSummary:
    """``selfcross baseline``: the linear floor on every fold of ``data``, into a results store.

    Args:
        data: a data root (``fold01 .. foldK``) or one fold folder.
        out_dir: ``results.md`` / ``results.csv`` (per fold and mean) and ``foldNN-SET/metrics.json``
            + ``predictions.npz`` (the run folders' formats).
        modalities: modality sets (``"a"``, ``["a", "atv"]``); ``None`` = every paper set the
            folds can serve. Each set is one linear model on the union of its features.
        db: results database (default ``<out_dir>/results.sqlite``); a run already done there
            (same fold content, same settings) is not refitted.
        log: where progress lines go (default: stderr).

    Raises:
        DataError: unusable data root or fold, or a requested modality the fold lacks.
        StoreError: unusable database or another writer holds it.
    """
    say = log or (lambda msg: print(msg, file=sys.stderr))
    out = Path(out_dir)
    db_path = Path(db) if db is not None else out / "results.sqlite"
    folds = resolve_folds(data)
    from selfcross.folds import fingerprint, root_fingerprint

    root = root_fingerprint(data)

    plan: list[tuple[int, Path, str, str]] = []  # (fold, folder, set code, fingerprint)
    for k, path in folds.items():
        available = read_fold(path, None, check_values=False).modalities
        codes = _modality_sets(modalities, available, path)
        plan += [(k, path, code, fingerprint(path)) for code in codes]
    summary = BaselineSummary(db=str(db_path))
    with ResultsStore.open(db_path, create=True, lock=True) as store:
        for k, path, code, fp in plan:
            summary.results.append(_one_run(store, k, path, code, fp, out, say, root))
    out.mkdir(parents=True, exist_ok=True)
    summary.table_md = out / "results.md"
    command = f"selfcross baseline --data {data} --out {out_dir}"
    if modalities is not None:
        command += f" --modalities {modalities if isinstance(modalities, str) else ','.join(modalities)}"
    if db is not None:
        command += f" --db {db}"
    summary.table_md.write_text(f"Command: `{command}`  \nTest scores in %, mean (sample std) over "
                                f"folds.\n\n{summary.table()}\n")
    summary.table_csv = out / "results.csv"
    _write_csv(summary.results, summary.table_csv)
    return summary


def _one_run(store: ResultsStore, k: int, path: Path, code: str, fp: str, out: Path,
             say: Callable[[str], None], root: str | None = None) -> FoldResult:
    """Fit (or find already done in the store) the linear run of one fold and modality set."""
    mods = parse_modalities(code)
    cfg = baseline_config(mods)
    h = config_hash(cfg)
    key = RunKey(LINEAR_KIND, code, LINEAR_POOLING, LINEAR_PRESET, k, LINEAR_SEED)
    if store.status_of(key, h, fp) == "done":
        row = next(r for r in store.runs("done")
                   if r.run_key == str(key) and r.config_hash == h and r.data_fingerprint == fp)
        say(f"{path.name} {code}: already done in {store.path} (test accuracy "
            f"{row.test_metrics['accuracy']:.3f})")
        return FoldResult(k, code, {"dev": row.dev_metrics, "test": row.test_metrics,
                                    "C": row.config.get("C")}, resumed=True)
    run_dir = out / f"{path.name}-{code}"
    run_id = store.record_started(key, cfg, h, fp, str(run_dir.resolve()), root)
    t0 = time.perf_counter()
    try:
        fold = read_fold(path, mods)
        metrics, preds = fit_fold(fold, mods)
    except BaseException as e:
        store.record_failed(run_id, f"{type(e).__name__}: {e}", time.perf_counter() - t0)
        raise
    wall = time.perf_counter() - t0
    _write_run_dir(run_dir, cfg, metrics, preds)
    store.record_done(run_id, {**metrics, "wall_time_s": wall}, preds, fold.class_names,
                      wall, config={**cfg, "C": metrics["C"], "data": {"path": str(path.resolve())},
                                    "environment": {"results_version": RESULTS_VERSION}})
    note = "" if metrics["converged"] else " (lbfgs hit max_iter)"
    say(f"{path.name} {code}: C={metrics['C']:g}  dev accuracy {metrics['dev']['accuracy']:.3f}  "
        f"test accuracy {metrics['test']['accuracy']:.3f}  "
        f"balanced {metrics['test']['balanced_accuracy']:.3f}  ({wall:.1f} s){note}")
    return FoldResult(k, code, metrics)


def _write_run_dir(run_dir: Path, cfg: dict[str, Any], metrics: dict[str, Any], preds: Predictions) -> None:
    """``config.json``, ``metrics.json`` and ``predictions.npz`` as a deep run folder has them."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    ids = np.asarray([] if preds.ids is None else list(preds.ids), dtype=str)
    np.savez(run_dir / "predictions.npz", y_true=preds.y_true, y_pred=preds.y_pred, probs=preds.probs,
             ids=ids)


TABLE_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted")


def _mean_std(values: list[float]) -> str:
    a = np.asarray(values, dtype=float) * 100
    std = f"{a.std(ddof=1):.1f}" if a.size > 1 else "-"
    return f"{a.mean():.1f} ({std})"


def _markdown_table(results: list[FoldResult]) -> str:
    """Per fold and mean (sample std over folds) of each modality set, test percentages."""
    head = "| modalities | fold | C | " + " | ".join(f"{m} %" for m in TABLE_METRICS) + " |"
    lines = [head, "|" + "---|" * (3 + len(TABLE_METRICS))]
    for code in dict.fromkeys(r.modalities for r in results):
        rs = [r for r in results if r.modalities == code]
        for r in rs:
            c = r.metrics.get("C")
            vals = " | ".join(f"{100 * r.metrics['test'][m]:.1f}" for m in TABLE_METRICS)
            lines.append(f"| {code} | fold{r.fold:02d} | {'-' if c is None else f'{c:g}'} | {vals} |")
        means = " | ".join(_mean_std([r.metrics["test"][m] for r in rs]) for m in TABLE_METRICS)
        lines.append(f"| {code} | mean (std), {len(rs)} folds | | {means} |")
    return "\n".join(lines)


def _write_csv(results: list[FoldResult], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["modalities", "fold", "C", *(f"test_{m}" for m in TABLE_METRICS), "dev_accuracy"])
        for r in results:
            test = [r.metrics["test"][m] for m in TABLE_METRICS]
            w.writerow([r.modalities, r.fold, r.metrics.get("C"), *test, r.metrics["dev"].get("accuracy")])
