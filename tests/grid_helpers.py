"""``grid(...)``: ``run_grid`` with the plan's and the execution's fields given by keyword (tests only)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from selfcross.experiments import ExecutionOptions, GridPlan, GridSummary, plan_runs, run_grid

PLAN_FIELDS = frozenset(f.name for f in fields(GridPlan))


def grid(
    data_root: str | Path, db: str | Path, runs_dir: str | Path | None = None, **options: Any
) -> GridSummary:
    """Split ``options`` into a :class:`GridPlan` and :class:`ExecutionOptions` and run the grid."""
    plan = GridPlan(**{k: v for k, v in options.items() if k in PLAN_FIELDS})
    execution = ExecutionOptions(**{k: v for k, v in options.items() if k not in PLAN_FIELDS})
    return run_grid(data_root, plan, execution, db=db, runs_dir=runs_dir)


def plan(models: Any, modalities: Any, folds: list[int], seeds: Any, **options: Any) -> Any:
    """``plan_runs`` of a :class:`GridPlan` made of these fields, over ``folds``."""
    return plan_runs(GridPlan(models=models, modalities=modalities, seeds=seeds, **options), folds)
