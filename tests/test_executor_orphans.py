"""A local-executor worker must not outlive its driver (SIGKILL of the driver skips shutdown)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

DRIVER = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from selfcross.experiments.executors import exit_with_driver

    def worker(driver_pid):
        exit_with_driver(driver_pid, poll_s=0.1)
        time.sleep(120)   # a long "run"

    if __name__ == "__main__":
        p = multiprocessing.get_context("spawn").Process(target=worker, args=(os.getpid(),))
        p.start()
        print(p.pid, flush=True)
        time.sleep(float(sys.argv[1]))
        os._exit(0)       # die without joining or terminating the worker
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_worker_exits_when_driver_dies(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    out = subprocess.run([sys.executable, str(script), "3"], capture_output=True, text=True, timeout=120)
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = _alive(child)
    if alive:
        os.kill(child, 9)
    assert not alive, "worker kept running after its driver died"
