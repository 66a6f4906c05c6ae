"""Pool workers (grid runs, feature extraction) must not outlive their driver (SIGKILL of the
driver skips shutdown)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest

DRIVER = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from pathlib import Path
    from selfcross.processes import exit_with_driver

    def worker(driver_pid, ready):
        if sys.argv[1] == "prepare":   # what prepare-iemocap's pool initializer does
            from selfcross.prepare.pipeline import _init_worker
            _init_worker("audio", {}, None, 1, driver_pid)
        else:
            exit_with_driver(driver_pid, poll_s=0.1)
        ready.set()
        time.sleep(3600)   # a long "run"

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        p = ctx.Process(target=worker, args=(os.getpid(), ready))
        p.start()
        while not ready.wait(0.05) and p.is_alive():   # the worker's watch is set up
            pass
        print(p.pid if ready.is_set() else "worker-not-ready", flush=True)
        os._exit(0)       # die without joining or terminating the worker
    """
)


@pytest.mark.parametrize("kind", ["grid", "prepare"])
@pytest.mark.timeout(300)
def test_worker_exits_when_driver_dies(tmp_path, kind):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    out = subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True)
    assert out.stdout.split()[0].isdigit(), f"the worker never started: {out.stdout}{out.stderr[-2000:]}"
    child = int(out.stdout.split()[0])
    try:
        watch = os.pidfd_open(child)
    except ProcessLookupError:
        return  # already gone
    try:
        # readable once the worker has exited; it sleeps an hour otherwise, so a worker that
        # outlives its driver is failed by the timeout marker
        select.select([watch], [], [])
    finally:  # on a timeout: do not leave the worker behind (the pidfd cannot hit a reused pid)
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(watch, signal.SIGKILL)
        os.close(watch)
