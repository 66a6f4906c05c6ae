"""Executors: where the grid's training runs execute. The driver stays the only store writer.

Why a small protocol: the grid driver (``grid.py``) plans runs, writes the SQLite store and
draws the progress bar; *where* a run trains (local processes, a Ray cluster) is a detail
behind this interface, so resuming, the store and the report behave the same everywhere.

Protocol (:class:`Executor`)::

    ex.capacity              -> int   runs the driver keeps in flight
    ex.submit(spec)                   start one RunSpec (non-blocking)
    ex.pending()             -> int   submitted runs whose outcome was not yet returned
    ex.next_outcome()        -> RunOutcome   block until one submitted run has finished
    ex.close(cancel=False)            release workers; cancel=True abandons runs in flight

Every submitted spec yields exactly one :class:`RunOutcome` (``done`` or ``failed``) unless
the executor is closed with ``cancel=True``. Executors retry runs whose *worker died*
(killed, crashed, out of memory) up to ``max_retries`` times themselves; a run that *raised*
is not retried (it is recorded as failed and retried only by ``--retry-failed``).
A remote executor (Ray) runs the same :func:`execute_run` on its workers and
returns its :class:`RunOutcome` (plain data: dicts and NumPy arrays) to the driver.
:func:`make_executor` builds ``selfcross.experiments.ray_executor.RayExecutor(workers=N,
max_retries=R, address=..., cpus_per_run=..., gpus_per_run=...)`` for ``--executor ray``
(the CLI passes those options; ``None`` = the executor's default); ``workers`` is then the
number of runs kept in flight.

``before_run`` (both executors): a picklable callable run in the worker with the
:class:`RunSpec` just before each run trains (per-worker setup; tests inject faults with it:
kill the worker process, raise).
"""

from __future__ import annotations

import importlib
import json
import logging
import multiprocessing
import os
import shutil
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from selfcross.config import config_hash
from selfcross.errors import ConfigError
from selfcross.experiments.store import Predictions, RunKey
from selfcross.processes import exit_with_driver
from selfcross.tasks import task_of_config

#: Files that make a run folder complete (written atomically by the trainer).
RUN_FILES: tuple[str, ...] = ("config.json", "metrics.json", "predictions.npz")


@dataclass
class RunSpec:
    """Everything a worker needs to execute one run (picklable, no open handles).

    Attributes:
        key: the run's identity.
        config: ``RunConfig.to_dict()`` as planned by the driver.
        config_hash: :func:`selfcross.config.config_hash` of ``config``.
        fold_dir: the fold folder (must be readable by the worker).
        run_dir: the run folder to create (``runs_dir/<key>-<hash8>``).
        data_fingerprint: fingerprint of ``fold_dir`` computed by the driver.
        threads: torch intra-op threads in the worker.
        data_root: fingerprint of the whole data root (which runs form one study).
    """

    key: RunKey
    config: dict[str, Any]
    config_hash: str
    fold_dir: str
    run_dir: str
    data_fingerprint: str
    threads: int = 1
    data_root: str | None = None


@dataclass
class RunOutcome:
    """What comes back from a worker: a finished run or a failure.

    Attributes:
        spec: the submitted spec.
        status: ``done`` or ``failed``.
        metrics: ``metrics.json`` content (done).
        predictions: test predictions (done).
        config: the run folder's ``config.json`` (shapes fitted, data and environment filled).
        class_names: label order of the fold.
        error: the error text (failed).
        wall_time_s: seconds in the worker.
        reused: the run folder was already complete and was read back, not retrained.
    """

    spec: RunSpec
    status: str
    metrics: dict[str, Any] | None = None
    predictions: Predictions | None = None
    config: dict[str, Any] | None = None
    class_names: list[str] = field(default_factory=list)
    error: str | None = None
    wall_time_s: float = 0.0
    reused: bool = False


