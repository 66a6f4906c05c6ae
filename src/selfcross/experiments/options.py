"""What a grid runs (:class:`GridPlan`) and how it runs it (:class:`ExecutionOptions`).

Why two objects: the plan decides the runs' identities (model, modality set, pooling,
preset, fold, seed and every config field that enters the config hash), so two grids with
the same plan fill the same cells of a results store; the execution options (workers,
executor, threads, progress, loggers) change how fast the runs come back, never what they
compute. ``run_grid(data_root, plan, execution)`` keeps them apart.

Ranges (``"1-5"``, ``"1,3"``) and model names are checked when the plan is made, so a bad
option is an error before any data is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfcross.config import MODEL_KINDS, OneOf, TrainConfig, choices
from selfcross.errors import ConfigError
from selfcross.labels import PAPER_MODALITY_SETS
from selfcross.tasks import DEFAULT_TASK

if TYPE_CHECKING:
    from selfcross.training.callbacks import LoggerOptions


def parse_range(spec: str | Iterable[int] | int | None, what: str) -> list[int] | None:
    """``"1-5"``, ``"1,3,5"``, ``"1-3,7"`` or integers -> sorted unique list (None stays None)."""
    if spec is None:
        return None
    if isinstance(spec, int):
        return [spec]
    if not isinstance(spec, str):
        out = sorted({int(x) for x in spec})
    else:
        out_set: set[int] = set()
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                if "-" in part:
                    a, b = (int(x) for x in part.split("-", 1))
                    if b < a:
                        raise ValueError
                    out_set.update(range(a, b + 1))
                else:
                    out_set.add(int(part))
            except ValueError:
                raise ConfigError(f"--{what} {spec!r}: use numbers and ranges such as 1-5 or 1,3,5") from None
        out = sorted(out_set)
    if not out or out[0] < 1:
        raise ConfigError(f"--{what} must be positive numbers, got {spec!r}")
    return out


@dataclass
class GridPlan:
    """The runs of a grid: every model x modality set (x noSP) x fold x seed, with one preset.

    Attributes:
        models: model kinds (``self``, ``cross``, ``self+cross``).
        modalities: modality sets (``"a"``, ``"vt"``, ``"atv"``, ...).
        folds: fold numbers (``None`` = every fold of the data root); ``"1-5"`` accepted and
            turned into a list.
        seeds: seeds (default 1..10, the paper's); ``"1-10"`` accepted.
        include_no_sp: also run every multi-vector cell with ``pooling="concat"`` (noSP).
        preset: ``paper``, ``improved`` or ``strong`` (:func:`selfcross.config.apply_preset`).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (its kind is part of a run's identity).
        max_epochs: cap on epochs per run (``None`` = the preset's; ``0`` = no cap, early
            stopping alone ends each run, as in the authors' loop).
        task: a :mod:`selfcross.tasks` name (``classification``, ``regression``); part of each
            run's key, so one database can hold several tasks.
        tune_word_vectors: train the word vectors of every text model; off leaves the preset's
            value.
        robustness: perturbation specs (``"drop:a,drop:t"``, see ``evaluate --perturb``): once
            the runs are done, every planned run that uses the perturbed modality is re-scored
            on its test split under each (see :mod:`selfcross.analysis.robustness`).
        config_file: a loaded config file (``selfcross tune``'s ``best.json``, see
            :func:`selfcross.config.load_config_file`) instead of ``preset``: its preset and
            switches are applied and its runs are keyed by its ``name`` (default ``tuned``).
    """

    models: Sequence[str] = ("self", "cross")
    modalities: Sequence[str] = PAPER_MODALITY_SETS
    folds: Sequence[int] | str | None = None
    seeds: Sequence[int] | str = tuple(range(1, 11))
    include_no_sp: bool = False
    preset: str = "paper"
    device: str = "auto"
    max_epochs: int | None = None
    task: str = DEFAULT_TASK
    tune_word_vectors: bool = False
    robustness: Sequence[str] | str = ()
    config_file: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.folds = parse_range(self.folds, "folds")
        self.seeds = parse_range(self.seeds, "seeds") or []
        for kind in self.models:
            OneOf(MODEL_KINDS).check("model", kind)
        OneOf(choices(TrainConfig, "task")).check("task", self.task)
        if self.max_epochs is not None and self.max_epochs < 0:
            raise ConfigError(f"max_epochs must be >= 0 (0 = no cap), got {self.max_epochs}")


@dataclass
class ExecutionOptions:
    """How a grid's runs are executed (none of it changes a run's numbers).

    Attributes:
        workers: runs in parallel (processes for ``local``).
        executor: ``local`` or ``ray`` (see :mod:`selfcross.experiments.executors`).
        executor_options: extra keyword arguments for the executor (e.g. Ray resources).
        threads_per_worker: torch threads per run (default ``max(1, cores // workers)``).
        retry_failed: rerun runs recorded as failed.
        progress: tqdm bar over runs.
        loggers: TensorBoard / MLflow destinations: each run's per-epoch history is logged
            under its run key by the driver when the run finishes.
        log: where notices go (default: stderr).
    """

    workers: int = 1
    executor: str = "local"
    executor_options: dict[str, Any] = field(default_factory=dict)
    threads_per_worker: int | None = None
    retry_failed: bool = False
    progress: bool = True
    loggers: LoggerOptions | None = None
    log: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")


__all__ = ["ExecutionOptions", "GridPlan", "parse_range"]
