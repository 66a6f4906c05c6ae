"""The grid: every model x modality set x fold x seed, once, resumably.

Why this shape: the paper's result is 50 runs per cell (5 folds x 10 seeds). A grid of
hundreds of runs will be interrupted; the driver therefore

* validates the data root before any run starts (missing fold, malformed fold -> DataError),
* identifies each run by its run key (model, modality set, pooling, preset, fold, seed),
  its config hash and the fold's data fingerprint, and skips runs already ``done``;
* records a run as ``running`` when it is submitted and writes its result in one
  transaction when it comes back, so ``kill -9`` loses at most the runs in flight;
* gives each run its own folder ``runs_dir/<run key>-<hash8>/`` (written atomically by
  the trainer; a complete folder from a killed driver is read back, not retrained);
* records runs that raised as ``failed`` with their error, retried only with
  ``retry_failed=True``.

Runs execute in an :mod:`~selfcross.experiments.executors` executor (local processes by
default); the driver process is the only writer of the SQLite store.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selfcross.analysis.robustness import Perturbation, evaluate_robustness, parse_specs
from selfcross.config import (
    ModelConfig,
    RunConfig,
    TrainConfig,
    apply_config_file,
    config_hash,
    set_epoch_cap,
)
from selfcross.errors import DataError
from selfcross.experiments.executors import RunOutcome, RunSpec, make_executor
from selfcross.experiments.options import ExecutionOptions, GridPlan, parse_range  # noqa: F401 - parse_range: public here too
from selfcross.experiments.store import ResultsStore, RunKey, mixed_versions_notice
from selfcross.folds import fingerprint, list_folds, read_fold, root_fingerprint
from selfcross.labels import MODALITIES, modality_code, parse_modalities
from selfcross.tasks import get_task
from selfcross.training.callbacks import LoggerOptions, replay, run_params


def set_code(modalities: Sequence[str] | str) -> str:
    """The modality set's short code as the paper's table spells it (``"atv"``, ``"vt"``, ...)."""
    return modality_code(modalities if isinstance(modalities, str) else tuple(modalities))


@dataclass
class PlannedRun:
    """One run of the plan: its key and its full configuration."""

    key: RunKey
    config: RunConfig


def plan_runs(plan: GridPlan, folds: Sequence[int]) -> tuple[list[PlannedRun], list[str]]:
    """Every valid (model, modality set, pooling, fold, seed) of ``plan`` over ``folds``, and
    notices for skipped combinations.

    ``plan.tune_word_vectors`` switches ``model.tune_word_vectors`` on for every run (those
    without text are unaffected); off leaves the preset's value. ``plan.config_file`` (see
    :func:`selfcross.config.load_config_file`, e.g. ``selfcross tune``'s ``best.json``) replaces
    ``plan.preset``: its preset and switches are applied, and its runs are keyed by its ``name``
    (default ``tuned``), so that they stand beside the plain preset's in one store.

    Cross (and self+cross) with one modality is skipped with a notice, as is noSP for a
    single attention vector (uni-modal self: SP is undefined there, pooling is the identity).
    """
    notices: list[str] = []
    cells: list[tuple[str, tuple[str, ...], str]] = []
    for spec in plan.modalities:  # modality-major: self and cross of one set are neighbours
        mods = parse_modalities(spec)
        for kind in plan.models:
            if kind != "self" and len(mods) < 2:
                notices.append(f"skipped {kind} on {set_code(mods)}: cross-attention needs two modalities")
                continue
            cells.append((kind, mods, "stat"))
            if plan.include_no_sp:
                if kind == "self" and len(mods) == 1:
                    notices.append(f"no noSP run for self on {set_code(mods)}: one attention vector is "
                                   "fed on unpooled either way")
                else:
                    cells.append((kind, mods, "concat"))
    runs = []
    recipe = plan.config_file if plan.config_file is not None else {"preset": plan.preset}
    label = str(recipe.get("name") or "tuned") if plan.config_file is not None else plan.preset
    for kind, mods, pooling in cells:
        for fold in folds:
            for seed in plan.seeds:
                cfg = RunConfig(model=ModelConfig(kind=kind, modalities=mods, pooling=pooling),
                                train=TrainConfig(seed=seed, device=plan.device, task=plan.task))
                apply_config_file(cfg, recipe)
                if plan.tune_word_vectors:
                    cfg.model.tune_word_vectors = True
                if plan.max_epochs is not None:
                    set_epoch_cap(cfg, plan.max_epochs)
                key = RunKey(kind, set_code(mods), pooling, label, fold, seed, plan.task)
                runs.append(PlannedRun(key, cfg))
    # fold-major order: the runs a paired comparison needs finish close together, so a
    # partly finished grid already supports self-vs-cross tests
    runs.sort(key=lambda r: (r.key.fold, r.key.seed))  # stable: cell order kept within
    return runs, notices


@dataclass
class GridSummary:
    """What a grid invocation did."""

    planned: int = 0
    already_done: int = 0
    skipped_failed: int = 0
    ran: int = 0
    done: int = 0
    failed: int = 0
    reused_folders: int = 0
    robustness_scored: int = 0
    notices: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    wall_time_s: float = 0.0
    db: str = ""
    runs_dir: str = ""

    @property
    def complete(self) -> bool:
        """Every planned run is done."""
        return self.already_done + self.done == self.planned

    def __str__(self) -> str:
        lines = [
            f"grid: {self.planned} runs planned, {self.already_done} already done, {self.ran} run now "
            f"({self.done} done, {self.failed} failed), {self.skipped_failed} earlier failures skipped "
            f"(use --retry-failed), {self.wall_time_s:.0f} s",
            f"results: {self.db}  run folders: {self.runs_dir}",
        ]
        if self.robustness_scored:
            lines.append(f"robustness: {self.robustness_scored} perturbed test evaluations stored")
        for key, err in self.failures:
            last = (err.strip().splitlines() or [""])[0]
            lines.append(f"  failed: {key}: {last[:200]}")
        return "\n".join(lines)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def validate_data_root(
    data_root: str | Path, folds: Sequence[int] | None, modalities: Sequence[str]
) -> dict[int, tuple[Path, str]]:
    """Check the data root and every requested fold before any run starts.

    Returns:
        fold number -> (fold folder, data fingerprint).

    Raises:
        DataError: no such root, a gap in the folds, a requested fold that does not exist,
            or a fold that fails :func:`selfcross.data.read_fold` validation.
    """
    root = Path(data_root)
    all_folds = list_folds(root)
    wanted = list(range(1, len(all_folds) + 1)) if folds is None else list(folds)
    missing = [f for f in wanted if f > len(all_folds)]
    if missing:
        raise DataError(root, f"fold(s) {', '.join(f'fold{f:02d}' for f in missing)} requested but the data "
                              f"root has only fold01..fold{len(all_folds):02d}")
    out = {}
    for f in wanted:
        path = all_folds[f - 1]
        read_fold(path, modalities)  # raises DataError naming the file and the problem
        out[f] = (path, fingerprint(path))
    return out


def run_grid(
    data_root: str | Path,
    plan: GridPlan | None = None,
    execution: ExecutionOptions | None = None,
    db: str | Path = "results.sqlite",
    runs_dir: str | Path | None = None,
) -> GridSummary:
    """Run every missing run of the grid and record it in the results store.

    Args:
        data_root: folder with ``fold01 .. foldK``.
        plan: which runs (:class:`GridPlan`; default: self and cross on the paper's seven
            modality sets, every fold, seeds 1..10, the ``paper`` preset).
        execution: how they run (:class:`ExecutionOptions`: workers, executor, threads,
            retries, progress, loggers, where notices go).
        db: results database (created if absent).
        runs_dir: run folders (default: ``<db folder>/runs``).

    Returns:
        A :class:`GridSummary`.

    Raises:
        DataError: the data root or a fold is unusable (before any run starts).
        StoreError: the database is unusable or another driver is writing to it.
        ConfigError: bad options.
    """
    t0 = time.perf_counter()
    plan = plan or GridPlan()
    execution = execution or ExecutionOptions()
    get_task(plan.task)  # an unknown task is an option error before anything is read
    say = execution.log or (lambda msg: print(msg, file=sys.stderr))
    loggers = execution.loggers or LoggerOptions()
    loggers.check()  # a missing extra is an option error: before planning prints notices
    db = Path(db)
    runs_path = Path(runs_dir) if runs_dir is not None else db.parent / "runs"

    planned, notices, perturbations, folds_info = _plan_and_validate(data_root, plan, say)
    summary = GridSummary(planned=len(planned), notices=notices, db=str(db), runs_dir=str(runs_path))
    threads = execution.threads_per_worker or max(1, _cores() // execution.workers)
    root = root_fingerprint(data_root)

    with ResultsStore.open(db, create=True, lock=True) as store:
        todo = _runs_to_do(store, planned, folds_info, runs_path, threads, execution.retry_failed, summary,
                           root)
        if summary.already_done:
            say(f"resuming: {summary.already_done} of {summary.planned} runs already done")
        if todo:
            runs_path.mkdir(parents=True, exist_ok=True)
            _drive(store, todo, execution, summary, loggers)
        if perturbations:
            planned_keys = {str(r.key) for r in planned}
            summary.robustness_scored = evaluate_robustness(store, perturbations, folds_info, planned_keys,
                                                            log=say)
        mixed = mixed_versions_notice(store.runs("done"))
        if mixed:
            summary.notices.append(mixed)
            say(f"notice: {mixed}")
    summary.wall_time_s = time.perf_counter() - t0
    return summary


def _plan_and_validate(
    data_root: str | Path, plan: GridPlan, say: Callable[[str], None]
) -> tuple[list[PlannedRun], list[str], list[Perturbation], dict[int, tuple[Path, str]]]:
    """(planned runs, notices, perturbations, fold -> (folder, fingerprint)), before the store
    is opened.

    Planning comes first (cheap option errors), then the data root is validated; without
    explicit folds the plan is redone over every fold the data root has.
    """
    fold_list = plan.folds
    assert fold_list is None or isinstance(fold_list, list)
    union = tuple(m for m in MODALITIES if any(m in parse_modalities(s) for s in plan.modalities))
    planned, notices = plan_runs(plan, fold_list or [1])
    for n in notices:
        say(f"notice: {n}")
    perturbations = parse_specs(plan.robustness, plan.modalities) if plan.robustness else []
    folds_info = validate_data_root(data_root, fold_list, union)
    if fold_list is None:
        planned, _ = plan_runs(plan, sorted(folds_info))
    return planned, notices, perturbations, folds_info


def _runs_to_do(
    store: ResultsStore,
    plan: Sequence[PlannedRun],
    folds_info: dict[int, tuple[Path, str]],
    runs_path: Path,
    threads: int,
    retry_failed: bool,
    summary: GridSummary,
    data_root: str | None = None,
) -> list[RunSpec]:
    """The planned runs the store has no result for (counting the done and skipped ones)."""
    todo: list[RunSpec] = []
    for run in plan:
        cfg = run.config.to_dict()
        h = config_hash(cfg)
        fold_dir, fp = folds_info[run.key.fold]
        status = store.status_of(run.key, h, fp)
        if status == "done":
            summary.already_done += 1
            continue
        if status == "failed" and not retry_failed:
            summary.skipped_failed += 1
            continue
        todo.append(RunSpec(run.key, cfg, h, str(fold_dir.resolve()),
                            str((runs_path / f"{run.key}-{h[:8]}").resolve()), fp, threads, data_root))
    return todo


def _drive(
    store: ResultsStore,
    todo: list[RunSpec],
    execution: ExecutionOptions,
    summary: GridSummary,
    loggers: LoggerOptions,
) -> None:
    """Submit runs, collect outcomes, write each to the store (the only writer)."""
    from tqdm import tqdm

    ex = make_executor(execution.executor, workers=execution.workers, **execution.executor_options)
    ids: dict[str, int] = {}
    queue = iter(todo)
    bar = tqdm(total=len(todo), disable=not execution.progress, unit="run", desc="grid", dynamic_ncols=True)

    def submit_next() -> bool:
        spec = next(queue, None)
        if spec is None:
            return False
        ids[str(spec.key)] = store.record_started(
            spec.key, spec.config, spec.config_hash, spec.data_fingerprint, spec.run_dir, spec.data_root
        )
        ex.submit(spec)
        return True

    cancel = True
    try:
        for _ in range(max(1, ex.capacity)):
            if not submit_next():
                break
        while ex.pending():
            out = ex.next_outcome()
            _record(store, ids[str(out.spec.key)], out, summary, loggers)
            bar.update(1)
            if out.status == "done" and out.metrics:
                name = get_task(out.spec.key.task).main_metric
                value = out.metrics.get("test", {}).get(name)
                bar.set_postfix_str(f"last {out.spec.key}: {name} "
                                    f"{'undefined' if value is None else format(value, '.3f')}")
            else:
                bar.set_postfix_str(f"last {out.spec.key}: FAILED")
            submit_next()
        cancel = False
    finally:
        bar.close()
        ex.close(cancel=cancel)


def _record(
    store: ResultsStore, run_id: int, out: RunOutcome, summary: GridSummary, loggers: LoggerOptions
) -> None:
    summary.ran += 1
    if out.status == "done" and out.metrics is not None and out.predictions is not None:
        store.record_done(run_id, out.metrics, out.predictions, out.class_names, out.wall_time_s,
                          config=out.config)
        replay(out.metrics.get("history", []), loggers.open(str(out.spec.key), run_params(out.config or {})))
        summary.done += 1
        summary.reused_folders += int(out.reused)
    else:
        store.record_failed(run_id, out.error or "unknown error", out.wall_time_s)
        summary.failed += 1
        summary.failures.append((str(out.spec.key), out.error or ""))
