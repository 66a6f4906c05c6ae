"""GPU throughput of the tri-modal models and runs/hour of packed small runs (issue 8, points 3-4).

Prepared for a CUDA machine; never imported by tests. It measures, per model kind:

1. training and inference utterances/s at the paper's shapes (batch 32) in float32, with
   TF32 matmuls on/off, and with bf16 autocast;
2. *packing*: K independent training processes sharing the one GPU (K = 1, 2, 4, 8), each
   doing the steps of a full run; aggregate steps/s -> runs/hour, using the paper's run size
   (~5,400 training utterances x 30 epochs + dev/test passes);
3. the projected wall time of the 700-run study (5 folds x 10 seeds x 14 model variants) at
   the best packing factor.

Results are printed and appended to ``benchmarks/RESULTS.md`` (GPU section, with the card's
name). Usage on the GPU machine (~6-8 minutes in all):

    python benchmarks/gpu_throughput.py                    # everything
    python benchmarks/gpu_throughput.py --steps 20 --pack 1,2,4 --no-write

Packing = several runs per GPU: one process per run (what the grid's ``local`` executor does
with ``--jobs K`` on one GPU, and what Ray does with ``num_gpus=1/K``). A single small run
leaves most of an H100 idle (kernel-launch bound: the BiGRUs are 500 sequential steps), so
concurrent runs fill the gaps; the measurement says how far that goes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
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

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- gpu-throughput:begin -->", "<!-- gpu-throughput:end -->"
#: One paper run: ~5,400 training utterances x ~30 epochs (early stopping at 25-40) + dev
#: and test passes (~1,000 utterances per epoch, inference only).
TRAIN_UTT_PER_RUN = 5400 * 30
EVAL_UTT_PER_RUN = 1000 * 30
#: The paper's study: 5 folds x 10 seeds x 14 variants (7 modality sets x self/cross, ablations).
STUDY_RUNS = 700


def make_batch(kind: str, batch: int, device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    cfg = ModelConfig(kind=kind)
    g = torch.Generator().manual_seed(0)
    x = {m: torch.randn(batch, s.seq_len, s.feat_dim, generator=g).to(device) for m, s in cfg.shapes.items()}
    return x, torch.randint(0, cfg.n_classes, (batch,), generator=g).to(device)


def bench_model(kind: str, batch: int, steps: int, warmup: int, tf32: bool, amp: bool) -> dict[str, float]:
    """Training and inference utterances/s on ``cuda`` (CUDA events, medians)."""
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    model = FusionModel(ModelConfig(kind=kind)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = make_batch(kind, batch, dev)
    def ctx() -> torch.autocast:
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        with ctx():
            logits = model(**x)
        F.cross_entropy(logits.float(), y).backward()
        opt.step()

    def infer_step() -> None:
        with torch.inference_mode(), ctx():
            model(**x)

    out = {}
    for name, fn, train in (("train", train_step, True), ("infer", infer_step, False)):
        model.train(train)
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(steps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b) / 1000)
        out[f"{name}_utt_s"] = batch / statistics.median(times)
    out["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _packed_worker(kind: str, batch: int, steps: int, start: Any, q: Any) -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = torch.device("cuda")
    torch.manual_seed(os.getpid())
    model = FusionModel(ModelConfig(kind=kind)).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = make_batch(kind, batch, dev)
    for _ in range(3):  # warm-up (cuDNN plans, allocator)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(**x), y).backward()
        opt.step()
    torch.cuda.synchronize()
    start.wait()
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(**x), y).backward()
        opt.step()
    torch.cuda.synchronize()
    q.put(time.perf_counter() - t)


def bench_packing(kind: str, batch: int, steps: int, k: int) -> dict[str, float]:
    """K concurrent training processes on one GPU: aggregate training utterances/s."""
    ctx = mp.get_context("spawn")
    start, q = ctx.Barrier(k + 1), ctx.Queue()
    procs = [ctx.Process(target=_packed_worker, args=(kind, batch, steps, start, q)) for _ in range(k)]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    times = [q.get() for _ in range(k)]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    agg = k * steps * batch / wall
    return {"k": k, "agg_train_utt_s": agg, "slowest_run_s": max(times), "wall_s": wall}


def runs_per_hour(train_utt_s: float, infer_utt_s: float) -> float:
    """Paper-size runs per hour at the given aggregate rates (inference rate scaled alike)."""
    per_run = TRAIN_UTT_PER_RUN / train_utt_s + EVAL_UTT_PER_RUN / infer_utt_s
    return 3600.0 / per_run


def render(info: dict[str, Any]) -> str:
    lines = [
        BEGIN,
        f"## GPU: {info['gpu']} (`benchmarks/gpu_throughput.py`)",
        "",
        f"- torch {info['torch']}, CUDA {info['cuda']}, date {info['date']}; command `{info['command']}`",
        "",
        "| model | precision | train utt/s | infer utt/s | peak MB |",
        "|---|---|---|---|---|",
    ]
    for r in info["models"]:
        lines.append(
            f"| {r['kind']} | {r['precision']} | {r['train_utt_s']:.0f} | {r['infer_utt_s']:.0f} "
            f"| {r['peak_mem_mb']:.0f} |"
        )
    lines += [
        "",
        "| model | runs per GPU | aggregate train utt/s | runs/hour | 700-run study (h) |",
        "|---|---|---|---|---|",
    ]
    for r in info["packing"]:
        lines.append(
            f"| {r['kind']} | {r['k']} | {r['agg_train_utt_s']:.0f} | {r['runs_per_hour']:.1f} "
            f"| {r['study_hours']:.1f} |"
        )
    lines += [END]
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    replace_section(RESULTS, section, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="self,cross")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--pack", default="1,2,4,8", help="concurrent runs per GPU to measure")
    ap.add_argument("--pack-steps", type=int, default=40)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU (see benchmarks/README.md)", file=sys.stderr)
        return 2
    kinds = [k for k in args.kinds.split(",") if k]
    info: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python benchmarks/gpu_throughput.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "models": [],
        "packing": [],
    }
    best_infer: dict[str, float] = {}
    for kind in kinds:
        settings = (("fp32", False, False), ("tf32", True, False), ("bf16-autocast", True, True))
        for precision, tf32, amp in settings:
            torch.cuda.reset_peak_memory_stats()
            r = bench_model(kind, args.batch, args.steps, args.warmup, tf32, amp)
            row = {"kind": kind, "precision": precision, **r}
            info["models"].append(row)
            print(json.dumps(row))
            if precision == "tf32":
                best_infer[kind] = r["infer_utt_s"]
        for k in [int(v) for v in args.pack.split(",") if v]:
            r = bench_packing(kind, args.batch, args.pack_steps, k)
            r["kind"] = kind
            # dev/test inference assumed to pack like training (rate from the single run)
            r["runs_per_hour"] = runs_per_hour(r["agg_train_utt_s"], best_infer[kind] * k)
            r["study_hours"] = STUDY_RUNS / r["runs_per_hour"]
            info["packing"].append(r)
            print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(info, indent=2))
    if not args.no_write:
        write_results(render(info))
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
