"""The CLI answers ``--help``, ``--version`` and argument errors without importing torch.

Each check runs in a fresh interpreter: the test process itself has torch loaded already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "sklearn", "scipy", "pandas", "matplotlib")

_PROBE = """
import contextlib, io, json, sys
from selfcross.cli import main
argv = json.loads(sys.argv[1])
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        status = main(argv)
    except SystemExit as e:
        status = e.code
print(json.dumps({"status": status, "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules]}))
"""


def _probe(argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv), json.dumps(HEAVY)],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_cli_does_not_import_torch() -> None:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = ("import sys, selfcross.cli as c; c.build_parser(); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [
    ["--version"],
    ["--help"],
    ["train", "--help"],
    ["grid", "--help"],
    ["report", "--help"],
    ["train"],                                   # missing required options
    ["grid", "--data", "x", "--workers", "two"],  # bad value
    ["no-such-command"],
])
def test_help_version_and_argument_errors_stay_light(argv: list[str]) -> None:
    result = _probe(argv)
    assert result["status"] in (0, 2)
    assert result["heavy"] == []
