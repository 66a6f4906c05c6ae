"""Helpers shared by the real-data benchmark scripts (results file, command line, formatting)."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import sys
from pathlib import Path

import numpy as np

#: The public corpora beside the repository (``../shared/data``); scripts take ``--data`` too.
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
#: Each script rewrites only its own section of this file.
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def mean_std(values: list[float]) -> str:
    """``mean (std)`` in percent, std with n-1."""
    a = np.asarray(values, dtype=float) * 100
    return f"{a.mean():.1f} ({a.std(ddof=1) if len(a) > 1 else 0.0:.1f})"


def hardware() -> str:
    """The machine a measurement ran on, in words a reader elsewhere can compare with."""
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPU cores ({cpu}, {platform.system()})"


def command_line() -> str:
    """This script's command line, repo-relative, copy-pasteable."""
    repo = Path(__file__).resolve().parents[2]
    script = Path(sys.argv[0]).resolve()
    try:
        s = str(script.relative_to(repo))
    except ValueError:
        s = str(script)
    exe = Path(sys.executable)
    try:
        exe_s = str(exe.relative_to(repo))
    except ValueError:
        exe_s = str(exe)
    return " ".join(shlex.quote(x) for x in [exe_s, s, *sys.argv[1:]])


def write_section(name: str, text: str, path: Path = RESULTS) -> None:
    """Replace (or append) the ``name`` section of RESULTS.md (other sections untouched)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = f"{start}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.is_file() else (
        "# Real-data results\n\nWritten by the scripts in this folder (see README.md); "
        "each script rewrites only its own section.\n")
    pat = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    new = pat.sub(lambda _: body, old) if pat.search(old) else old.rstrip() + "\n\n" + body + "\n"
    path.write_text(new)


def runs_details(runs: list[dict]) -> list[str]:
    """Markdown lines of a collapsed block listing every run as JSON (one run per line)."""
    return ["<details><summary>every run</summary>", "", "```json",
            json.dumps(runs).replace("}, {", "},\n {"), "```", "", "</details>"]
