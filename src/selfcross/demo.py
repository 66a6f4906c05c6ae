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
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from selfcross.analysis.report import make_report
from selfcross.errors import DataError
from selfcross.experiments.grid import run_grid
from selfcross.experiments.options import ExecutionOptions, GridPlan
from selfcross.folds import list_folds
from selfcross.labels import PAPER_MODALITY_SETS
from selfcross.synthetic import make_synthetic

#: Epoch cap of the demo's runs (the paper's protocol allows 100 with early stopping).
DEMO_MAX_EPOCHS = 4
#: Seed of the synthetic benchmark the demo builds.
DEMO_DATA_SEED = 0


def _data_ready(root: Path, n_folds: int) -> bool:
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
    max_epochs: int | None = DEMO_MAX_EPOCHS,
    device: str = "cpu",
    execution: ExecutionOptions | None = None,
    paper_labels: bool = False,
) -> Path:
    """Build the ``small`` synthetic benchmark, run self and cross on all 7 modality sets, report.

    Args:
        out_dir: everything goes here: ``data/`` (the benchmark), ``results.sqlite``,
            ``runs/`` (one folder per run), ``report/`` (report.md, CSV, JSON, figures).
        folds: fold numbers, as for :func:`~selfcross.experiments.run_grid` (``"1-3"`` by
            default; ``"1-5"`` = the paper's protocol); the benchmark gets as many folds as
            the highest number.
        seeds: seeds, as for the grid (``"1-2"`` by default).
        max_epochs: epoch cap per run (``0`` = no cap: early stopping alone ends each run, the
            paper's protocol; ``None`` = the default cap of 100).
        device: ``cpu`` (default: the demo's numbers should not depend on the machine), or
            ``auto``/``cuda``.
        execution: how the runs execute (default: 2 workers, one torch thread each on a
            2-core machine, progress bar). Its ``log`` is where the demo's messages go
            (default: stdout); the grid's notices go to stderr.
        paper_labels: label metrics WA/UA as the paper does.

    Returns:
        Path of ``report/report.md``.
    """
    execution = execution or ExecutionOptions(workers=2)
    say = execution.log or print
    out = Path(out_dir)
    data = out / "data"
    plan = GridPlan(models=("self", "cross"), modalities=PAPER_MODALITY_SETS, folds=folds, seeds=seeds,
                    device=device, preset="paper", max_epochs=max_epochs)
    fold_list, seed_list = plan.folds, plan.seeds
    assert isinstance(fold_list, list) and isinstance(seed_list, list)
    t0 = time.perf_counter()
    if _data_ready(data, max(fold_list)):
        say(f"demo: using the synthetic benchmark in {data}")
    else:
        say(f"demo: building the small synthetic benchmark in {data} ...")
        make_synthetic(data, preset="small", seed=DEMO_DATA_SEED, n_folds=max(fold_list))
    grid_execution = replace(execution, log=lambda m: print(m, file=sys.stderr))
    summary = run_grid(data, plan, grid_execution, db=out / "results.sqlite", runs_dir=out / "runs")
    say(str(summary))
    report = make_report(out / "results.sqlite", out / "report", paper_labels=paper_labels)
    say("")
    say((out / "report" / "summary.txt").read_text())
    cap = ("up to 100 epochs with early stopping" if max_epochs is None
           else "no epoch cap, early stopping" if max_epochs == 0 else f"epochs capped at {max_epochs}")
    say(f"demo: {summary.planned} runs ({len(fold_list)} folds x {len(seed_list)} seeds, {cap}) in "
        f"{time.perf_counter() - t0:.0f} s; report: {report}")
    return report
