"""Worker processes that end with the process that started them.

Why: a pool worker (a training run of the grid, a feature-extraction worker of
``prepare-iemocap``) is normally stopped by its pool's shutdown. When the driver is killed
(SIGKILL, or SIGTERM without cleanup) that shutdown never runs, and the orphaned worker keeps
holding cores for minutes on work nobody will record. Every pool of the package installs
:func:`exit_with_driver` as (part of) its worker initializer.
"""

from __future__ import annotations

import os
import threading
import time


def exit_with_driver(driver_pid: int, poll_s: float = 1.0) -> None:
    """End this worker process as soon as its parent is no longer ``driver_pid``.

    A daemon thread polls the parent pid every ``poll_s`` seconds (portable, unlike
    ``PR_SET_PDEATHSIG``); whatever the worker was doing is simply redone on resume.
    """

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != driver_pid:
                os._exit(1)

    threading.Thread(target=watch, name="selfcross-driver-watch", daemon=True).start()
