"""Training and inference throughput of the tri-modal Self and Cross models.

Two paths, timed interleaved in one process (so machine load hits both alike):

  (a) ``authors``: float64 (their precision), ``nn.MultiheadAttention`` with attention
      weights requested (``need_weights=True``, as their code calls it), ``nn.GRU``;
  (b) ``fast``: our default — float32, the kernels of :mod:`selfcross.models.kernels`
      (pooled attention, BiGRU); attention dropout 0.1 stays on in training.

Training step = forward + cross-entropy + backward + Adam step on a synthetic batch at the
paper's shapes (audio 1000x120, video 32x2048, text 128x300). Inference = eval-mode forward
under ``torch.inference_mode``. Reported: median utterances/s over the timed steps, the
ratio (b)/(a), model GFLOP/s (FLOPs counted once with ``torch.utils.flop_counter`` on the
authors' ops), the float32 matmul GFLOP/s measured in the same run, model-FLOP utilization
(b)/matmul, and the peak RSS of each path (each in its own subprocess).

Usage:
    python benchmarks/train_throughput.py                 # paper shapes, batch 32
    python benchmarks/train_throughput.py --steps 2 --warmup 1 --kinds self --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: find _results
from typing import Any

import torch
import torch.nn.functional as F

from _results import replace_section
from selfcross.config import ModelConfig
from selfcross.models import FusionModel
from selfcross.models.kernels import set_kernels
from selfcross.training.environment import tune_malloc
from selfcross.training.optimizer import make_adam

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- cpu-train-throughput:begin -->", "<!-- cpu-train-throughput:end -->"
PATHS = {"authors": ("reference", torch.float64), "fast": ("fast", torch.float32)}


def make_batch(cfg: ModelConfig, batch: int, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Random float32 inputs ``[B, T, F]`` per modality and labels ``[B]``."""
    g = torch.Generator().manual_seed(seed)
    x = {m: torch.randn(batch, s.seq_len, s.feat_dim, generator=g) for m, s in cfg.shapes.items()}
    y = torch.randint(0, cfg.n_classes, (batch,), generator=g)
    return x, y


def build(kind: str, path: str, seed: int = 0) -> FusionModel:
    """The tri-modal model of ``kind`` for one path (same initial weights for both paths)."""
    torch.manual_seed(seed)
    impl, dtype = PATHS[path]
    return set_kernels(FusionModel(ModelConfig(kind=kind)).to(dtype), impl)


class Trainer:
    """One model + Adam; ``step()`` runs a full training step on the fixed batch."""

    def __init__(self, model: FusionModel, x: dict[str, torch.Tensor], y: torch.Tensor, kernels: str) -> None:
        dtype = next(model.parameters()).dtype
        self.model = model
        self.x = {m: v.to(dtype) for m, v in x.items()}  # data already batched, in the model's dtype
        self.y = y
        self.opt = make_adam(model.parameters(), 1e-3, kernels)  # as train_run makes it

    def step(self) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(**self.x), self.y)
        loss.backward()
        self.opt.step()

    def infer(self) -> None:
        self.model.eval()
        with torch.inference_mode():
            self.model(**self.x)


def matmul_gflops(n: int = 1024, reps: int = 7, dtype: torch.dtype = torch.float32) -> float:
    """Median ``n x n`` matmul rate in GFLOP/s (the machine's practical dense peak)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def count_gflop_per_utt(kind: str, batch: int = 2) -> dict[str, float]:
    """Model GFLOP per utterance (forward, forward+backward) counted on the authors' ops."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build(kind, "authors").float()  # float32 for speed; FLOPs do not depend on dtype
    x, y = make_batch(model.config, batch)
    model.train()
    with FlopCounterMode(display=False) as fwd:
        logits = model(**x)
    with FlopCounterMode(display=False) as bwd:
        F.cross_entropy(logits, y).backward()
    f, b = fwd.get_total_flops() / batch / 1e9, bwd.get_total_flops() / batch / 1e9
    return {"forward": f, "train": f + b}


def timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(kind: str, batch: int, steps: int, warmup: int) -> dict[str, Any]:
    """Interleaved timings of both paths for one model kind (seconds per batch, medians)."""
    x, y = make_batch(ModelConfig(kind=kind), batch)
    trainers = {p: Trainer(build(kind, p), x, y, PATHS[p][0]) for p in PATHS}
    out: dict[str, Any] = {}
    for mode in ("train", "infer"):
        samples: dict[str, list[float]] = {p: [] for p in PATHS}
        for i in range(warmup + steps):
            for p, tr in trainers.items():
                dt = timed(tr.step if mode == "train" else tr.infer)
                if i >= warmup:
                    samples[p].append(dt)
        for p in PATHS:
            out[f"{mode}_{p}_s"] = statistics.median(samples[p])
            out[f"{mode}_{p}_all_s"] = samples[p]
    return out


def peak_rss_subprocess(kind: str, path: str, batch: int) -> float:
    """Peak RSS (MB) of a fresh process that runs two training steps of one path.

    Why ``VmHWM`` and not ``ru_maxrss``: Linux carries ``ru_maxrss`` over ``fork`` + ``exec``
    (the child starts as a copy of this process, already at ~3.5 GB after the timings), so
    every child reported this process's peak and both paths showed the same number. ``VmHWM``
    belongs to the child's own address space, which ``exec`` replaces.
    """
    here = str(Path(__file__).parent)
    code = (
        f"import sys,torch; sys.path.insert(0, {here!r}); import train_throughput as t;"
        f"t.tune_malloc(); x,y=t.make_batch(t.ModelConfig(kind={kind!r}), {batch});"
        f"tr=t.Trainer(t.build({kind!r}, {path!r}), x, y, t.PATHS[{path!r}][0]); tr.step(); tr.step();"
        "print([ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0])"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(res.stdout.strip().splitlines()[-1]) / 1024.0  # kB -> MB


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import selfcross

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "selfcross": selfcross.__version__,
    }


