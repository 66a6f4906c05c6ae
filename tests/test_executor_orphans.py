"""Pool workers (grid runs, feature extraction) must not outlive their driver (SIGKILL of the
driver skips shutdown)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

DRIVER = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from pathlib import Path
    from selfcross.processes import exit_with_driver

    def worker(driver_pid, ready):
        if sys.argv[2] == "prepare":   # what prepare-iemocap's pool initializer does
            from selfcross.data.prepare import _init_worker
            _init_worker("audio", {}, None, 1, driver_pid)
        else:
            exit_with_driver(driver_pid, poll_s=0.1)
        Path(ready).touch()
        time.sleep(120)   # a long "run"

    if __name__ == "__main__":
        ready = sys.argv[3]
        p = multiprocessing.get_context("spawn").Process(target=worker, args=(os.getpid(), ready))
        p.start()
        deadline = time.monotonic() + 60
        while not os.path.exists(ready) and p.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        print(p.pid if os.path.exists(ready) else "worker-not-ready", flush=True)
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


@pytest.mark.parametrize("kind", ["grid", "prepare"])
def test_worker_exits_when_driver_dies(tmp_path, kind):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    cmd = [sys.executable, str(script), "3", kind, str(tmp_path / "ready")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert out.stdout.split()[0].isdigit(), f"the worker never started: {out.stdout}{out.stderr[-2000:]}"
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = _alive(child)
    if alive:
        os.kill(child, 9)
    assert not alive, "worker kept running after its driver died"
