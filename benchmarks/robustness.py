"""Self vs cross attention with one modality missing, noisy, shuffled or swapped at test time.

Trains a tri-modal self and a tri-modal cross model on fold01 of the synthetic benchmark
(paper preset), and with ``--modality-dropout P`` the same two again with training-time
modality dropout; scores each on the test split clean and under every perturbation of
``selfcross evaluate --perturb``; prints a Markdown table of test accuracy and its change.

    python benchmarks/robustness.py --utterances 600 --max-epochs 8 --modality-dropout 0.3 --out /tmp/rob
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from selfcross.config import ModelConfig, RunConfig, TrainConfig
from selfcross.synthetic.generator import make_synthetic
from selfcross.training import evaluate_run, train_run

SPECS = ("drop:a", "drop:v", "drop:t", "noise:a=0", "noise:v=0", "noise:t=0", "shuffle:a", "shuffle:v",
         "shuffle:t", "swap:a", "swap:v", "swap:t")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="working folder (data and runs)")
    ap.add_argument("--utterances", type=int, default=600, help="synthetic utterances (small preset)")
    ap.add_argument("--max-epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--modality-dropout", type=float, default=0.0,
                    help="also train both models with this training-time modality dropout")
    args = ap.parse_args()
    t0 = time.perf_counter()
    fold = make_synthetic(args.out / "data", "small", n_folds=1, n_utterances=args.utterances) / "fold01"
    scores: dict[str, dict[str, float]] = {}
    variants = [(kind, 0.0) for kind in ("self", "cross")]
    if args.modality_dropout > 0:
        variants += [(kind, args.modality_dropout) for kind in ("self", "cross")]
    names = []
    for kind, p in variants:
        name = kind if p == 0 else f"{kind}, modality dropout {p:g}"
        names.append(name)
        run = args.out / f"{kind}-atv-s{args.seed}-md{p:g}"
        if not (run / "metrics.json").is_file():
            train = TrainConfig(max_epochs=args.max_epochs, num_threads=1, seed=args.seed, modality_dropout=p)
            train_run(RunConfig(model=ModelConfig(kind=kind), train=train), fold, run, progress=False,
                      overwrite=True)
        scores[name] = {"clean": evaluate_run(run, fold)["accuracy"]}
        for spec in SPECS:
            scores[name][spec] = evaluate_run(run, fold, perturb=spec)["accuracy"]
    print(f"Command: `python benchmarks/robustness.py --utterances {args.utterances} --max-epochs "
          f"{args.max_epochs} --seed {args.seed} --modality-dropout {args.modality_dropout:g}`; "
          f"wall time {(time.perf_counter() - t0) / 60:.1f} min.")
    print("`small` synthetic benchmark, fold01, A+V+T, paper preset; test accuracy (change vs clean).\n")
    print(f"| test input | {' | '.join(names)} |\n|---|{'---|' * len(names)}")
    for spec in ("clean", *SPECS):
        cells = []
        for kind in names:
            acc = scores[kind][spec]
            delta = "" if spec == "clean" else f" ({acc - scores[kind]['clean']:+.3f})"
            cells.append(f"{acc:.3f}{delta}")
        print(f"| {spec} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