def render(info: dict[str, Any], rows: list[dict[str, Any]], command: str) -> str:
    m = info["machine"]
    lines = [
        BEGIN,
        "## CPU: training and inference throughput (`benchmarks/train_throughput.py`)",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores, torch threads {m['threads']}; {m['platform']}",
        f"- versions: Python {m['python']}, torch {m['torch']}, selfcross {m['selfcross']}",
        f"- command: `{command}`",
        f"- date: {info['date']}; load average before / after: {info['load_before']} / {info['load_after']}"
        " (a load above 0 before the run means other processes competed for the cores)",
        f"- glibc malloc tuning (`tune_malloc`, applies to both paths): {info['malloc_tuned']}",
        f"- batch {info['batch']}, {info['warmup']} warm-up + {info['steps']} timed steps per path, "
        "interleaved; medians (ratio = median authors' step time / median fast step time; "
        "paired-step ratios = min-max of the ratios of steps timed back to back)",
        f"- float32 matmul (1024^3) in this run: {info['matmul_f32']:.1f} GFLOP/s "
        f"(samples {', '.join(f'{v:.0f}' for v in info['matmul_samples'])}); "
        f"float64 {info['matmul_f64']:.1f} GFLOP/s",
        "",
        *markdown_table(rows),
        "",
        "Targets of the performance work: training ratio >= 4x for Self and Cross, MFU >= 15%, "
        "inference ratio >= 6x.",
        END,
    ]
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    """The results table as printed, written to RESULTS.md and shown in the README."""
    lines = [
        "| model | mode | authors f64 utt/s | fast utt/s | ratio | paired-step ratios | GFLOP/utt "
        "| fast GFLOP/s | MFU vs f32 matmul | peak RSS authors / fast (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["ratio_range"]
        lines.append(
            f"| {r['kind']} | {r['mode']} | {r['authors_ups']:.2f} | {r['fast_ups']:.2f} | {r['ratio']:.2f}x "
            f"| {lo:.2f}-{hi:.2f}x | {r['gflop_utt']:.3f} | {r['fast_gflops']:.1f} | {100 * r['mfu']:.1f}% "
            f"| {r['rss']} |"
        )
    return lines


def write_results(section: str) -> None:
    replace_section(RESULTS, section, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="self,cross", help="comma-separated: self, cross")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per path and mode")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's default malloc settings")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    ap.add_argument("--no-write", action="store_true", help=f"do not update {RESULTS.name}")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = False if args.no_malloc_tuning else tune_malloc()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    info: dict[str, Any] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_before": " ".join(f"{v:.1f}" for v in os.getloadavg()),
        "malloc_tuned": tuned,
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
    }
    mm = [matmul_gflops()]
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for kind in kinds:
        flops = count_gflop_per_utt(kind)
        t = measure(kind, args.batch, args.steps, args.warmup)
        mm.append(matmul_gflops())
        rss = {}
        if not args.no_rss:
            rss = {p: peak_rss_subprocess(kind, p, args.batch) for p in PATHS}
        raw[kind] = {"gflop_per_utt": flops, **t, "peak_rss_mb": rss}
        for mode, gf in (("train", flops["train"]), ("infer", flops["forward"])):
            a, f = args.batch / t[f"{mode}_authors_s"], args.batch / t[f"{mode}_fast_s"]
            # each timed step of one path ran right after the other path's: their ratios show
            # how far the machine's drift moves the figure within this one run
            paired = sorted(x / y for x, y in zip(t[f"{mode}_authors_all_s"], t[f"{mode}_fast_all_s"]))
            rows.append(
                {
                    "kind": kind,
                    "mode": mode,
                    "authors_ups": a,
                    "fast_ups": f,
                    "ratio": f / a,
                    "ratio_range": (paired[0], paired[-1]),
                    "gflop_utt": gf,
                    "fast_gflops": f * gf,
                    "rss": (f"{rss['authors']:.0f} / {rss['fast']:.0f}" if rss and mode == "train" else "-"),
                }
            )
    info["matmul_samples"] = mm
    info["matmul_f32"] = statistics.median(mm)
    info["matmul_f64"] = matmul_gflops(dtype=torch.float64)
    info["load_after"] = " ".join(f"{v:.1f}" for v in os.getloadavg())
    for r in rows:
        r["mfu"] = r["fast_gflops"] / info["matmul_f32"]
    print(
        f"float32 matmul {info['matmul_f32']:.1f} GFLOP/s, float64 {info['matmul_f64']:.1f}; "
        f"load {info['load_before']} -> {info['load_after']}; malloc tuned: {tuned}"
    )
    print(
        f"{'model':6} {'mode':5} {'authors/s':>9} {'fast/s':>8} {'ratio':>6} {'paired':>11} {'GF/utt':>7} "
        f"{'GF/s':>6} {'MFU':>6}  RSS MB"
    )
    for r in rows:
        lo, hi = r["ratio_range"]
        print(
            f"{r['kind']:6} {r['mode']:5} {r['authors_ups']:9.2f} {r['fast_ups']:8.2f} {r['ratio']:5.2f}x "
            f"{lo:5.2f}-{hi:4.2f}x {r['gflop_utt']:7.3f} {r['fast_gflops']:6.1f} {100 * r['mfu']:5.1f}%  "
            f"{r['rss']}"
        )
    print("\n".join(markdown_table(rows)))
    command = "python benchmarks/train_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": rows, "raw": raw}, indent=2, default=str))
    if not args.no_write:
        write_results(render(info, rows, command.strip()))
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
