"""Does the fast path train as well as the authors' computation? (issue 8, acceptance 2)

Trains the tri-modal Self and Cross models on the ``small`` synthetic benchmark (data seed 0,
fold01, paper protocol: early stopping on dev accuracy, no epoch cap) for training seeds
1..N twice: (a) ``kernels="reference"`` in float64 (the authors' ops and precision) and
(b) the default fast path (float32, our kernels). The attention dropout draws a different
random stream in (b), and float32 rounds differently, so single runs differ; the claim is
that the *accuracy over seeds* is unchanged within the seed spread. Printed and written to
``benchmarks/RESULTS.md``: per-seed test accuracy, mean (std) per path, the paired
difference (b) - (a) with its std over seeds, and the verdict rule used.

    python benchmarks/kernel_accuracy.py [--seeds 1-5] [--workers 2] [--out bench-kernels]

Runs are resumable: a run folder with ``metrics.json`` is read back, not retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: find _results

import numpy as np
import torch

import selfcross
from _results import replace_section
from selfcross.config import ModelConfig, RunConfig, TrainConfig, apply_preset
from selfcross.experiments.grid import parse_range
from selfcross.processes import exit_with_driver
from selfcross.synthetic import make_synthetic

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- kernel-accuracy:begin -->", "<!-- kernel-accuracy:end -->"
PATHS = {"reference": "float64", "fast": "float32"}


def train_one(task: tuple[str, str, int, str, str]) -> tuple[str, str, int, float, float]:
    """Train one run (or read it back); returns ``(kind, path, seed, test accuracy, seconds)``."""
    from selfcross.training import train_run

    kind, path, seed, fold, out = task
    run_dir = Path(out)
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        m = json.loads(metrics_file.read_text())
    else:
        train = TrainConfig(seed=seed, dtype=PATHS[path], kernels=path, device="cpu", num_threads=1)
        cfg = apply_preset(RunConfig(model=ModelConfig(kind=kind), train=train), "paper")
        m = train_run(cfg, Path(fold), run_dir, progress=False)
    return kind, path, seed, float(m["test"]["accuracy"]), float(m.get("wall_time_s", 0.0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1-3", help="training seeds, e.g. 1-5 (default: %(default)s)")
    ap.add_argument("--kinds", default="self,cross")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench-kernels"), help="work folder (data, runs)")
    ap.add_argument("--no-write", action="store_true", help=f"do not update {RESULTS.name}")
    args = ap.parse_args(argv)
    seeds = parse_range(args.seeds, "seeds") or [1]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    data = args.out / "data"
    if not (data / "fold01").exists():
        make_synthetic(data, preset="small", seed=0)
    tasks = [
        (kind, path, seed, str(data / "fold01"), str(args.out / "runs" / f"{kind}-{path}-seed{seed}"))
        for kind in kinds
        for path in PATHS
        for seed in seeds
    ]
    t0 = time.perf_counter()
    # workers end with the driver (a killed driver would otherwise leave them training on)
    pool_args = {"initializer": exit_with_driver, "initargs": (os.getpid(),)}
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"), **pool_args) as pool:
        results = list(pool.map(train_one, tasks))
    wall = time.perf_counter() - t0
    acc = {(k, p, s): a for k, p, s, a, _ in results}
    secs = {(k, p, s): t for k, p, s, _, t in results}

    lines = [
        BEGIN,
        "## Accuracy of the fast path vs the authors' computation (`benchmarks/kernel_accuracy.py`)",
        "",
        f"- command: `python benchmarks/kernel_accuracy.py --seeds {args.seeds} --workers {args.workers}`; "
        f"selfcross {selfcross.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, wall {wall / 60:.1f} min (1 thread per run)",
        "- `small` synthetic benchmark (data seed 0), fold01, tri-modal, paper protocol (early "
        "stopping on dev accuracy, no epoch cap); test accuracy",
        '- reference = `kernels="reference"`, float64 (the authors\' ops and precision); fast = the '
        "default (float32, pooled attention, our BiGRU); the dropout's random stream differs",
        "- verdict rule: |mean paired difference| <= the larger of the two paths' seed std",
        "",
        "| model | path | " + " | ".join(f"seed {s}" for s in seeds) + " | mean (std) | mean run time (s) |",
        "|---|---|" + "---|" * len(seeds) + "---|---|",
    ]
    verdicts = []
    for kind in kinds:
        for path in PATHS:
            a = np.array([acc[kind, path, s] for s in seeds])
            t = np.mean([secs[kind, path, s] for s in seeds])
            std = a.std(ddof=1) if len(a) > 1 else float("nan")
            lines.append(
                f"| {kind} | {path} | "
                + " | ".join(f"{v:.3f}" for v in a)
                + f" | **{a.mean():.3f}** ({std:.3f}) | {t:.0f} |"
            )
        ref = np.array([acc[kind, "reference", s] for s in seeds])
        fast = np.array([acc[kind, "fast", s] for s in seeds])
        diff = fast - ref
        spread = max(ref.std(ddof=1), fast.std(ddof=1)) if len(seeds) > 1 else float("nan")
        ok = abs(diff.mean()) <= spread
        diff_std = diff.std(ddof=1) if len(seeds) > 1 else float("nan")
        verdict = "unchanged within seed spread" if ok else "DIFFERENT beyond seed spread"
        verdicts.append(
            f"- {kind}: fast - reference = {diff.mean():+.3f} (std over seeds {diff_std:.3f}); "
            f"seed spread {spread:.3f}: {verdict}"
        )
    lines += ["", *verdicts, END]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        replace_section(RESULTS, section, BEGIN, END)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
