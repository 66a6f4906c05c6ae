"""The linear floor over the folds of a data root, into the results store.

Why: a deep model is only worth its cost if it beats a simple model on the *same* folds.
The estimator (per-utterance statistics, StandardScaler + TF-IDF + logistic regression,
``C`` chosen on dev) is :mod:`selfcross.models.linear`; this module fits it on every
(fold, modality set) and records each fit as a run.

Results go to the results store as model ``linear`` (pooling ``stat``, preset ``none``,
seed 0: the fit is deterministic), one run per (modality set, fold), so ``selfcross report``
shows it beside self and cross and pairs it with every seed of the same fold.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.config import config_hash
from selfcross.errors import DataError
from selfcross.experiments.store import Predictions, ResultsStore, RunKey
from selfcross.folds import fingerprint, layout, root_fingerprint
from selfcross.folds.reader import Fold, is_fold, list_folds, read_fold
from selfcross.labels import PAPER_MODALITY_SETS, modality_code, parse_modalities
from selfcross.models.linear import C_GRID, MAX_ITER, LinearFit, fit_fold
from selfcross.training.metrics import classification_metrics
from selfcross.version import RESULTS_VERSION

#: Model kind, pooling, preset and seed of linear runs in the results store.
LINEAR_KIND = "linear"
LINEAR_POOLING = "stat"
LINEAR_PRESET = "none"
LINEAR_SEED = 0


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
        fit = fit_fold(fold, mods)
        metrics, preds = _fit_metrics(fold, fit), _test_predictions(fold, fit)
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


def _fit_metrics(fold: Fold, fit: LinearFit) -> dict[str, Any]:
    """``dev`` and ``test`` (:func:`~selfcross.training.metrics.classification_metrics`), ``C``,
    ``dev_accuracy_by_C``, ``converged`` and ``n_features`` of one fit."""
    names = fold.class_names
    return {
        "dev": classification_metrics(fold.dev.labels, fit.dev_pred, names),
        "test": classification_metrics(fold.test.labels, fit.test_probs.argmax(1), names),
        "C": fit.c, "dev_accuracy_by_C": fit.dev_accuracy_by_c, "converged": fit.converged,
        "n_features": fit.n_features,
    }


def _test_predictions(fold: Fold, fit: LinearFit) -> Predictions:
    return Predictions(fold.test.labels, fit.test_probs.argmax(1), fit.test_probs, fold.test.ids)


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
