"""``selfcross demo``: the paper's study end to end on the embedded synthetic benchmark.

Why: IEMOCAP is licence-gated; the demo shows the whole pipeline (data -> grid -> store ->
statistics -> report) on data anyone can generate, in minutes on a laptop CPU. It is an
ordinary grid, so it is resumable: rerunning ``selfcross demo`` after an interruption
finishes the missing runs only.

Budget: self on 7 modality sets + cross on the 4 multi-modal sets = 11 cells x 3 folds x
2 seeds = 66 runs; epochs are capped (:data:`DEMO_MAX_EPOCHS`) so that it finishes in
under 10 minutes on a 2-core CPU (see README for the measured figure).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from selfcross.analysis.report import make_report
from selfcross.experiments.grid import parse_range, run_grid
from selfcross.labels import PAPER_MODALITY_SETS

#: Epoch cap of the demo's runs (the paper's protocol allows 100 with early stopping).
DEMO_MAX_EPOCHS = 4
#: Seed of the synthetic benchmark the demo builds.
DEMO_DATA_SEED = 0


def _data_ready(root: Path, n_folds: int) -> bool:
    from selfcross.errors import DataError
    from selfcross.folds import list_folds

    if not (root / "synthetic.json").is_file():
        return False
    try:
        return len(list_folds(root)) >= n_folds
    except DataError:
        return False


def run_demo(
    out_dir: str | Path = "demo-output",
    folds: Sequence[int] | str = "1-3",
    seeds: Sequence[int] | str = "1-2",
    workers: int = 2,
    max_epochs: int | None = DEMO_MAX_EPOCHS,
    device: str = "cpu",
    progress: bool = True,
    paper_labels: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Build the ``small`` synthetic benchmark, run self and cross on all 7 modality sets, report.

    Args:
        out_dir: everything goes here: ``data/`` (the benchmark), ``results.sqlite``,
            ``runs/`` (one folder per run), ``report/`` (report.md, CSV, JSON, figures).
        folds: fold numbers, as for :func:`~selfcross.experiments.run_grid` (``"1-3"`` by
            default; ``"1-5"`` = the paper's protocol); the benchmark gets as many folds as
            the highest number.
        seeds: seeds, as for the grid (``"1-2"`` by default).
        workers: parallel runs (2 on a 2-core machine: one torch thread each).
        max_epochs: epoch cap per run (``0`` = no cap: early stopping alone ends each run, the
            paper's protocol; ``None`` = the default cap of 100).
        device: ``cpu`` (default: the demo's numbers should not depend on the machine), or
            ``auto``/``cuda``.
        progress: progress bar.
        paper_labels: label metrics WA/UA as the paper does.
        log: where messages go (default: stdout).

    Returns:
        Path of ``report/report.md``.
    """
    from selfcross.synthetic import make_synthetic

    say = log or print
    out = Path(out_dir)
    data = out / "data"
    fold_list, seed_list = parse_range(folds, "folds"), parse_range(seeds, "seeds")
    assert fold_list is not None and seed_list is not None
    t0 = time.perf_counter()
    if _data_ready(data, max(fold_list)):
        say(f"demo: using the synthetic benchmark in {data}")
    else:
        say(f"demo: building the small synthetic benchmark in {data} ...")
        make_synthetic(data, preset="small", seed=DEMO_DATA_SEED, n_folds=max(fold_list))
    summary = run_grid(
        data, models=("self", "cross"), modalities=PAPER_MODALITY_SETS, folds=fold_list,
        seeds=seed_list, db=out / "results.sqlite", runs_dir=out / "runs", workers=workers,
        device=device, preset="paper", progress=progress, max_epochs=max_epochs,
        log=lambda m: print(m, file=sys.stderr),
    )
    say(str(summary))
    report = make_report(out / "results.sqlite", out / "report", paper_labels=paper_labels)
    say("")
    say((out / "report" / "summary.txt").read_text())
    cap = ("up to 100 epochs with early stopping" if max_epochs is None
           else "no epoch cap, early stopping" if max_epochs == 0 else f"epochs capped at {max_epochs}")
    say(f"demo: {summary.planned} runs ({len(fold_list)} folds x {len(seed_list)} seeds, {cap}) in "
        f"{time.perf_counter() - t0:.0f} s; report: {report}")
    return report
