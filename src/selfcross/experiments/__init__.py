"""Experiments: the resumable grid, its executors, the SQLite results store and the linear floor.

Public API (mirrors the CLI):

* :func:`run_grid` — ``selfcross grid``: every model x modality set x fold x seed, once,
  resumably, results in a SQLite store (:mod:`~selfcross.experiments.store`); what to run is a
  :class:`GridPlan`, how to run it an :class:`ExecutionOptions`.
* :func:`run_baseline` — ``selfcross baseline``: the linear floor on the same folds, into the store.
* :class:`ResultsStore`, :func:`open_store` — read (or, for the driver, write) a store.
* executors: :class:`LocalExecutor`, :func:`make_executor` (``ray`` plugs in by name).
"""

from selfcross.config import config_hash
from selfcross.experiments.baseline import run_baseline
from selfcross.experiments.executors import Executor, LocalExecutor, RunOutcome, RunSpec, make_executor
from selfcross.experiments.grid import GridSummary, plan_runs, run_grid
from selfcross.experiments.options import ExecutionOptions, GridPlan
from selfcross.experiments.store import SCHEMA_VERSION, ResultsStore, RunKey, open_store

__all__ = [
    "SCHEMA_VERSION",
    "ExecutionOptions",
    "Executor",
    "GridPlan",
    "GridSummary",
    "LocalExecutor",
    "ResultsStore",
    "RunKey",
    "RunOutcome",
    "RunSpec",
    "config_hash",
    "make_executor",
    "open_store",
    "plan_runs",
    "run_baseline",
    "run_grid",
]
