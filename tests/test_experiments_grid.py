"""The grid: planning, up-front validation, failures, worker death, driver kill, resume."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from faults import Faults
from grid_helpers import grid, plan
from selfcross.analysis.report import make_report
from selfcross.config import config_hash
from selfcross.errors import ConfigError, DataError, StoreError
from selfcross.experiments.executors import RunSpec, execute_run
from selfcross.experiments.grid import parse_range
from selfcross.experiments.store import ResultsStore, RunKey

TINY = {"max_epochs": 2, "progress": False, "threads_per_worker": 1, "device": "cpu", "log": lambda m: None}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from selfcross.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("data") / "root"
    return make_synthetic(root, "small", seed=0, n_folds=2, n_utterances=140)


def _rows(db):
    con = sqlite3.connect(db)
    try:
        runs = con.execute("SELECT run_key, status, id FROM runs ORDER BY run_key").fetchall()
        preds = dict(con.execute("SELECT run_id, COUNT(*) FROM predictions GROUP BY run_id").fetchall())
    finally:
        con.close()
    return runs, preds


def test_plan_skips_invalid_and_hash_rules():
    runs, notices = plan(("self", "cross"), ("a", "av", "atv"), [1, 2], [1], include_no_sp=True)
    keys = {str(r.key) for r in runs}
    assert "cross-a-stat-paper-f01-s01" not in keys and "self-a-concat-paper-f01-s01" not in keys
    assert "cross-atv-concat-paper-f02-s01" in keys and "self-atv-stat-paper-f01-s01" in keys
    assert len(runs) == (1 + 2 + 2 + 2 + 2) * 2  # self a; self av x2; self atv x2; cross av x2; cross atv x2
    assert any("cross on a" in n for n in notices) and any("noSP" in n for n in notices)
    base = plan(("self",), ("at",), [1], [3], device="cpu")[0][0].config
    other_device = plan(("self",), ("at",), [1], [3], device="cuda")[0][0].config
    capped = plan(("self",), ("at",), [1], [3], max_epochs=2)[0][0].config
    assert config_hash(base.to_dict()) != config_hash(other_device.to_dict())
    assert config_hash(base.to_dict()) != config_hash(capped.to_dict())
    filled = base.to_dict()
    filled["data"] = {"fold_dir": "/x"}
    filled["model"]["shapes"] = {}
    assert config_hash(filled) == config_hash(base.to_dict())


def test_parse_range():
    assert parse_range("1-3,5", "folds") == [1, 2, 3, 5]
    assert parse_range([2, 1, 2], "seeds") == [1, 2]
    with pytest.raises(ConfigError):
        parse_range("3-1", "folds")
    with pytest.raises(ConfigError):
        parse_range("0", "seeds")
    with pytest.raises(ConfigError):
        plan(("selfish",), ("a",), [1], [1])


def test_missing_fold_is_a_data_error_before_anything(data_root, tmp_path):
    db = tmp_path / "r.sqlite"
    with pytest.raises(DataError, match="fold03"):
        grid(data_root, models=("self",), modalities=("a",), folds="1-3", seeds="1", db=db, **TINY)
    gap = tmp_path / "gap"
    shutil.copytree(data_root, gap)
    (gap / "fold01").rename(gap / "fold03")
    with pytest.raises(DataError, match="fold01 is missing"):
        grid(gap, models=("self",), modalities=("a",), seeds="1", db=db, **TINY)
    assert not db.exists()


def test_invalid_fold_is_a_data_error_before_anything(data_root, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(data_root, bad)
    labels = bad / "fold02" / "test_label.npy"
    np.save(labels, np.load(labels)[:-3])  # fewer labels than utterances
    db = tmp_path / "r.sqlite"
    with pytest.raises(DataError, match="fold02"):
        grid(bad, models=("self",), modalities=("a",), seeds="1", db=db, **TINY)
    assert not db.exists() and not (tmp_path / "runs").exists()


def test_db_not_sqlite_untouched(data_root, tmp_path):
    db = tmp_path / "r.sqlite"
    db.write_text("not a database\n")
    with pytest.raises(StoreError, match="not an SQLite"):
        grid(data_root, models=("self",), modalities=("a",), folds="1", seeds="1", db=db, **TINY)
    assert db.read_text() == "not a database\n"


@pytest.mark.slow
def test_worker_death_failure_retry_and_resume(data_root, tmp_path):
    db = tmp_path / "r.sqlite"
    marker = tmp_path / "died"
    faults = Faults(die_once=marker, raise_key="self-v-stat-paper-f01-s01")
    args = dict(models=("self",), modalities=("a", "v"), folds="1", seeds="1", db=db, **TINY)
    s = grid(data_root, executor_options={"before_run": faults}, **args)
    assert marker.exists()  # a worker process really died (os._exit) mid-grid
    assert (s.planned, s.done, s.failed) == (2, 1, 1)
    assert "injected fault" in s.failures[0][1]
    s2 = grid(data_root, **args)
    assert (s2.already_done, s2.skipped_failed, s2.ran) == (1, 1, 0)
    s3 = grid(data_root, retry_failed=True, **args)
    assert (s3.already_done, s3.ran, s3.done) == (1, 1, 1) and s3.complete
    runs, preds = _rows(db)
    assert [(k, st) for k, st, _ in runs] == [("self-a-stat-paper-f01-s01", "done"),
                                             ("self-v-stat-paper-f01-s01", "done")]
    with ResultsStore.open(db, create=False) as store:
        rows = store.runs()
        # each run stores one prediction per test utterance of its own modality set (audio-only
        # keeps the utterances without video frames that video runs drop)
        assert all(preds[r.id] == r.test_metrics["n"] for r in rows)
        assert {r.attempts for r in rows} == {1, 2}
        assert rows[0].config["data"]["fingerprint"] == rows[0].data_fingerprint
    # a complete run folder is read back by the worker function, not retrained (a driver
    # killed after its worker finished loses nothing)
    row = next(r for r in rows if r.run_key.startswith("self-a-"))
    spec = RunSpec(RunKey("self", "a", "stat", "paper", 1, 1), row.config, row.config_hash,
                   str(data_root / "fold01"), row.run_dir, row.data_fingerprint, 1)
    out = execute_run(spec)
    assert out.status == "done" and out.reused
    assert out.metrics["test"]["accuracy"] == row.test_accuracy
    report = make_report(db, tmp_path / "report")
    assert (tmp_path / "report" / "figures" / "scores.png").stat().st_size > 0
    assert "| A |" in report.read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_driver_killed_then_same_command_completes(data_root, tmp_path):
    db = tmp_path / "r.sqlite"
    cmd = [sys.executable, "-m", "selfcross", "grid", "--data", str(data_root), "--models", "self,cross",
           "--modalities", "a,av", "--folds", "1", "--seeds", "1", "--db", str(db), "--max-epochs", "2",
           "--device", "cpu", "--threads-per-worker", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # wait for the first finished run (a hang is failed by the timeout marker)
        while proc.poll() is None and not (db.exists() and any(st == "done" for _, st, _ in _rows(db)[0])):
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, like kill -9
        proc.wait()
    runs_before, _ = _rows(db)
    assert any(st == "done" for _, st, _ in runs_before)
    # the same grid again (in-process here to save an interpreter start): completes it
    s = grid(data_root, models=("self", "cross"), modalities=("a", "av"), folds="1", seeds="1", db=db,
                 **TINY)
    assert s.complete and s.already_done >= 1
    runs, preds = _rows(db)
    keys = [k for k, _, _ in runs]
    assert keys == sorted(set(keys)) and len(keys) == 3  # no duplicates, nothing missing
    assert all(st == "done" for _, st, _ in runs)
    with ResultsStore.open(db, create=False) as store:
        assert sorted(preds) == sorted(r.id for r in store.runs())
        assert all(preds[r.id] == r.test_metrics["n"] for r in store.runs())
    run_dirs = sorted(p.name for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))
    assert len(run_dirs) == 3 and all((tmp_path / "runs" / d / "metrics.json").is_file() for d in run_dirs)
    assert Path(str(db) + ".lock").exists()


def test_run_identity_device_and_dtype_count_threads_and_eval_batch_do_not():
    base = plan(("self",), ("at",), [1], [3], device="cpu")[0][0].config

    def variant(section, key, value):
        d = base.to_dict()
        d[section][key] = value
        return config_hash(d)

    h = config_hash(base.to_dict())
    assert variant("train", "device", "cuda") != h  # CPU and GPU kernels round differently
    assert variant("train", "device", "cuda:1") == variant("train", "device", "cuda")  # which GPU: no
    assert variant("train", "dtype", "float64") != h
    assert variant("train", "num_threads", 7) == h
    assert variant("train", "eval_batch_size", 3) == h


def test_auto_device_hashes_as_the_device_it_resolves_to(monkeypatch):
    import torch

    auto = plan(("self",), ("at",), [1], [3], device="auto")[0][0].config.to_dict()
    for cuda, same_as in ((False, "cpu"), (True, "cuda")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        concrete = plan(("self",), ("at",), [1], [3], device=same_as)[0][0].config.to_dict()
        assert config_hash(auto) == config_hash(concrete)


@pytest.mark.slow
def test_grid_retrains_after_the_data_changed_local(tmp_path):
    """Re-preparing the data root and rerunning the grid records new metrics, not the old folder's."""
    from selfcross.folds import fingerprint
    from selfcross.synthetic import make_synthetic

    root = tmp_path / "data"
    make_synthetic(root, "small", seed=0, n_folds=1, n_utterances=140)
    args = dict(models=("self",), modalities=("a",), folds="1", seeds="1", db=tmp_path / "r.sqlite", **TINY)
    first = grid(root, **args)
    make_synthetic(root, "small", seed=1, n_folds=1, n_utterances=140)  # same path, other data
    second = grid(root, **args)
    assert first.done == 1 and second.done == 1 and second.reused_folders == 0
    with ResultsStore.open(tmp_path / "r.sqlite", create=False) as store:
        rows = {r.data_fingerprint: r for r in store.runs("done")}
    new_fp = fingerprint(root / "fold01")
    assert len(rows) == 2 and new_fp in rows
    assert rows[new_fp].config["data"]["fingerprint"] == new_fp  # trained on the data it is filed under