class Executor(Protocol):
    """The interface the grid driver uses (see the module docstring)."""

    capacity: int

    def submit(self, spec: RunSpec) -> None:
        """Start one run."""

    def pending(self) -> int:
        """Runs submitted and not yet returned by :meth:`next_outcome`."""

    def next_outcome(self) -> RunOutcome:
        """Block until a run finishes and return its outcome."""

    def close(self, cancel: bool = False) -> None:
        """Release resources; ``cancel`` abandons runs in flight."""


def _complete(run_dir: Path) -> bool:
    return all((run_dir / f).is_file() for f in RUN_FILES)


def _read_run_folder(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], Predictions]:
    from selfcross.training import load_predictions

    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    p = load_predictions(run_dir)
    ids = p.get("ids")
    id_list = [str(i) for i in ids.tolist()] if ids is not None and len(ids) == len(p["y_true"]) else None
    # the task says what a prediction is (a class index, or a float score without probabilities)
    kind = task_of_config(config).prediction_dtype
    n = len(p["y_true"])
    probs = p["probs"].astype("float64") if "probs" in p else np.zeros((n, 0))
    return config, metrics, Predictions(p["y_true"].astype(kind), p["y_pred"].astype(kind), probs, id_list)


def _same_run(folder_config: dict[str, Any], spec: RunSpec) -> bool:
    """The folder holds this run: same config hash and trained on the same data."""
    trained_on = (folder_config.get("data") or {}).get("fingerprint")
    return config_hash(folder_config) == spec.config_hash and trained_on == spec.data_fingerprint


def execute_run(spec: RunSpec, before_run: Callable[[RunSpec], None] | None = None) -> RunOutcome:
    """Train one run in this process and return its outcome (never raises for a run error).

    ``before_run(spec)`` is called just before training (not for a folder read back); if it
    raises, the run is a failed outcome like any run that raised.

    A complete run folder whose ``config.json`` has the same config hash *and* was trained
    on data with the same fingerprint is read back instead of retrained (a driver killed
    after the worker finished loses nothing); an incomplete or stale folder at ``run_dir``
    (e.g. trained before the data root was prepared again) is removed first (it belongs to
    this run key and config hash, so nothing else is lost).
    """
    t0 = time.perf_counter()
    run_dir = Path(spec.run_dir)
    try:
        if run_dir.exists() and _complete(run_dir):
            config, metrics, preds = _read_run_folder(run_dir)
            if _same_run(config, spec):
                return RunOutcome(spec, "done", metrics, preds, config, list(config.get("class_names", [])),
                                  wall_time_s=float(metrics.get("wall_time_s", 0.0)), reused=True)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        if before_run is not None:
            before_run(spec)
        import torch

        from selfcross.config import RunConfig
        from selfcross.training import train_run

        torch.set_num_threads(max(1, spec.threads))
        # the driver validated every fold up front and reported its dropped utterances once;
        # repeating that warning for each of hundreds of runs would only bury the progress bar
        logging.getLogger("selfcross.folds").setLevel(logging.ERROR)
        cfg = RunConfig.from_dict(spec.config)
        cfg.train.num_threads = max(1, spec.threads)
        train_run(cfg, spec.fold_dir, run_dir, progress=False, tune_allocator=True)  # our own worker
        config, metrics, preds = _read_run_folder(run_dir)
        return RunOutcome(spec, "done", metrics, preds, config, list(config.get("class_names", [])),
                          wall_time_s=time.perf_counter() - t0)
    except Exception as e:  # a run that raised is a failed row, not a dead grid
        tb = traceback.format_exc()
        return RunOutcome(spec, "failed", error=f"{type(e).__name__}: {e}\n{tb[-4000:]}",
                          wall_time_s=time.perf_counter() - t0)


