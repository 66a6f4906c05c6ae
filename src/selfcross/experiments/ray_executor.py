"""Ray executor: each grid run is one Ray task; the driver stays the only store writer.

Why Ray and why tasks (not actors): a run is a stateless function of its
:class:`~selfcross.experiments.executors.RunSpec` (train, write the run folder, return the
metrics and predictions), so a plain task is enough and lets Ray place it by its resources
(``num_cpus=C``, ``num_gpus=G``; fractional ``G`` packs several small GRU runs onto one GPU)
and re-execute it when its worker dies. Nothing here schedules; Ray does.

Behaviour (the :class:`~selfcross.experiments.executors.Executor` protocol):

* **Where:** ``address=None`` starts a private local Ray instance (all cores of this machine,
  no dashboard) and shuts it down in :meth:`RayExecutor.close`; ``address="auto"`` or
  ``"HOST:PORT"`` connects to a running cluster (and only disconnects at the end). If this
  process is already connected (``ray.is_initialized()``, e.g. a test fixture), that session
  is used and left running.
* **Results** stream back as tasks finish (``ray.wait``); the grid driver writes each one to
  SQLite, so resuming, the progress bar and the report are those of the local executor.
* **Faults:** a task whose worker process dies (killed, crashed, out of memory, node lost)
  is re-executed by Ray up to ``max_retries`` times (``ray.remote(max_retries=...)``); after
  that the run comes back ``failed`` with the Ray error's name and message
  (``WorkerCrashedError``, ``OutOfMemoryError``, ``NodeDiedError``...). A run that *raised*
  is not retried by Ray (``retry_exceptions=False``): :func:`execute_run` returns it as a
  failed outcome, retried only by ``--retry-failed``, exactly as locally.
* **Ctrl-C / abort:** ``close(cancel=True)`` force-cancels outstanding tasks
  (``ray.cancel(force=True)``); their rows stay ``running`` in the store, i.e. not finished,
  and are rerun next time. Run folders are written atomically, so none is half-written.
* **Data:** workers read the fold folder *by path* (``RunSpec.fold_dir``); on a cluster the
  data root and the runs folder must be on a filesystem every node mounts at the same path
  (see ``docs/cluster.md`` for why nothing is copied through the object store). A worker that
  cannot see the fold, or sees other data there (its fingerprint differs from the driver's),
  returns a failed run that says so and names the node.

Attempts: Ray does not tell the driver that it re-executed a task, so each attempt bumps a
small counter file ``runs_dir/.<run folder>.attempts`` (shared filesystem, as above); the
driver logs runs that needed more than one attempt and removes the file.

``before_run`` (see :mod:`~selfcross.experiments.executors`) travels with each task, so
it runs in the Ray worker just before the run trains.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError, RayTaskError, TaskCancelledError

from selfcross.errors import ConfigError
from selfcross.experiments.executors import RunOutcome, RunSpec, execute_run

log = logging.getLogger(__name__)

#: Seconds between ``ray.wait`` polls (Ctrl-C is handled between polls).
_POLL_S = 0.5


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def attempts_file(run_dir: str | Path) -> Path:
    """The attempt counter of a run folder: ``<runs_dir>/.<run folder name>.attempts``."""
    p = Path(run_dir)
    return p.parent / f".{p.name}.attempts"


def _bump_attempts(run_dir: str) -> int:
    """Count this attempt (best effort: an unwritable runs folder just reports 1)."""
    f = attempts_file(run_dir)
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        n = int(f.read_text().strip() or 0) + 1 if f.is_file() else 1
        f.write_text(f"{n}\n")
        return n
    except (OSError, ValueError):
        return 1


def run_on_worker(
    spec: RunSpec, before_run: Callable[[RunSpec], None] | None = None
) -> tuple[RunOutcome, int, str]:
    """The body of one Ray task: ``execute_run(spec, before_run)`` plus the data checks.

    Returns:
        (outcome, attempt number, host name of the node that ran it).
    """
    attempt = _bump_attempts(spec.run_dir)
    host = socket.gethostname()
    if not Path(spec.fold_dir).is_dir():
        return RunOutcome(spec, "failed", error=(
            f"DataError: {spec.fold_dir}: fold folder not visible on Ray node {host}; workers read the "
            "data root by path, so it must be on a filesystem mounted at the same path on every node "
            "(docs/cluster.md)")), attempt, host
    out = execute_run(spec, before_run)
    seen = ((out.config or {}).get("data") or {}).get("fingerprint")
    if out.status == "done" and seen is not None and seen != spec.data_fingerprint:
        return RunOutcome(spec, "failed", error=(
            f"DataError: {spec.fold_dir}: Ray node {host} sees different data at this path "
            f"(fingerprint {seen[:12]} != driver's {spec.data_fingerprint[:12]}); every node must see "
            "the same data root (docs/cluster.md)"), wall_time_s=out.wall_time_s), attempt, host
    return out, attempt, host


_REMOTE: Any = None


def _remote_fn() -> Any:
    """``ray.remote(run_on_worker)``, built once (resources are set per call with ``options``)."""
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(run_on_worker)
    return _REMOTE


def _check_gpus(gpus_per_run: float) -> None:
    if gpus_per_run < 0:
        raise ConfigError(f"--gpus-per-run must be >= 0, got {gpus_per_run}")
    if gpus_per_run > 1 and gpus_per_run != int(gpus_per_run):
        raise ConfigError(f"--gpus-per-run {gpus_per_run}: Ray allows a fraction of one GPU (< 1) or a whole "
                          "number of GPUs, not a fraction above 1")


class RayExecutor:
    """Runs the grid's runs as Ray tasks (see the module docstring).

    Args:
        workers: lower bound on runs kept in flight (``--workers``); the executor keeps at
            least as many in flight as the cluster has slots (CPUs / C, GPUs / G).
        address: ``None`` (start a private local instance), ``"auto"`` or ``"HOST:PORT"``.
        cpus_per_run: Ray ``num_cpus`` per run (fractional allowed); the run gets
            ``max(1, floor(C))`` torch threads.
        gpus_per_run: Ray ``num_gpus`` per run; a fraction < 1 packs ``floor(1/G)`` runs per GPU.
        max_retries: re-executions of a run whose worker died (not of a run that raised).
        num_cpus: CPUs of a private local instance (default: this machine's cores).
        init_options: extra keyword arguments for ``ray.init`` (e.g. ``object_store_memory``).
        before_run: picklable callable run in the worker with each run's spec before it trains.

    Raises:
        ConfigError: bad resources, a cluster that cannot be reached, or a request no node of
            the cluster can satisfy (it would wait forever otherwise).
    """

    def __init__(
        self,
        workers: int = 1,
        address: str | None = None,
        cpus_per_run: float | None = 1.0,
        gpus_per_run: float | None = 0.0,
        max_retries: int | None = 2,
        num_cpus: int | None = None,
        init_options: dict[str, Any] | None = None,
        before_run: Callable[[RunSpec], None] | None = None,
    ) -> None:
        # None = the default (the CLI passes unset flags through as None)
        cpus_per_run = 1.0 if cpus_per_run is None else cpus_per_run
        gpus_per_run = 0.0 if gpus_per_run is None else gpus_per_run
        max_retries = 2 if max_retries is None else max_retries
        if cpus_per_run <= 0:
            raise ConfigError(f"--cpus-per-run must be > 0, got {cpus_per_run}")
        _check_gpus(gpus_per_run)
        if max_retries < 0:
            raise ConfigError(f"--max-retries must be >= 0, got {max_retries}")
        self.cpus_per_run = float(cpus_per_run)
        self.gpus_per_run = float(gpus_per_run)
        self.max_retries = int(max_retries)
        self.address = address
        self.before_run = before_run
        self.retried: dict[str, int] = {}  # run key -> attempts, for runs that needed more than one
        self._refs: dict[Any, RunSpec] = {}
        self._ready: list[RunOutcome] = []
        self._owned = False
        if not ray.is_initialized():
            opts: dict[str, Any] = {"logging_level": logging.WARNING, **(init_options or {})}
            try:
                if address:
                    ray.init(address=address, **opts)
                else:
                    ray.init(num_cpus=num_cpus or _cores(), include_dashboard=False, **opts)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
                raise ConfigError(f"cannot start or reach {where}: {e}") from None
            self._owned = True
        self.capacity = max(int(workers), self._slots())

    def _slots(self) -> int:
        """Concurrent runs the cluster can hold now; ConfigError if not even one."""
        res = ray.cluster_resources()
        cpus, gpus = float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0))
        slots = math.floor(cpus / self.cpus_per_run + 1e-9)
        if self.gpus_per_run > 0:
            slots = min(slots, math.floor(gpus / self.gpus_per_run + 1e-9))
        if slots < 1:
            self.close()
            raise ConfigError(f"no Ray node can run a run with {self.cpus_per_run:g} CPU(s) and "
                              f"{self.gpus_per_run:g} GPU(s): the cluster has {cpus:g} CPUs and "
                              f"{gpus:g} GPUs (start the worker nodes first)")
        return slots

    def submit(self, spec: RunSpec) -> None:
        """Start ``spec`` as a Ray task (non-blocking)."""
        device = str(spec.config.get("train", {}).get("device", "auto"))
        if device.startswith("cuda") and self.gpus_per_run == 0:
            raise ConfigError(f"--device {device} with --executor ray needs --gpus-per-run > 0: Ray hides "
                              "the GPUs from tasks that did not reserve one")
        spec = replace(spec, threads=max(1, math.floor(self.cpus_per_run)))
        attempts_file(spec.run_dir).unlink(missing_ok=True)
        ref = _remote_fn().options(
            num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=self.max_retries,
            retry_exceptions=False, name=f"selfcross:{spec.key}",
        ).remote(spec, self.before_run)
        self._refs[ref] = spec

    def pending(self) -> int:
        """Runs submitted and not yet returned."""
        return len(self._refs) + len(self._ready)

    def next_outcome(self) -> RunOutcome:
        """Block until one run finishes (or finally fails) and return its outcome."""
        while not self._ready:
            if not self._refs:
                raise RuntimeError("next_outcome() called with nothing in flight")
            done, _ = ray.wait(list(self._refs), num_returns=1, timeout=_POLL_S)
            for ref in done:
                self._ready.append(self._collect(ref, self._refs.pop(ref)))
        return self._ready.pop(0)

    def _collect(self, ref: Any, spec: RunSpec) -> RunOutcome:
        key = str(spec.key)
        counter = attempts_file(spec.run_dir)
        try:
            out, attempt, host = ray.get(ref)
        except (TaskCancelledError, GetTimeoutError) as e:  # pragma: no cover - only after close()
            return RunOutcome(spec, "failed", error=f"{type(e).__name__}: {e}")
        except RayTaskError as e:  # raised in the worker outside execute_run's guard (e.g. unpickling)
            counter.unlink(missing_ok=True)
            return RunOutcome(spec, "failed", error=f"{type(e).__name__}: {e}")
        except RayError as e:
            attempts = self._read_attempts(counter, default=self.max_retries + 1)
            counter.unlink(missing_ok=True)
            first = (str(e).strip().splitlines() or [""])[0]
            return RunOutcome(spec, "failed", error=(
                f"{type(e).__name__}: the run's Ray worker died on each of {attempts} attempt(s) "
                f"(max_retries={self.max_retries}; killed, crashed, out of memory or node lost): "
                f"{first}\n{e}"))
        counter.unlink(missing_ok=True)
        if attempt > 1:
            self.retried[key] = attempt
            log.warning("ray: run %s finished on attempt %d on %s (its worker died %d time(s) before)",
                        key, attempt, host, attempt - 1)
        return out

    @staticmethod
    def _read_attempts(counter: Path, default: int) -> int:
        try:
            return int(counter.read_text().strip())
        except (OSError, ValueError):
            return default

    def close(self, cancel: bool = False) -> None:
        """Release Ray; with ``cancel`` force-cancel every task still in flight first."""
        if cancel:
            for ref in list(self._refs):
                try:
                    ray.cancel(ref, force=True)
                except Exception as e:  # noqa: BLE001 - best effort while aborting
                    log.debug("ray.cancel failed: %s", e)
        self._refs.clear()
        if self._owned and ray.is_initialized():
            ray.shutdown()
        self._owned = False

