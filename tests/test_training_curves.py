"""Training curves: per-epoch history in the run folder and the results store, the report's
learning-curve figures, and the optional TensorBoard / MLflow loggers (read back offline)."""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from grid_helpers import grid
from selfcross.analysis.report import make_report
from selfcross.cli import main
from selfcross.experiments.store import Predictions, ResultsStore, RunKey
from selfcross.training.callbacks import LoggerOptions

#: What a classification run's history row holds (epoch_time_s: wall time, kept out of determinism checks).
ROW_KEYS = ["epoch", "train_loss", "dev_loss", "dev_accuracy", "dev_balanced_accuracy", "dev_f1_macro",
            "dev_f1_weighted", "lr", "epoch_time_s"]

GRID = {"max_epochs": 3, "progress": False, "threads_per_worker": 1, "device": "cpu", "log": lambda m: None}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from selfcross.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("data") / "root", "small", seed=0, n_folds=1,
                          n_utterances=120)


def _train_cli(data_root, out, *extra):
    return main(["train", "--data", str(data_root / "fold01"), "--out", str(out), "--modalities", "t",
                 "--max-epochs", "3", "--threads", "1", "--device", "cpu", "--no-progress", *extra])


def _history_row(epoch, rng):
    return {"epoch": epoch, "train_loss": float(2 / epoch + rng.random() * 0.1),
            "dev_loss": float(2.2 / epoch + rng.random() * 0.1), "dev_accuracy": float(0.2 + 0.05 * epoch),
            "dev_balanced_accuracy": float(0.2 + 0.04 * epoch), "lr": 1e-3, "epoch_time_s": 0.5}


def _record(store, kind, fold, seed, history):
    key = RunKey(kind, "at", "stat", "paper", fold, seed)
    rid = store.record_started(key, {}, "h", f"fp{fold}", f"/runs/{key}")
    y = np.arange(20) % 4
    store.record_done(rid, {"dev": {"accuracy": 0.5}, "test": {"accuracy": 0.5, "balanced_accuracy": 0.5},
                            "best_epoch": 2, "epochs_run": len(history), "history": history},
                      Predictions(y, y, np.eye(4)[y], None), ["a", "b", "c", "d"], 1.0)
    return rid