def _init_worker(threads: int, driver_pid: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    exit_with_driver(driver_pid)


class LocalExecutor:
    """Runs on this machine in ``workers`` spawned processes (``concurrent.futures``).

    Why processes and ``spawn``: a training run holds the GIL and its own torch threads; a
    fresh interpreter per worker avoids fork-after-threads hazards. A worker that dies takes
    its pool down (``BrokenProcessPool``); the executor then starts a new pool and resubmits
    the runs that were in flight. With several workers the culprit cannot be told apart, so
    every run in flight gets a strike; a run with more than ``max_retries`` strikes is
    returned as failed ("worker process died").
    """

    def __init__(self, workers: int = 1, max_retries: int = 2,
                 before_run: Callable[[RunSpec], None] | None = None) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.capacity = workers
        self.max_retries = max_retries
        self.before_run = before_run
        self._ctx = multiprocessing.get_context("spawn")
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future[RunOutcome], RunSpec] = {}
        self._ready: deque[RunOutcome] = deque()
        self._strikes: dict[str, int] = {}
        self._resubmit: list[RunSpec] = []

    def _get_pool(self, threads: int) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.capacity, mp_context=self._ctx, initializer=_init_worker,
                                             initargs=(threads, os.getpid()))
        return self._pool

    def submit(self, spec: RunSpec) -> None:
        """Queue ``spec`` on the pool (restarting it first if a worker died meanwhile)."""
        try:
            fut = self._get_pool(spec.threads).submit(execute_run, spec, self.before_run)
        except BrokenProcessPool:
            self._restart()
            fut = self._get_pool(spec.threads).submit(execute_run, spec, self.before_run)
        self._futures[fut] = spec

    def pending(self) -> int:
        """Runs not yet returned."""
        return len(self._futures) + len(self._ready)

    def next_outcome(self) -> RunOutcome:
        """Block until one run finishes (or finally fails) and return it."""
        while not self._ready:
            if not self._futures:
                raise RuntimeError("next_outcome() called with nothing in flight")
            done, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                spec = self._futures.pop(fut)
                try:
                    self._ready.append(fut.result())
                except BrokenProcessPool:
                    broken = True
                    self._retry_or_fail(spec)
            if broken:
                self._restart()
        return self._ready.popleft()

    def _retry_or_fail(self, spec: RunSpec) -> None:
        key = str(spec.key)
        self._strikes[key] = self._strikes.get(key, 0) + 1
        if self._strikes[key] > self.max_retries:
            self._ready.append(RunOutcome(
                spec, "failed", error=f"worker process died (killed, crashed or out of memory) "
                f"{self._strikes[key]} times while running {key}"))
        else:
            self._resubmit.append(spec)

    def _restart(self) -> None:
        """The pool is broken: collect every run in flight, start a new pool, resubmit."""
        old, self._pool = self._pool, None
        for fut, spec in list(self._futures.items()):
            self._futures.pop(fut)
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._ready.append(fut.result())  # finished just before the pool broke
            else:
                self._retry_or_fail(spec)
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        again, self._resubmit = self._resubmit, []
        for spec in again:
            self.submit(spec)

    def close(self, cancel: bool = False) -> None:
        """Shut the pool down; with ``cancel`` do not wait for runs in flight."""
        if self._pool is not None:
            if cancel:
                for p in list(getattr(self._pool, "_processes", {}).values()):
                    if p.is_alive():
                        p.terminate()
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
            self._pool = None
        self._futures.clear()


#: Executor names -> "module:Class"; ``ray`` lives in its own module (optional extra).
EXECUTORS: dict[str, str] = {
    "local": "selfcross.experiments.executors:LocalExecutor",
    "ray": "selfcross.experiments.ray_executor:RayExecutor",
}


def make_executor(name: str, workers: int = 1, **options: Any) -> Executor:
    """Build an executor by name (``local`` or ``ray``); ``options`` go to its constructor.

    Raises:
        ConfigError: unknown name, or an executor whose module/extra is not installed.
    """
    if name not in EXECUTORS:
        raise ConfigError(f"executor {name!r} is not one of {', '.join(EXECUTORS)}")
    module_name, cls_name = EXECUTORS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ConfigError(f"executor {name!r} is not available ({e}); for ray: pip install selfcross[ray]") \
            from None
    return getattr(module, cls_name)(workers=workers, **options)
