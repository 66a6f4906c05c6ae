"""Faults injected into grid workers through the executors' ``before_run`` parameter.

Instances are picklable (plain classes in an importable module), so they reach spawned
pool workers and, pickled by value, Ray workers.
"""

from __future__ import annotations

import os
from pathlib import Path


class Faults:
    """Called in the worker with each run's spec just before it trains.

    Args:
        die_once: marker file; the first run to start while it does not exist creates it
            (writing its run key) and kills its own process (``os._exit(137)``, like ``kill -9``).
        die_key: the run that always kills its process.
        raise_key: the run that raises ``RuntimeError``.
    """

    def __init__(self, die_once: str | Path | None = None, die_key: str | None = None,
                 raise_key: str | None = None) -> None:
        self.die_once = None if die_once is None else str(die_once)
        self.die_key = die_key
        self.raise_key = raise_key

    def __call__(self, spec) -> None:
        key = str(spec.key)
        if self.die_once:
            try:
                fd = os.open(self.die_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, key.encode())
                os.close(fd)
                os._exit(137)
        if key == self.die_key:
            os._exit(137)
        if key == self.raise_key:
            raise RuntimeError(f"injected fault: run {key} raises")