# ------------------------------------------------------------------------------ run folder
@pytest.mark.slow
def test_run_folder_history_json_and_csv_agree(data_root, tmp_path):
    assert _train_cli(data_root, tmp_path / "run") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    history = metrics["history"]
    assert len(history) == metrics["epochs_run"] == 3
    assert all(set(row) == set(ROW_KEYS) for row in history)  # metrics.json sorts its keys
    assert all(np.isfinite(row["epoch_time_s"]) and row["epoch_time_s"] >= 0 for row in history)
    with open(tmp_path / "run" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ROW_KEYS
    assert [{k: float(v) for k, v in r.items()} for r in rows] == [
        {k: float(v) for k, v in h.items()} for h in history
    ]


# ---------------------------------------------------------------------------------- loggers
@pytest.mark.slow
def test_tensorboard_logs_every_epoch(data_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert _train_cli(data_root, tmp_path / "run", "--tensorboard", str(tmp_path / "tb")) == 0
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    acc = EventAccumulator(str(tmp_path / "tb" / "run"))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == set(ROW_KEYS[1:])
    for name in ("train_loss", "dev_loss", "dev_accuracy", "lr"):
        events = acc.Scalars(name)
        assert [e.step for e in events] == [h["epoch"] for h in history]
        np.testing.assert_allclose([e.value for e in events], [h[name] for h in history], rtol=1e-6)


@pytest.mark.slow
def test_mlflow_logs_params_and_every_epoch(data_root, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    assert _train_cli(data_root, tmp_path / "run", "--mlflow", uri) == 0
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("selfcross")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.params["model.kind"] == "self" and run.data.params["model.modalities"] == "text"
    assert run.data.params["train.max_epochs"] == "3"
    for name in ("train_loss", "dev_accuracy", "epoch_time_s"):
        points = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)
        assert [m.step for m in points] == [h["epoch"] for h in history]
        np.testing.assert_allclose([m.value for m in points], [h[name] for h in history], rtol=1e-12)


@pytest.mark.parametrize(("flag", "value", "module", "extra"), [
    ("--tensorboard", "tb", "tensorboard", "selfcross[tensorboard]"),
    ("--mlflow", "file:mlruns", "mlflow", "selfcross[mlflow]"),
])
@pytest.mark.parametrize("command", ["train", "grid"])
def test_missing_logger_package_names_the_extra(data_root, tmp_path, capsys, monkeypatch, command, flag,
                                                value, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    if command == "train":
        args = ["train", "--data", str(data_root / "fold01"), "--out", str(tmp_path / "run")]
    else:
        args = ["grid", "--data", str(data_root), "--db", str(tmp_path / "r.sqlite"), "--modalities", "t"]
    assert main([*args, flag, str(tmp_path / value)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and extra in err and flag in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("command", ["train", "grid"])
def test_unusable_mlflow_uri_is_one_line_before_training(data_root, tmp_path, capsys, command):
    if command == "train":
        args = ["train", "--data", str(data_root / "fold01"), "--out", str(tmp_path / "run")]
    else:
        args = ["grid", "--data", str(data_root), "--db", str(tmp_path / "r.sqlite"), "--modalities", "t"]
    assert main([*args, "--mlflow", "bogus://x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--mlflow bogus://x: MLflow cannot log there" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "r.sqlite").exists()


# ------------------------------------------------------------------------------ store, report
def test_store_keeps_history_and_clears_it_on_restart(tmp_path):
    rng = np.random.default_rng(0)
    history = [_history_row(e, rng) for e in (1, 2, 3)]
    with ResultsStore.open(tmp_path / "r.sqlite", lock=True) as s:
        rid = _record(s, "self", 1, 1, history)
        assert s.history(rid) == history
        other = _record(s, "cross", 1, 1, history[:1])
        assert s.history(other) == history[:1]
        key = RunKey("cross", "at", "stat", "paper", 1, 1)
        s._conn.execute("UPDATE runs SET status='failed' WHERE id=?", (other,))
        assert s.record_started(key, {}, "h", "fp1", "/r") == other
        assert s.history(other) == [] and s.history(rid) == history


def test_store_written_before_histories_still_reports_and_migrates(tmp_path):
    db = tmp_path / "old.sqlite"
    with ResultsStore.open(db, lock=True) as s:
        old_id = _record(s, "self", 1, 1, [])
    con = sqlite3.connect(db)  # the layout of a store written before the history table existed
    con.execute("DROP TABLE history")
    con.commit()
    con.close()

    md = make_report(db, tmp_path / "rep").read_text()  # read-only: the table is not added
    assert "1 run(s) have no stored per-epoch history" in md
    assert not list((tmp_path / "rep" / "figures").glob("curves_*"))
    with ResultsStore.open(db, create=False) as s:
        assert s.history(old_id) == []

    rng = np.random.default_rng(1)
    history = [_history_row(e, rng) for e in (1, 2)]
    with ResultsStore.open(db, lock=True) as s:  # a grid opening it adds the table, keeps the rows
        new_id = _record(s, "cross", 1, 1, history)
        assert s.history(new_id) == history and s.history(old_id) == []
        assert len(s.runs()) == 2
    md = make_report(db, tmp_path / "rep2").read_text()
    assert "(figures/curves_at.png)" in md and "1 run(s) have no stored per-epoch history" in md


def test_report_draws_curves_per_modality_set(tmp_path):
    rng = np.random.default_rng(2)
    with ResultsStore.open(tmp_path / "r.sqlite", lock=True) as s:
        for kind in ("self", "cross"):
            for fold in (1, 2):
                for seed in (1, 2, 3):
                    _record(s, kind, fold, seed, [_history_row(e, rng) for e in range(1, 4 + seed + fold)])
    out = tmp_path / "rep"
    md = make_report(tmp_path / "r.sqlite", out).read_text()
    png = out / "figures" / "curves_at.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Training curves" in md and "![curves_at](figures/curves_at.png)" in md
    assert "no stored per-epoch history" not in md
    assert "figures/curves_at.png" in json.loads((out / "results.json").read_text())["figures"]


@pytest.mark.slow
def test_grid_stores_history_logs_each_run_and_reports_curves(data_root, tmp_path):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    db, uri = tmp_path / "r.sqlite", (tmp_path / "mlruns").as_uri()
    summary = grid(data_root, models=("self", "cross"), modalities=("at",), seeds="1", db=db,
                       loggers=LoggerOptions(tensorboard=str(tmp_path / "tb"), mlflow=uri), **GRID)
    assert summary.complete and summary.done == 2
    with ResultsStore.open(db, create=False) as s:
        runs = s.runs()
        for run in runs:
            folder = json.loads((Path(run.run_dir) / "metrics.json").read_text())
            assert s.history(run.id) == folder["history"]
            acc = EventAccumulator(str(tmp_path / "tb" / run.run_key))
            acc.Reload()
            assert [e.value for e in acc.Scalars("dev_accuracy")] == pytest.approx(
                [h["dev_accuracy"] for h in folder["history"]])
    client = MlflowClient(tracking_uri=uri)
    logged = client.search_runs([client.get_experiment_by_name("selfcross").experiment_id])
    assert sorted(r.info.run_name for r in logged) == sorted(r.run_key for r in runs)
    md = make_report(db, tmp_path / "rep").read_text()
    assert "![curves_at](figures/curves_at.png)" in md
    assert (tmp_path / "rep" / "figures" / "curves_at.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regression_histories_draw_the_dev_mae(tmp_path):
    from selfcross.analysis.curves import curve_figures
    from selfcross.analysis.report import collect

    rng = np.random.default_rng(3)
    with ResultsStore.open(tmp_path / "r.sqlite", lock=True) as s:
        for kind in ("self", "cross"):
            history = [{"epoch": e, "train_loss": 1 / e, "dev_loss": 1.1 / e, "dev_mae": float(0.9 - 0.1 * e),
                        "dev_pearson_r": float("nan") if e == 1 else float(rng.random()), "lr": 1e-3,
                        "epoch_time_s": 0.2} for e in (1, 2, 3)]
            rid = _record(s, kind, 1, 1, history)
            assert s.history(rid)[0]["dev_pearson_r"] is None  # NaN stored as JSON null
            assert s.history(rid)[1:] == history[1:]
        files, missing = curve_figures(s, collect(s).cells, tmp_path / "figures")
    assert [f.name for f in files] == ["curves_at.png"] and missing == 0
