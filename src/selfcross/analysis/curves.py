"""Learning curves in the report: per-epoch history of every run of a cell, self vs cross.

Why from the store: :meth:`ResultsStore.record_done` keeps each run's history beside its
metrics, so the curves are drawn from the study's single record like the other figures. A
store written before histories were kept has none for its runs; the report says how many.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfcross.analysis import plots
from selfcross.experiments.store import ResultsStore
from selfcross.tasks import get_task

#: Model variants drawn side by side, in this order (those present).
CURVE_VARIANTS: tuple[str, ...] = ("self", "cross", "self+cross")


def curve_figures(store: ResultsStore, cells: dict[tuple[str, str, str], Any], fig_dir: Path
                  ) -> tuple[list[Path], int]:
    """One ``curves_<set>[_<preset>].png`` per (preset, modality set) with a history.

    Args:
        cells: the report's ``Study.cells``: (preset, variant, modality code) -> cell with ``runs``.

    Returns:
        The figures written and the number of runs without a stored history.
    """
    files, missing = [], 0
    for preset, code in sorted({(p, c) for p, v, c in cells if v in CURVE_VARIANTS}):
        panels: dict[str, list[tuple[str, list[dict], int | None]]] = {}
        for variant in CURVE_VARIANTS:
            cell = cells.get((preset, variant, code))
            if cell is None:
                continue
            for run in cell.runs:
                history = store.history(run.id)
                if not history:
                    missing += 1
                    continue
                panels.setdefault(variant, []).append((f"f{run.fold:02d}-s{run.seed:02d}", history,
                                                       run.best_epoch))
        if not panels:
            continue
        # the dev score drawn under the losses: the main metric of the runs' task
        task = get_task(next(r.task for v in CURVE_VARIANTS if (preset, v, code) in cells
                             for r in cells[(preset, v, code)].runs))
        suffix = "" if preset == "paper" else f"_{preset}"
        files.append(plots.curves_chart(
            panels, fig_dir / f"curves_{code}{suffix}.png", score=f"dev_{task.main_metric}",
            percent=task.main_is_fraction,
            title=f"Learning curves, {plots.modality_label(code)} (preset {preset}), "
                  "one line per (fold, seed) run",
        ))
    return files, missing


def curves_section(files: list[Path], missing: int, out: Path) -> list[str]:
    """The report's "Training curves" paragraph: what the figures show, and what is missing."""
    if not files and not missing:
        return []
    lines = ["", "## Training curves", "",
             "Per epoch, from each run's history: training and dev loss, dev accuracy (dev MAE for "
             "regression; the dot marks the best epoch, whose weights were restored and tested). "
             "Each run's full history is also in its run folder (`metrics.json`, `history.csv`)."]
    if missing:
        lines += ["", f"{missing} run(s) have no stored per-epoch history (recorded before selfcross "
                  "kept histories); they are left out of the curves."]
    for f in files:
        lines += ["", f"![{f.stem}]({f.relative_to(out).as_posix()})"]
    return lines
