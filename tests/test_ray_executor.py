"""Ray executor on a local Ray instance (2 CPUs, no dashboard), one session for the whole file.

What is checked: the same runs give the same metrics and predictions as the local executor;
a worker killed once is re-executed by Ray and the store ends complete and duplicate-free;
a worker that always dies gives a failed row naming the Ray error while the rest completes;
Ctrl-C cancels the task in flight and leaves a store the same command completes.
"""

from __future__ import annotations

import logging
import sqlite3

import numpy as np
import pytest

ray = pytest.importorskip(
    "ray", reason="Ray is not installed (optional extra: pip install selfcross[ray]); the local executor "
    "needs no Ray - run these with the venv that has it (.venv-full)")

import faults  # noqa: E402
from faults import Faults  # noqa: E402
from grid_helpers import grid  # noqa: E402
from selfcross.errors import ConfigError  # noqa: E402
from selfcross.experiments.ray_executor import RayExecutor, attempts_file  # noqa: E402
from selfcross.experiments.store import ResultsStore  # noqa: E402

TINY = {"max_epochs": 2, "progress": False, "threads_per_worker": 1, "device": "cpu", "log": lambda m: None}


# Ray workers do not have tests/ on their path: ship the fault injector by value
ray.cloudpickle.register_pickle_by_value(faults)


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for every test here (startup takes ~10-20 s)."""
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from selfcross.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("data") / "root"
    return make_synthetic(root, "small", seed=0, n_folds=1, n_utterances=140)


def _rows(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT run_key, status, attempts, error FROM runs ORDER BY run_key").fetchall()
    finally:
        con.close()


def _ray_grid(data_root, tmp_path, name, **kw):
    args = dict(folds="1", seeds="1", db=tmp_path / name / "r.sqlite", executor="ray", **TINY)
    args.update(kw)
    return grid(data_root, **args)


def test_resource_errors_are_config_errors(ray_session):
    with pytest.raises(ConfigError, match="cpus-per-run"):
        RayExecutor(cpus_per_run=0)
    with pytest.raises(ConfigError, match="fraction"):
        RayExecutor(gpus_per_run=1.5)
    with pytest.raises(ConfigError, match="max-retries"):
        RayExecutor(max_retries=-1)
    with pytest.raises(ConfigError, match="no Ray node"):
        RayExecutor(cpus_per_run=3)  # the instance has 2 CPUs: it would wait forever
    with pytest.raises(ConfigError, match="0 GPUs"):  # the instance is started with num_gpus=0
        RayExecutor(gpus_per_run=0.25)
    ex = RayExecutor(workers=1, cpus_per_run=0.5)
    assert ex.capacity == 4  # 2 CPUs / 0.5 per run: the driver keeps every slot busy
    ex.close()
    assert ray.is_initialized()  # a session the executor did not start is left running


def test_cuda_without_gpus_per_run_is_refused(ray_session, data_root, tmp_path):
    with pytest.raises(ConfigError, match="gpus-per-run"):
        _ray_grid(data_root, tmp_path, "cuda", models=("self",), modalities=("a",), device="cuda")


@pytest.mark.slow
def test_same_metrics_as_local_executor_and_resume(ray_session, data_root, tmp_path):
    cells = dict(models=("self", "cross"), modalities=("av",))
    local = grid(data_root, db=tmp_path / "local" / "r.sqlite", folds="1", seeds="1", workers=2,
                     **cells, **TINY)
    remote = _ray_grid(data_root, tmp_path, "ray", **cells)
    assert local.complete and remote.complete and remote.done == 2 and remote.reused_folders == 0
    with ResultsStore.open(tmp_path / "local" / "r.sqlite", create=False) as a, \
            ResultsStore.open(tmp_path / "ray" / "r.sqlite", create=False) as b:
        ra = {r.run_key: r for r in a.runs()}
        rb = {r.run_key: r for r in b.runs()}
        assert sorted(ra) == sorted(rb) == ["cross-av-stat-paper-f01-s01", "self-av-stat-paper-f01-s01"]
        for key in ra:
            assert ra[key].config_hash == rb[key].config_hash
            assert ra[key].data_fingerprint == rb[key].data_fingerprint
            assert ra[key].test_metrics == rb[key].test_metrics and ra[key].dev_metrics == rb[key].dev_metrics
            assert ra[key].best_epoch == rb[key].best_epoch
            pa, pb = a.predictions(ra[key].id), b.predictions(rb[key].id)
            np.testing.assert_array_equal(pa.y_pred, pb.y_pred)
            np.testing.assert_allclose(pa.probs, pb.probs, rtol=0, atol=1e-12)
            assert rb[key].run_dir.startswith(str((tmp_path / "ray" / "runs").resolve()))
    again = _ray_grid(data_root, tmp_path, "ray", models=("self", "cross"), modalities=("av",))
    assert (again.already_done, again.ran) == (2, 0)


@pytest.mark.slow
def test_worker_killed_once_is_retried(ray_session, data_root, tmp_path, caplog):
    marker = tmp_path / "died"
    caplog.set_level(logging.WARNING, logger="selfcross.experiments.ray_executor")
    s = _ray_grid(data_root, tmp_path, "once", models=("self",), modalities=("a", "v"),
                  executor_options={"max_retries": 1, "before_run": Faults(die_once=marker)})
    assert marker.exists()  # a Ray worker process really exited (os._exit(137)) mid-grid
    victim = marker.read_text()
    assert (s.planned, s.done, s.failed) == (2, 2, 0) and s.complete
    assert f"run {victim} finished on attempt 2" in caplog.text  # Ray re-executed exactly that run
    rows = _rows(tmp_path / "once" / "r.sqlite")
    assert [(k, st, n) for k, st, n, _ in rows] == [("self-a-stat-paper-f01-s01", "done", 1),
                                                   ("self-v-stat-paper-f01-s01", "done", 1)]
    con = sqlite3.connect(tmp_path / "once" / "r.sqlite")
    per_run = dict(con.execute("SELECT run_id, COUNT(*) FROM predictions GROUP BY run_id").fetchall())
    con.close()
    with ResultsStore.open(tmp_path / "once" / "r.sqlite", create=False) as store:
        runs = store.runs()
    # each run's predictions once: one per test utterance of its own modality set
    assert len(per_run) == 2 and all(per_run[r.id] == r.test_metrics["n"] for r in runs)
    runs_dir = tmp_path / "once" / "runs"
    assert not list(runs_dir.glob(".*.attempts"))  # the attempt counters are cleaned up


@pytest.mark.slow
def test_worker_always_dies_is_a_failed_row_with_reason(ray_session, data_root, tmp_path):
    s = _ray_grid(data_root, tmp_path, "always", models=("self",), modalities=("a", "v"),
                  executor_options={"max_retries": 1,
                                    "before_run": Faults(die_key="self-a-stat-paper-f01-s01")})
    assert (s.done, s.failed) == (1, 1) and not s.complete
    rows = {k: (st, err) for k, st, _, err in _rows(tmp_path / "always" / "r.sqlite")}
    assert rows["self-v-stat-paper-f01-s01"] == ("done", None)
    status, err = rows["self-a-stat-paper-f01-s01"]
    assert status == "failed"
    assert err.startswith("WorkerCrashedError") and "2 attempt(s)" in err and "max_retries=1" in err
    run_dir = tmp_path / "always" / "runs"
    assert not any(p.name.startswith("self-a") for p in run_dir.iterdir())  # no half-written folder
    assert not attempts_file(run_dir / "x").exists() and not list(run_dir.glob(".*.attempts"))


@pytest.mark.slow
def test_ctrl_c_cancels_in_flight_and_store_stays_consistent(ray_session, data_root, tmp_path, monkeypatch):
    calls = {"next": 0, "cancel": 0}
    real_next, real_cancel = RayExecutor.next_outcome, ray.cancel

    def next_then_interrupt(self):
        calls["next"] += 1
        if calls["next"] == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second run is in flight
        return real_next(self)

    def counting_cancel(ref, **kw):
        calls["cancel"] += 1
        return real_cancel(ref, **kw)

    monkeypatch.setattr(RayExecutor, "next_outcome", next_then_interrupt)
    monkeypatch.setattr(ray, "cancel", counting_cancel)
    # 2 CPUs per run on a 2-CPU instance: one run in flight at a time
    args = dict(models=("self",), modalities=("a", "v"), executor_options={"cpus_per_run": 2})
    with pytest.raises(KeyboardInterrupt):
        _ray_grid(data_root, tmp_path, "cc", **args)
    assert calls["cancel"] == 1  # the run in flight was cancelled
    rows = _rows(tmp_path / "cc" / "r.sqlite")
    assert [(k, st) for k, st, _, _ in rows] == [("self-a-stat-paper-f01-s01", "done"),
                                                 ("self-v-stat-paper-f01-s01", "running")]  # = not finished
    monkeypatch.setattr(RayExecutor, "next_outcome", real_next)
    s = _ray_grid(data_root, tmp_path, "cc", **args)
    assert s.complete and (s.already_done, s.ran, s.done) == (1, 1, 1)
    rows = _rows(tmp_path / "cc" / "r.sqlite")
    assert [(k, st, n) for k, st, n, _ in rows] == [("self-a-stat-paper-f01-s01", "done", 1),
                                                    ("self-v-stat-paper-f01-s01", "done", 2)]


def _spec(tmp_path, fold_dir, fingerprint="f" * 64):
    from selfcross.experiments.executors import RunSpec
    from selfcross.experiments.store import RunKey

    key = RunKey("self", "a", "stat", "paper", 1, 1)
    return RunSpec(key, {"train": {"device": "cpu"}}, "h" * 64, str(fold_dir), str(tmp_path / "runs" / "x"),
                   fingerprint)


def test_worker_refuses_invisible_or_different_data(tmp_path, monkeypatch):
    from selfcross.experiments import ray_executor
    from selfcross.experiments.executors import RunOutcome

    out, attempt, _ = ray_executor.run_on_worker(_spec(tmp_path, tmp_path / "not-mounted"))
    assert out.status == "failed" and "not visible on Ray node" in out.error and attempt == 1
    (tmp_path / "fold01").mkdir()
    spec = _spec(tmp_path, tmp_path / "fold01")
    seen = {"data": {"fingerprint": "0" * 64}}
    monkeypatch.setattr(ray_executor, "execute_run", lambda s, before: RunOutcome(s, "done", {}, None, seen))
    out, attempt, _ = ray_executor.run_on_worker(spec)
    assert out.status == "failed" and "sees different data" in out.error
    assert attempt == 2  # the counter file of that run folder counts attempts
    seen["data"]["fingerprint"] = spec.data_fingerprint
    assert ray_executor.run_on_worker(spec)[0].status == "done"


@pytest.mark.slow
def test_grid_retrains_after_the_data_changed_ray(ray_session, tmp_path):
    """A run folder trained on the old data is retrained, not read back nor refused as 'different data'."""
    from selfcross.folds import fingerprint
    from selfcross.synthetic import make_synthetic

    root = tmp_path / "data"
    make_synthetic(root, "small", seed=0, n_folds=1, n_utterances=140)
    args = dict(models=("self",), modalities=("a",))
    first = _ray_grid(root, tmp_path, "changed", **args)
    make_synthetic(root, "small", seed=1, n_folds=1, n_utterances=140)  # same path, other data
    second = _ray_grid(root, tmp_path, "changed", **args)
    assert first.done == 1 and (second.done, second.failed, second.reused_folders) == (1, 0, 0)
    new_fp = fingerprint(root / "fold01")
    with ResultsStore.open(tmp_path / "changed" / "r.sqlite", create=False) as store:
        row = next(r for r in store.runs("done") if r.data_fingerprint == new_fp)
    assert row.config["data"]["fingerprint"] == new_fp
