"""Micro-benchmark of the CPU BiGRU kernel: forward + backward per modality shape.

Times ``gru_forward(gru, x)`` + ``out.sum().backward()`` for the three GRUs of the Self/Cross
models (hidden 60, batch 32 by default) against ``nn.GRU`` in float32 and float64 (the
authors' path). Prints milliseconds per call: the minimum and the median over ``--repeats``
calls, with the variants interleaved so background load hits them alike, plus the thread
count and the load average (the machine's 2 cores are shared: read the minimum).

``tune_malloc()`` is called first, as ``selfcross train`` does (``--no-tune-malloc`` to skip it:
then every large buffer is a fresh ``mmap`` whose pages fault in on first touch, which adds
the same cost to every variant). ``--compare PATH`` also times the ``gru_forward`` of
another copy of ``selfcross/models/kernels/gru.py`` (e.g. an earlier version from
``git show``) in the same run.

Usage::

    .venv/bin/python benchmarks/gru_throughput.py [--threads 2] [--repeats 7] [--batch 32]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from selfcross.models.kernels import gru_forward
from selfcross.training.environment import tune_malloc

HIDDEN = 60
# (name, time steps, features, does the input require grad)
SHAPES = (("audio", 500, 120, True), ("text", 128, 300, False), ("video", 25, 2048, True))


def _load_forward(path: Path) -> Callable[[nn.GRU, torch.Tensor], torch.Tensor]:
    spec = importlib.util.spec_from_file_location("fast_rnn_compare", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.gru_forward


def _idle_fraction(seconds: float = 0.5) -> float:
    """Share of CPU time the whole machine spent idle over ``seconds`` (Linux ``/proc/stat``);
    1.0 where that is unreadable."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)

    try:
        i0, t0 = read()
        time.sleep(seconds)
        i1, t1 = read()
    except (OSError, ValueError, IndexError):
        return 1.0
    return (i1 - i0) / max(1, t1 - t0)


def _wait_idle(threshold: float, limit_s: float = 120.0) -> float:
    """Wait (at most ``limit_s``) until the machine looks idle; returns the last idle share."""
    deadline = time.monotonic() + limit_s
    frac = _idle_fraction()
    while frac < threshold and time.monotonic() < deadline:
        frac = _idle_fraction()
    return frac


def _step(fwd: Callable[[nn.GRU, torch.Tensor], torch.Tensor], gru: nn.GRU, x: torch.Tensor) -> float:
    """Seconds for one forward + backward (gradients cleared first, outside the timing)."""
    gru.zero_grad(set_to_none=True)
    x.grad = None
    t0 = time.perf_counter()
    fwd(gru, x).sum().backward()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--compare", type=Path, default=None, help="another copy of models/kernels/gru.py to time alongside"
    )
    ap.add_argument("--no-reference", action="store_true", help="skip nn.GRU float32/float64")
    ap.add_argument("--no-tune-malloc", action="store_true", help="keep glibc's malloc defaults")
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        help="before each round, wait until this share of the machine's CPU time was idle (e.g. 0.9)",
    )
    args = ap.parse_args()
    tuned = False if args.no_tune_malloc else tune_malloc()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    variants: dict[str, tuple[Callable[[nn.GRU, torch.Tensor], torch.Tensor], torch.dtype]] = {
        "ours f32": (gru_forward, torch.float32)
    }
    if args.compare is not None:
        variants["compare f32"] = (_load_forward(args.compare), torch.float32)
    if not args.no_reference:
        variants["nn.GRU f32"] = (lambda g, x: g(x)[0], torch.float32)
        variants["nn.GRU f64"] = (lambda g, x: g(x)[0], torch.float64)

    print(
        f"threads={torch.get_num_threads()} batch={args.batch} hidden={HIDDEN} repeats={args.repeats} "
        f"tune_malloc={tuned} torch={torch.__version__}"
    )
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    totals = {k: 0.0 for k in variants}
    for name, steps, feats, x_grad in SHAPES:
        gru32 = nn.GRU(feats, HIDDEN, batch_first=True, bidirectional=True)
        grus = {torch.float32: gru32, torch.float64: copy.deepcopy(gru32).double()}
        x32 = torch.randn(args.batch, steps, feats)
        xs = {dt: x32.to(dt).requires_grad_(x_grad) for dt in grus}
        times: dict[str, list[float]] = {k: [] for k in variants}
        for fwd, dt in variants.values():  # warm-up
            _step(fwd, grus[dt], xs[dt])
        idle = []
        for _ in range(args.repeats):
            if args.wait_idle > 0:
                idle.append(_wait_idle(args.wait_idle))
            for k, (fwd, dt) in variants.items():
                times[k].append(_step(fwd, grus[dt], xs[dt]))
        cells = []
        for k, v in times.items():
            totals[k] += min(v)
            cells.append(f"{k} {1e3 * min(v):7.1f} (med {1e3 * statistics.median(v):7.1f})")
        if idle:
            cells.append(f"idle before rounds {min(idle):.2f}-{max(idle):.2f}")
        print(f"{name:5s} [{args.batch},{steps},{feats}] x.grad={x_grad!s:5s}: " + " | ".join(cells))
    print("total (sum of minima, ms): " + " | ".join(f"{k} {1e3 * v:.1f}" for k, v in totals.items()))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
