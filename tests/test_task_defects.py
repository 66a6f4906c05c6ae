"""Interactions of the task with the store, the reports and the training loop.

Each test here failed before the task was part of a run's identity (schema 1): a constant
regression prediction crashed the report, perturbed regression scores were truncated to
integers, a store holding two tasks could not be reported, and a NaN dev metric ended in an
``AssertionError`` or in a ``metrics.json`` that strict JSON parsers refuse.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from feature_files import write_mfn
from selfcross.analysis.report import make_report
from selfcross.errors import SelfcrossError
from selfcross.experiments.store import Predictions, ResultsStore, RunKey
from selfcross.prepare import import_features


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _add_run(store: ResultsStore, kind: str, seed: int, task: str, y_pred: np.ndarray,
             y_true: np.ndarray, metrics: dict) -> int:
    """One finished run written through the store's public API (as the grid driver does)."""
    key = RunKey(kind, "av", "stat", "paper", 1, seed)
    config = {"train": {"task": task, "seed": seed}, "model": {"kind": kind}}
    run_id = store.record_started(key, config, f"hash-{task}", "fp", f"/runs/{key}-{task}")
    n = len(y_true)
    probs = np.zeros((n, 0)) if task == "regression" else np.eye(2)[y_pred.astype(int)]
    store.record_done(run_id, {"dev": metrics, "test": metrics, "best_epoch": 1, "epochs_run": 1},
                      Predictions(y_true, y_pred, probs, None), ["neg", "pos"], 1.0)
    return run_id


def _regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    from selfcross.tasks import regression_metrics

    return regression_metrics(y_true, y_pred)


TRUTH = np.array([-1.5, 0.5, 2.0, -0.5, 1.0, 0.0])


def _regression_store(path: Path, constant_seed: int | None) -> None:
    rng = np.random.default_rng(0)
    with ResultsStore.open(path, lock=True) as store:
        for seed in (1, 2):
            for kind in ("self", "cross"):
                pred = (np.full(len(TRUTH), 0.25) if (kind, seed) == ("cross", constant_seed)
                        else TRUTH + rng.normal(scale=0.5, size=len(TRUTH)))
                _add_run(store, kind, seed, "regression", pred, TRUTH, _regression_metrics(TRUTH, pred))


def test_a_constant_regression_run_is_reported_as_undefined_with_the_reason(tmp_path):
    _regression_store(tmp_path / "r.sqlite", constant_seed=2)
    md = make_report(tmp_path / "r.sqlite", tmp_path / "report").read_text()
    assert "undefined in 1" in md  # the cross cell: one of its two runs has no Pearson r
    assert "Pearson r is undefined in 1 of 2 run(s) (constant predictions: the correlation is 0/0)" in md
    results = _strict((tmp_path / "report" / "results.json").read_text())
    cross = next(c for c in results["cells"] if c["model"] == "cross")
    assert cross["undefined"]["pearson_r"]["n_runs"] == 1


def test_perturbed_regression_scores_are_stored_as_floats_and_reported(tmp_path):
    _regression_store(tmp_path / "r.sqlite", constant_seed=None)
    perturbed = np.array([0.7, -1.3, 2.9, 0.1, -0.6, 1.4])
    with ResultsStore.open(tmp_path / "r.sqlite", lock=True) as store:
        for run in store.runs():
            shifted = perturbed + 0.1 * run.seed
            store.record_robustness(run.id, "drop:a", 0, _regression_metrics(TRUTH, shifted), shifted)
        stored = store.robustness()
    np.testing.assert_array_equal(stored[0].y_pred, perturbed + 0.1 * 1)
    assert stored[0].y_pred.dtype == np.float64
    md = make_report(tmp_path / "r.sqlite", tmp_path / "report").read_text()
    assert "### Robustness to a perturbed modality" in md and "`drop:a`" in md