def test_grid_says_when_the_store_mixes_results_versions(data_root, tmp_path):
    import selfcross
    from selfcross.experiments.store import Predictions
    from selfcross.folds import fingerprint

    db = tmp_path / "r.sqlite"
    fp = fingerprint(data_root / "fold01")
    y = np.array([0, 1])
    with ResultsStore.open(db, lock=True) as store:
        for seed, version in ((1, 0), (2, selfcross.RESULTS_VERSION)):
            run = plan(("self",), ("a",), [1], [seed], device="cpu", max_epochs=2)[0][0]
            cfg = run.config.to_dict()
            cfg["environment"] = {"results_version": version}
            rid = store.record_started(run.key, cfg, config_hash(cfg), fp, "/r")
            store.record_done(rid, {"test": {"accuracy": 1.0}}, Predictions(y, y, np.eye(2), None),
                              ["x", "y"], 1.0, config=cfg)
    notices = []
    s = grid(data_root, models=("self",), modalities=("a",), folds="1", seeds="1", db=db,
                 **{**TINY, "log": notices.append})
    assert (s.already_done, s.ran) == (1, 0)  # nothing trained
    mixed = [n for n in notices if "mix code versions" in n]
    assert len(mixed) == 1 and "0: 1 run(s)" in mixed[0]
    assert f"{selfcross.RESULTS_VERSION}: 1 run(s)" in mixed[0]
