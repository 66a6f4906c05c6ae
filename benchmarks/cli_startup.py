"""Start-up time of the ``selfcross`` command line: ``--version``, ``--help`` and an argument error.

Each command runs in a fresh interpreter ``--repeats`` times; prints the median and the
slowest wall time per command, and whether torch was imported (checked once with
``python -X importtime``, whose per-module table is also summarised: the three slowest
top-level imports).

Usage:
    python benchmarks/cli_startup.py               # 7 repeats
    python benchmarks/cli_startup.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS: tuple[tuple[str, ...], ...] = (("--version",), ("--help",), ("train", "--help"), ("train",))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def time_command(argv: tuple[str, ...], repeats: int) -> list[float]:
    """Wall seconds of ``python -m selfcross ARGV``, one fresh process per repeat."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "selfcross", *argv], env=_env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return times


def import_table(argv: tuple[str, ...]) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of every import ``-X importtime`` reports for ARGV."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "selfcross", *argv], env=_env(),
                          capture_output=True, text=True, check=False)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            rows.append((int(cumulative), name.rstrip()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print("| command | median s | slowest s |")
    print("|---|---|---|")
    for argv in COMMANDS:
        t = time_command(argv, args.repeats)
        print(f"| `selfcross {' '.join(argv)}` | {statistics.median(t):.2f} | {max(t):.2f} |")
    rows = import_table(("--help",))
    names = {name.strip() for _, name in rows}
    print(f"\n--help imports torch: {'torch' in names}; modules imported: {len(rows)}")
    top = sorted((r for r in rows if not r[1].startswith("   ")), reverse=True)[:3]
    print("slowest top-level imports: " + ", ".join(f"{n.strip()} {us / 1e3:.0f} ms" for us, n in top))


if __name__ == "__main__":
    main()