def test_a_store_of_two_tasks_reports_each_and_never_mixes_them(tmp_path):
    db = tmp_path / "mixed.sqlite"
    labels = np.array([0, 1, 1, 0, 1, 0])
    with ResultsStore.open(db, lock=True) as store:
        for kind in ("self", "cross"):
            pred = labels if kind == "self" else 1 - labels
            acc = float(np.mean(pred == labels))
            _add_run(store, kind, 1, "classification", pred, labels,
                     {"accuracy": acc, "balanced_accuracy": acc})
        # the same run keys, finished later, for the other task
        for kind in ("self", "cross"):
            pred = TRUTH + 0.5
            _add_run(store, kind, 1, "regression", pred, TRUTH, _regression_metrics(TRUTH, pred))
    index = make_report(db, tmp_path / "both").read_text()
    assert "[classification](classification/report.md)" in index
    assert "[regression](regression/report.md)" in index
    only = make_report(db, tmp_path / "cls", task="classification")
    results = _strict((only.parent / "results.json").read_text())
    assert results["task"] == "classification"
    cells = {c["variant"]: c for c in results["cells"]}
    assert cells["self"]["accuracy"]["mean"] == 1.0 and cells["cross"]["accuracy"]["mean"] == 0.0
    with ResultsStore.open(db, create=False) as store:
        keys = {(r.task, r.run_key) for r in store.runs()}
    assert ("regression", "self-av-stat-paper-f01-s01-reg") in keys
    assert ("classification", "self-av-stat-paper-f01-s01") in keys


def test_a_schema_1_store_is_migrated_with_each_runs_task(tmp_path):
    db = tmp_path / "old.sqlite"
    _regression_store(db, constant_seed=None)
    con = sqlite3.connect(db)  # what a store written before tasks were part of the identity holds
    con.execute("DROP INDEX IF EXISTS runs_cell")
    con.execute("ALTER TABLE runs DROP COLUMN task")
    con.execute("ALTER TABLE runs DROP COLUMN data_root")
    con.execute("UPDATE runs SET run_key = replace(run_key, '-reg', '')")
    con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
    with ResultsStore.open(db, create=False) as store:
        assert store.schema_version() == 2
        runs = store.runs()
    assert {r.task for r in runs} == {"regression"} and all(r.run_key.endswith("-reg") for r in runs)
    assert all(r.data_root is None for r in runs)


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mfn")
    write_mfn(tmp / "mfn")
    return import_features("mfn", tmp / "mfn", tmp / "root", center=3).fold


def _nan_dev_metric(monkeypatch, name: str, epochs: set[int]) -> None:
    """The dev selection metric is NaN at ``epochs`` (as for a model whose outputs diverged)."""
    from selfcross.training import loop

    real = loop._dev_scores
    calls = {"n": 0}

    def scores(session):
        out = real(session)
        calls["n"] += 1
        if calls["n"] in epochs:
            out[name] = float("nan")
        return out

    monkeypatch.setattr(loop, "_dev_scores", scores)


@pytest.mark.parametrize("task, metric", [("classification", "dev_accuracy"), ("regression", "dev_mae")])
def test_a_dev_metric_nan_at_every_epoch_is_one_line_naming_the_epoch(fold, tmp_path, monkeypatch, task,
                                                                       metric):
    from selfcross.config import ModelConfig, RunConfig, TrainConfig
    from selfcross.training import train_run

    _nan_dev_metric(monkeypatch, metric, {1, 2})
    config = RunConfig(model=ModelConfig(kind="self", modalities=("audio",)),
                       train=TrainConfig(seed=1, max_epochs=2, patience=5, num_threads=1, task=task))
    with pytest.raises(SelfcrossError) as err:
        train_run(config, fold, tmp_path / "run", progress=False)
    message = str(err.value)
    assert "epoch 1" in message and metric.replace("_", " ") in message and "\n" not in message


def test_a_nan_dev_epoch_is_never_selected_and_metrics_json_is_strict(fold, tmp_path, monkeypatch):
    from selfcross.config import ModelConfig, RunConfig, TrainConfig
    from selfcross.training import train_run

    _nan_dev_metric(monkeypatch, "dev_mae", {2})
    config = RunConfig(model=ModelConfig(kind="self", modalities=("audio",)),
                       train=TrainConfig(seed=1, max_epochs=3, patience=5, num_threads=1, task="regression"))
    metrics = train_run(config, fold, tmp_path / "run", progress=False)
    assert metrics["best_epoch"] != 2
    saved = _strict((tmp_path / "run" / "metrics.json").read_text())
    assert saved["history"][1]["dev_mae"] is None
