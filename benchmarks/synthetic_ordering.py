"""Does the synthetic benchmark's planted ordering hold for every data seed?

The promise of ``make-synthetic`` (docs/synthetic.md): text > video > audio, every pair beats
both its parts, tri-modal beats every pair. This trains the self model on all seven modality
sets of the ``small`` benchmark for several *data* seeds (fold01, training seeds 1-2, the
paper's protocol) and checks the ordering on each data seed's mean over the training seeds,
and on every single training seed.

    python benchmarks/synthetic_ordering.py [--data-seeds 0,11,23] [--seeds 1-2] [--workers 2]

Runs go through the experiment grid (resumable, one SQLite store per data seed); the tables
are printed and written to ``benchmarks/SYNTHETIC_ORDERING.md``.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

import selfcross
from selfcross.experiments import ExecutionOptions, GridPlan, run_grid
from selfcross.experiments.grid import parse_range
from selfcross.experiments.store import open_store
from selfcross.labels import PAPER_MODALITY_SETS
from selfcross.synthetic import make_synthetic
from selfcross.synthetic.probe import ordering_failures, ordering_margins


def _accuracies(db: Path, seeds: list[int]) -> dict[int, dict[str, float]]:
    """training seed -> modality code -> test accuracy (fold01, self, stat pooling)."""
    out: dict[int, dict[str, float]] = {s: {} for s in seeds}
    with open_store(db, create=False) as store:
        for r in store.runs("done"):
            if r.model_kind == "self" and r.pooling == "stat" and r.fold == 1 and r.seed in out:
                out[r.seed][r.modalities] = r.test_accuracy
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-synthetic-ordering")
    ap.add_argument("--data-seeds", default="0,11,23")
    ap.add_argument("--seeds", default="1-2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-epochs", type=int, default=None, help="default: the grid's (100, early stopping)")
    args = ap.parse_args()
    data_seeds = [int(x) for x in args.data_seeds.split(",")]
    seeds = parse_range(args.seeds, "seeds")
    out = Path(args.out)
    t0 = time.perf_counter()
    lines = [
        "# Synthetic benchmark: planted ordering over data seeds",
        "",
        f"Command: `python benchmarks/synthetic_ordering.py --data-seeds {args.data_seeds} "
        f"--seeds {args.seeds} --workers {args.workers}`; selfcross {selfcross.__version__} (results version "
        f"{selfcross.RESULTS_VERSION}), torch {torch.__version__}, {platform.machine()}.",
        "`small` synthetic benchmark, fold01, self model, paper preset, early stopping on dev accuracy. "
        "Test accuracy per modality set, mean over the training seeds.",
        "",
        "| data seed | " + " | ".join(PAPER_MODALITY_SETS) + " | t-v | v-a | pair-part | atv-pair | broken |",
        "|---" * (len(PAPER_MODALITY_SETS) + 6) + "|",
    ]
    broken_any = broken_mean = False
    for ds in data_seeds:
        root = out / f"data-seed{ds}"
        if not (root / "synthetic.json").is_file():
            make_synthetic(root, "small", seed=ds, n_folds=1)
        db = out / f"data-seed{ds}.sqlite"
        run_grid(root, GridPlan(models=("self",), modalities=PAPER_MODALITY_SETS, folds="1", seeds=seeds,
                                device="cpu", max_epochs=args.max_epochs),
                 ExecutionOptions(workers=args.workers, progress=False), db=db)
        n_test = len(np.load(root / "fold01" / "test_label.npy"))
        per_seed = _accuracies(db, seeds)
        mean = {c: float(np.mean([per_seed[s][c] for s in seeds])) for c in PAPER_MODALITY_SETS}
        m = ordering_margins(mean)
        broken = ordering_failures(mean)
        broken_mean |= bool(broken)
        broken += [f"seed {s}: {f}" for s in seeds for f in ordering_failures(per_seed[s])]
        broken_any |= bool(broken)
        lines.append(f"| {ds} | " + " | ".join(f"{mean[c]:.3f}" for c in PAPER_MODALITY_SETS) + " | "
                     + " | ".join(f"{v:+.3f}" for v in m.values()) + f" | {'; '.join(broken) or 'none'} |")
    verdict = {True: "no", False: "yes"}
    se = math.sqrt(0.25 / n_test)
    minutes = (time.perf_counter() - t0) / 60
    lines += ["", f"Ordering holds on every data seed's mean over the training seeds: {verdict[broken_mean]};"
              f" on every single training seed too: {verdict[broken_any]}. The test split holds {n_test} "
              f"utterances, so one run's accuracy has a standard error of about {se:.3f}. Wall time of this "
              f"invocation {minutes:.1f} min (runs already in the stores are reused, not re-run)."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(__file__).with_name("SYNTHETIC_ORDERING.md").write_text(text)


if __name__ == "__main__":
    main()
