"""``tune_malloc``: process-wide, so only the process's owner (the CLI, grid workers) calls it.

Observed for real, in a fresh process each: after tuning, glibc serves a 16 MiB block from
the heap instead of a fresh ``mmap`` (``mallinfo2().hblkhd``, the bytes held in mmapped
blocks, stays put). Each process starts untuned and can only be tuned once, so the
untuned case comes first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from selfcross.training.environment import tune_malloc

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or not ctypes.util.find_library("c")
    or not hasattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "mallinfo2"),
    reason="mallopt and mallinfo2 are glibc's (2.33 or later)",
)

PROBE = textwrap.dedent('''
    import ctypes, ctypes.util, json, sys
    from pathlib import Path

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                   "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc.mallinfo2.restype = Info
    libc.malloc.restype = ctypes.c_void_p

    def mmapped_growth():
        before = libc.mallinfo2().hblkhd
        libc.malloc(16 << 20)  # kept: freeing would hand it back
        return int(libc.mallinfo2().hblkhd - before)

    tmp = Path(sys.argv[1])
    growth = []
    for step in json.loads(sys.argv[2]):
        if step == "train_run":
            from selfcross.config import RunConfig
            from selfcross.errors import DataError
            from selfcross.training import train_run
            try:  # a missing fold stops the run right after the allocator step: nothing trains
                train_run(RunConfig(), tmp / "no-fold", tmp / "run", progress=False)
            except DataError:
                pass
        elif step == "train_run_tuned":
            try:
                train_run(RunConfig(), tmp / "no-fold", tmp / "run", progress=False, tune_allocator=True)
            except DataError:
                pass
        else:
            from selfcross.cli import main
            flags = ["--no-tune-malloc"] if step == "cli_untuned" else []
            assert main(["train", "--data", str(tmp / "no-fold"), "--modalities", "atv",
                         "--out", str(tmp / "run"), "--quiet", *flags]) == 2
        growth.append(mmapped_growth())
    print(json.dumps(growth))
''')


def _mmapped_growth(tmp_path: Path, steps: list[str]) -> list[int]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), json.dumps(steps)], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_train_run_tunes_the_allocator_only_when_asked(tmp_path):
    untuned, tuned = _mmapped_growth(tmp_path, ["train_run", "train_run_tuned"])
    assert untuned >= 16 << 20 and tuned == 0


def test_cli_train_tunes_the_allocator_unless_told_not_to(tmp_path):
    untuned, tuned = _mmapped_growth(tmp_path, ["cli_untuned", "cli"])
    assert untuned >= 16 << 20 and tuned == 0


def test_tune_malloc_is_accepted_by_glibc():
    assert tune_malloc() is True
