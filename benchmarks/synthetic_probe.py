"""The synthetic benchmark's planted ordering, measured with a linear probe over many data seeds.

A cheap proxy for ``benchmarks/synthetic_ordering.py`` (which trains the real model): for each
data seed, the ``small`` benchmark's fold01 (the same fold), shrinkage LDA fitted on train on
time-averaged features per modality set, test accuracy. Prints the margins of each promise
(t - v, v - a, pair - its best part, all three - the best pair) per seed and their smallest
and mean values, and writes them to ``benchmarks/SYNTHETIC_PROBE.md``.

    python benchmarks/synthetic_probe.py [--data-seeds 0-29]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from selfcross.labels import PAPER_MODALITY_SETS
from selfcross.synthetic import make_synthetic
from selfcross.synthetic.probe import ordering_margins, probe_accuracy


def parse_seeds(spec: str) -> list[int]:
    """``"0-29"`` or ``"0,11,23"`` (data seeds may be 0, unlike training seeds)."""
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-seeds", default="0-29")
    args = ap.parse_args()
    seeds = parse_seeds(args.data_seeds)
    lines = [
        "# Synthetic benchmark: planted ordering under a linear probe",
        "",
        f"Command: `python benchmarks/synthetic_probe.py --data-seeds {args.data_seeds}`.",
        "`small` synthetic benchmark, fold01 of each data seed, shrinkage LDA on time-averaged features; "
        "test accuracy per modality set and the smallest gap of each promise (negative = broken).",
        "",
        "| data seed | " + " | ".join(PAPER_MODALITY_SETS) + " | t-v | v-a | pair-part | atv-pair |",
        "|---" * (len(PAPER_MODALITY_SETS) + 5) + "|",
    ]
    per_seed = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in seeds:
            root = make_synthetic(Path(tmp) / f"seed{s}", "small", seed=s, n_folds=1)
            acc = probe_accuracy(root / "fold01")
            m = ordering_margins(acc)
            per_seed.append(m)
            lines.append(f"| {s} | " + " | ".join(f"{acc[c]:.3f}" for c in PAPER_MODALITY_SETS) + " | "
                         + " | ".join(f"{v:+.3f}" for v in m.values()) + " |")
    for label, agg in (("smallest", np.min), ("mean", np.mean)):
        lines.append(f"| **{label}** |" + " |" * len(PAPER_MODALITY_SETS) + " "
                     + " | ".join(f"{agg([m[k] for m in per_seed]):+.3f}" for k in per_seed[0]) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(__file__).with_name("SYNTHETIC_PROBE.md").write_text(text)


if __name__ == "__main__":
    main()
