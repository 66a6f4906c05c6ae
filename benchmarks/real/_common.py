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
    old = (
        path.read_text()
        if path.is_file()
        else (
            "# Real-data results\n\nWritten by the scripts in this folder (see README.md); "
            "each script rewrites only its own section.\n"
        )
    )
    pat = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    new = pat.sub(lambda _: body, old) if pat.search(old) else old.rstrip() + "\n\n" + body + "\n"
    path.write_text(new)


def runs_details(runs: list[dict]) -> list[str]:
    """Markdown lines of a collapsed block listing every run as JSON (one run per line)."""
    return [
        "<details><summary>every run</summary>",
        "",
        "```json",
        json.dumps(runs).replace("}, {", "},\n {"),
        "```",
        "",
        "</details>",
    ]


def _train_one(job: dict) -> dict:
    """Train one run (in a worker process) and return its summary row."""
    import time

    from selfcross.training import train_run

    t = time.perf_counter()
    m = _finished_run(job)
    if m is None:
        m = train_run(job["config"], job["fold"], job["out"], progress=False, overwrite=True)
    return {
        **job["row"],
        "acc": m["test"]["accuracy"],
        "bal": m["test"]["balanced_accuracy"],
        "f1w": m["test"]["f1_weighted"],
        "epochs": m["epochs_run"],
        "best": m["best_epoch"],
        "s": m.get("wall_time_s", time.perf_counter() - t),
    }


def _finished_run(job: dict) -> dict | None:
    """The metrics of a complete run folder planned with the same config (an interrupted
    benchmark resumes instead of retraining), else ``None``."""

    from selfcross.config import RunConfig, config_hash

    out = Path(job["out"])
    if not (out / "metrics.json").is_file() or not (out / "config.json").is_file():
        return None
    done = RunConfig.load(out / "config.json")
    if config_hash(done.to_dict()) != config_hash(job["config"].to_dict()):
        return None
    return json.loads((out / "metrics.json").read_text())


def run_jobs(jobs: list[dict], workers: int = 1) -> list[dict]:
    """Train every job (``config``, ``fold``, ``out``, ``row``), ``workers`` at a time, in
    separate processes with their own torch threads; rows come back in job order and are
    printed as they finish."""
    import concurrent.futures as cf
    import multiprocessing as mp

    def show(r: dict) -> None:
        print(
            " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()), flush=True
        )

    if workers <= 1:
        rows = []
        for job in jobs:
            rows.append(_train_one(job))
            show(rows[-1])
        return rows
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_train_one, job) for job in jobs]
        for f in cf.as_completed(futures):
            show(f.result())
        return [f.result() for f in futures]


def linear_floor(root: Path, out: Path, modalities: str) -> dict:
    """Per-fold test accuracy / balanced accuracy / weighted F1 of ``selfcross baseline`` on
    ``root``: the linear floor on the same folds."""
    from selfcross.experiments import run_baseline

    summary = run_baseline(root, out, modalities=modalities, log=lambda _: None)
    tests = [r.metrics["test"] for r in summary.results]
    return {k: [t[k] for t in tests] for k in ("accuracy", "balanced_accuracy", "f1_weighted")}
