"""Grid throughput (runs per minute): local processes vs Ray tasks, and runs packed per GPU.

Usage (Ray needs the ``ray`` extra; without it only the local executor is timed)::

    python benchmarks/executors_throughput.py [--seeds 3] [--max-epochs 2] [--workers 2]
                                              [--gpus-per-run 1,0.5,0.25,0.125] [--ray-first]

Builds a tiny synthetic data root (``small`` preset, 1 fold, 140 utterances) in a temporary
folder and runs the same grid (self and cross on ``a``, ``av`` -> 3 cells x ``--seeds``
seeds, ``--max-epochs`` epochs, CPU) once per executor, each into a fresh store and runs
folder so nothing is reused:

* ``local``: ``--workers`` spawned processes, ``cores // workers`` torch threads each;
* ``ray``: a private local Ray instance (all cores, no dashboard), ``--cpus-per-run 1``;
  its startup is timed separately and the rate is given with and without it.

When a CUDA GPU is visible, the same grid also runs on it with Ray at each
``--gpus-per-run`` fraction (1/G runs share the GPU) and the best packing is named. Prints a
table; no assertions. The numbers depend on the load of the machine: compare rows of one
invocation, not invocations.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from selfcross.experiments.grid import run_grid
from selfcross.experiments.options import ExecutionOptions, GridPlan
from selfcross.synthetic import make_synthetic


def _grid(root: Path, out: Path, seeds: int, max_epochs: int, **kw: object) -> tuple[int, float]:
    t0 = time.perf_counter()
    plan = GridPlan(models=("self", "cross"), modalities=("a", "av"), folds="1", seeds=f"1-{seeds}",
                    max_epochs=max_epochs, device=str(kw.pop("device", "auto")))
    execution = ExecutionOptions(progress=False, log=lambda m: None, **kw)  # type: ignore[arg-type]
    s = run_grid(root, plan, execution, db=out / "r.sqlite")
    wall = time.perf_counter() - t0
    if not s.complete:
        raise SystemExit(f"grid incomplete in {out}: {s}")
    return s.done, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (3 cells)")
    p.add_argument("--max-epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="local executor processes")
    p.add_argument("--ray-first", action="store_true", help="time Ray before local (order-effect check)")
    p.add_argument("--gpus-per-run", default="1,0.5,0.25,0.125", help="GPU fractions to try (GPU only)")
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows: list[tuple[str, int, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        root = make_synthetic(tmp / "data", "small", seed=0, n_folds=1, n_utterances=140)
        def local() -> None:
            n, wall = _grid(root, tmp / "local", args.seeds, args.max_epochs, workers=args.workers,
                            device="cpu")
            threads = max(1, cores // args.workers)
            rows.append((f"local, {args.workers} processes x {threads} threads", n, wall, ""))

        if not args.ray_first:
            local()
        if importlib.util.find_spec("ray") is None:
            print("ray is not installed (pip install selfcross[ray]): only the local executor was timed")
        else:
            import logging

            import ray

            t0 = time.perf_counter()
            ray.init(num_cpus=cores, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)
            startup = time.perf_counter() - t0
            try:
                n, wall = _grid(root, tmp / "ray", args.seeds, args.max_epochs, executor="ray", device="cpu",
                                executor_options={"cpus_per_run": 1})
                rows.append((f"ray, {cores} CPUs, 1 CPU per run", n, wall,
                             f"{60 * n / (wall + startup):.1f} incl. {startup:.0f} s Ray startup"))
                if torch.cuda.is_available() and ray.cluster_resources().get("GPU", 0) >= 1:
                    for g in (float(x) for x in args.gpus_per_run.split(",")):
                        options = {"cpus_per_run": 1, "gpus_per_run": g}
                        n, wall = _grid(root, tmp / f"gpu{g:g}", args.seeds, args.max_epochs, executor="ray",
                                        device="cuda", executor_options=options)
                        rows.append((f"ray, GPU, {g:g} GPU per run ({int(1 / g)} per GPU)", n, wall, ""))
            finally:
                ray.shutdown()
        if args.ray_first:
            local()
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}; grid: 3 cells x {args.seeds} seeds, "
          f"{args.max_epochs} epochs, 140 utterances")
    print(f"{'executor':<46} {'runs':>5} {'wall s':>8} {'runs/min':>9}  note")
    for name, n, wall, note in rows:
        print(f"{name:<46} {n:>5} {wall:>8.1f} {60 * n / wall:>9.1f}  {note}")
    gpu = [r for r in rows if "GPU" in r[0]]
    if gpu:
        best = max(gpu, key=lambda r: r[1] / r[2])
        print(f"best GPU packing: {best[0]}")
    else:
        print("GPU: no CUDA device here; runs per GPU that maximize throughput are still to be measured")


if __name__ == "__main__":
    main()
