"""Hyper-parameter search on the dev splits (Optuna): ``selfcross tune``.

Why: a preset's values were chosen on the corpora its authors had; a user's corpus differs in
size, classes and features. MMSA and MERBench users run a random search per corpus; this
module runs a small Bayesian one (Optuna's TPE sampler) and writes the winner as a config
file (``best.json``) that ``train --config`` and ``grid --config`` take.

Guarantees:

* **The test split is never read.** Each trial trains on a *dev-only view* of a fold: a
  folder of links to the fold's train and dev files in which the test files are links to the
  dev files (the trainer's final "test" evaluation is then one more look at dev). The fold's
  own test files are never opened; a fold whose test arrays are deleted tunes the same.
* **The objective** is the dev metric the preset selects epochs on (``select_on``: accuracy
  for ``paper``/``improved``, weighted F1 for ``strong``; the MAE for regression, minimised),
  of the restored best epoch, averaged over the chosen folds x seeds.
* **Pruning by epoch**: every epoch reports the best dev selection value so far (step = the
  epoch, offset per fold x seed unit) and Optuna's median pruner ends trials that trail the
  median of the earlier ones at the same step.
* **Resumable, several workers**: the study lives in SQLite (default ``tune.sqlite`` beside
  the results store) or any database URL Optuna takes (several machines: one PostgreSQL/MySQL
  URL); a rerun continues the same study up to ``trials`` finished (complete or pruned)
  trials, and a trial left running by a killed worker is marked failed by the heartbeat and
  retried.

The search space of each preset is :data:`SEARCH_SPACES` (documented in docs/tune.md); a JSON
or YAML file overrides or adds entries (``{"train.lr": {"type": "float", "low": 1e-4,
"high": 1e-2, "log": true}}``; ``null`` removes one).
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.analysis.tune_report import write_outputs
from selfcross.config import ModelConfig, RunConfig, TrainConfig, apply_config_file, set_epoch_cap
from selfcross.errors import ConfigError, DataError
from selfcross.folds import list_folds
from selfcross.folds.reader import fold_modalities
from selfcross.labels import parse_modalities
from selfcross.training import train_run

#: Search spaces per preset: ``"section.field" -> distribution``. Entries for a modality the
#: model does not use are dropped (:func:`search_space`). Hidden sizes keep ``2 * hidden``
#: divisible by the 6 heads.
_COMMON: dict[str, dict[str, Any]] = {
    "train.lr": {"type": "float", "low": 3e-4, "high": 1e-2, "log": True},
    "model.hidden": {"type": "categorical", "choices": [30, 60, 96]},
    "model.attn_dropout": {"type": "float", "low": 0.0, "high": 0.4},
    "model.text_dropout": {"type": "float", "low": 0.0, "high": 0.5, "needs": "text"},
}
SEARCH_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {**_COMMON},
    "improved": {**_COMMON, "train.weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}},
    "strong": {
        **_COMMON,
        "train.weight_decay": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
        "model.time_mixing": {"type": "categorical", "choices": ["pool", "conv"], "needs": "audio|video"},
        "model.pool_steps": {"type": "int", "low": 5, "high": 100, "log": True, "needs": "audio|video"},
        "model.spec_time_masks": {"type": "int", "low": 0, "high": 3, "needs": "audio"},
        "model.spec_time_share": {"type": "float", "low": 0.01, "high": 0.2, "log": True, "needs": "audio"},
        "model.spec_feat_masks": {"type": "int", "low": 0, "high": 3, "needs": "audio"},
        "model.spec_feat_width": {"type": "int", "low": 2, "high": 24, "log": True, "needs": "audio"},
        "model.word_dropout": {"type": "float", "low": 0.0, "high": 0.3, "needs": "text"},
        "train.max_updates": {"type": "int", "low": 500, "high": 4000, "log": True},
    },
}
_TYPES = ("float", "int", "categorical")
#: Steps reserved per fold x seed unit in the intermediate values reported for pruning.
_UNIT_STEPS = 100_000


def optuna_or_error() -> Any:
    """The ``optuna`` module, or one :class:`ConfigError` line naming the extra."""
    try:
        import optuna  # optional extra
    except ImportError:
        raise ConfigError("selfcross tune needs Optuna: pip install 'selfcross[tune]'") from None
    return optuna


# ------------------------------------------------------------------------------ the space
def load_space(path: str | Path) -> dict[str, Any]:
    """A search-space file (JSON, or YAML for ``.yaml``/``.yml``): ``{"section.field": spec | null}``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the search-space file ({e.strerror})") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml  # optional: only YAML files need it

            d = yaml.safe_load(text)
        else:
            d = json.loads(text)
    except ImportError:
        raise ConfigError(f"{path}: YAML files need PyYAML (pip install 'selfcross[tune]')") from None
    except Exception as e:  # json.JSONDecodeError or yaml.YAMLError (yaml is an optional import)
        raise ConfigError(f"{path}: not a valid search-space file ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected an object of \"section.field\": distribution")
    return d


def _check_entry(name: str, spec: Mapping[str, Any]) -> None:
    section, _, key = name.partition(".")
    cls = {"model": ModelConfig, "train": TrainConfig}.get(section)
    if cls is None or key not in cls.__dataclass_fields__:
        raise ConfigError(f"search space: {name!r} is not a model.* or train.* config field")
    if not isinstance(spec, Mapping) or spec.get("type") not in _TYPES:
        raise ConfigError(f"search space: {name!r} needs a type, one of {', '.join(_TYPES)}")
    if spec["type"] == "categorical" and not spec.get("choices"):
        raise ConfigError(f"search space: {name!r} is categorical and needs a non-empty 'choices' list")
    bounded = "low" in spec and "high" in spec and spec["low"] <= spec["high"]
    if spec["type"] != "categorical" and not bounded:
        raise ConfigError(f"search space: {name!r} needs 'low' <= 'high'")


def search_space(
    preset: str, modalities: Sequence[str], override: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The preset's space for a model of ``modalities``, with ``override`` entries replacing,
    adding (a spec) or removing (``None``) entries."""
    if preset not in SEARCH_SPACES:
        raise ConfigError(f"no search space for preset {preset!r}; one of {', '.join(SEARCH_SPACES)}")
    space = copy.deepcopy(SEARCH_SPACES[preset])
    for name, spec in (override or {}).items():
        if spec is None:
            space.pop(name, None)
        else:
            _check_entry(name, spec)
            space[name] = dict(spec)
    return {k: v for k, v in space.items()
            if not v.get("needs") or any(m in modalities for m in v["needs"].split("|"))}


def suggest(trial: Any, space: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """One trial's values, as a config file's ``{"model": {...}, "train": {...}}``."""
    out: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            value = trial.suggest_categorical(name, list(spec["choices"]))
        elif spec["type"] == "int":
            value = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            value = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                        log=bool(spec.get("log")))
        section, _, key = name.partition(".")
        out[section][key] = value
    return out


# ------------------------------------------------------------------------ dev-only views
def dev_only_view(fold_dir: Path, view_dir: Path) -> Path:
    """A fold folder of links to ``fold_dir``'s files in which every ``test_*`` file is a link
    to its ``dev_*`` counterpart: training on it never opens the test split.

    The data root's own files (class names, word vectors, vocabulary) are linked beside it.
    """
    fold_dir = fold_dir.resolve()
    view_dir.mkdir(parents=True, exist_ok=True)
    for base, target in ((fold_dir.parent, view_dir.parent), (fold_dir, view_dir)):
        for src in sorted(p for p in base.iterdir() if p.is_file() and not p.name.startswith("test_")):
            _link(target / src.name, src)
            if base == fold_dir and src.name.startswith("dev_"):
                _link(target / ("test_" + src.name[len("dev_"):]), src)
    return view_dir


def _link(link: Path, src: Path) -> None:
    """``link`` -> ``src``, replacing a link of an earlier view that points elsewhere."""
    if link.is_symlink() and link.resolve() == src:
        return
    link.unlink(missing_ok=True)
    link.symlink_to(src)


# ----------------------------------------------------------------------------- the study
@dataclass
class TuneSpec:
    """What to tune and where to keep the study.

    Attributes:
        data_root: data root with ``fold01 .. foldK`` (only train and dev are read).
        preset: the preset to start from (its search space, its selection metric).
        model: model kind; modalities: modality letters (``None``: every modality of fold 1).
        folds, seeds: the fold numbers and seeds each trial trains (the objective averages them).
        trials: finished (complete or pruned) trials the study should hold.
        task: ``classification`` or ``regression``.
        space: search-space overrides (see :func:`search_space`).
        fixed: config-file switches applied to every trial (e.g. ``{"train": {"batch_size": 64}}``).
        max_epochs: an exact epoch cap for every trial (tiny test budgets); ``None`` = the preset's.
        storage: an Optuna storage URL; study: the study name; out: where best.json and the
            report go.
        device, threads: where trials train; sampler_seed: the TPE sampler's seed (give each
            worker its own); pruner: ``median`` or ``none``; prune_startup: trials finished
            before pruning starts; prune_warmup: epochs of each unit never pruned.
        progress: a progress bar over trials.
    """

    data_root: Path
    storage: str
    study: str
    out: Path
    preset: str = "strong"
    model: str = "self"
    modalities: tuple[str, ...] | None = None
    folds: tuple[int, ...] = (1,)
    seeds: tuple[int, ...] = (1,)
    trials: int = 20
    task: str = "classification"
    space: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    max_epochs: int | None = None
    device: str = "auto"
    threads: int | None = 1
    sampler_seed: int = 0
    pruner: str = "median"
    prune_startup: int = 4
    prune_warmup: int = 3
    progress: bool = True


def base_recipe(spec: TuneSpec) -> dict[str, Any]:
    """The config file every trial starts from: the preset and the fixed switches."""
    return {"preset": spec.preset, "model": dict(spec.fixed.get("model", {})),
            "train": dict(spec.fixed.get("train", {}))}


def trial_config(spec: TuneSpec, values: Mapping[str, Mapping[str, Any]], seed: int) -> RunConfig:
    """The :class:`RunConfig` of one trial on one seed."""
    recipe = base_recipe(spec)
    for section in ("model", "train"):
        recipe[section].update(values.get(section, {}))
    mods = parse_modalities(spec.modalities or "atv")
    train = TrainConfig(seed=seed, device=spec.device, num_threads=spec.threads, task=spec.task)
    cfg = RunConfig(model=ModelConfig(kind=spec.model, modalities=mods), train=train)
    apply_config_file(cfg, recipe)
    if spec.max_epochs is not None:
        set_epoch_cap(cfg, spec.max_epochs)
    return cfg


def objective_metric(spec: TuneSpec) -> tuple[str, str]:
    """(metric name in ``metrics["dev"]``, ``maximize``/``minimize``): what the preset selects on."""
    if spec.task == "regression":
        return "mae", "minimize"
    return trial_config(spec, {}, 1).train.select_on, "maximize"


class _Pruning:
    """An epoch callback reporting the best dev selection value so far to the trial."""

    def __init__(self, trial: Any, unit: int, metric: str, sign: float, warmup: int) -> None:
        self.trial, self.unit, self.metric, self.sign, self.warmup = trial, unit, metric, sign, warmup
        self.best = -math.inf

    def on_epoch(self, row: Mapping[str, Any]) -> None:
        value = self.sign * float(row[f"dev_{self.metric}"])
        if math.isfinite(value):
            self.best = max(self.best, value)
        if not math.isfinite(self.best):
            return
        self.trial.report(self.sign * self.best, self.unit * _UNIT_STEPS + int(row["epoch"]))
        if int(row["epoch"]) > self.warmup and self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"epoch {row['epoch']} of unit {self.unit}")

    def close(self) -> None:
        pass


def _objective(spec: TuneSpec, views: dict[int, Path], space: dict[str, Any], metric: str,
               direction: str) -> Any:
    """The trial function: train every fold x seed unit on its dev-only view; the mean dev metric."""
    sign = 1.0 if direction == "maximize" else -1.0

    def objective(trial: Any) -> float:
        values = suggest(trial, space)
        scores = []
        with tempfile.TemporaryDirectory(prefix="selfcross-tune-") as tmp:
            for unit, (fold, seed) in enumerate((f, s) for f in spec.folds for s in spec.seeds):
                pruning = _Pruning(trial, unit, metric, sign, spec.prune_warmup)
                metrics = train_run(trial_config(spec, values, seed), views[fold], Path(tmp) / f"unit{unit}",
                                    progress=False, callbacks=[pruning])
                scores.append(float(metrics["dev"][metric]))
                trial.set_user_attr(f"dev_{metric}_fold{fold:02d}_seed{seed}", scores[-1])
        return float(np.mean(scores))

    return objective


def _views(spec: TuneSpec) -> dict[int, Path]:
    """Dev-only views of the requested folds, under ``spec.out/views``."""
    folds = list_folds(spec.data_root)
    missing = [f for f in spec.folds if not 1 <= f <= len(folds)]
    if missing:
        raise DataError(spec.data_root, f"fold(s) {missing} requested but the data root has {len(folds)}")
    return {f: dev_only_view(folds[f - 1], spec.out / "views" / folds[f - 1].name) for f in spec.folds}


def _study(spec: TuneSpec, direction: str) -> Any:
    """Create or load the study (heartbeats: a killed worker's trial is failed and retried)."""
    optuna = optuna_or_error()
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeats are marked experimental; nothing to tell a user
        storage = RDBStorage(spec.storage, heartbeat_interval=30, grace_period=90,
                             heartbeat_stale_trial_callback=RetryFailedTrialCallback(max_retry=1))
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=spec.prune_startup) if spec.pruner == "median"
              else optuna.pruners.NopPruner())
    study = optuna.create_study(storage=storage, study_name=spec.study, direction=direction,
                                sampler=optuna.samplers.TPESampler(seed=spec.sampler_seed), pruner=pruner,
                                load_if_exists=True)
    if study.direction.name.lower() != direction:
        made = study.direction.name.lower()
        raise ConfigError(f"study {spec.study!r} in {spec.storage} was made to {made}, this tuning would "
                          f"{direction}: give another --study name")
    return study


#: Update-budget fields a search may set (left out when the tuning caps epochs exactly).
BUDGET_FIELDS: tuple[str, ...] = ("train.max_updates", "train.warmup_updates", "train.patience_updates",
                                  "train.min_updates")


def preset_values(spec: TuneSpec, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The preset's own value of every search dimension it lies inside (the first trial)."""
    cfg = trial_config(spec, {}, spec.seeds[0] if spec.seeds else 1)
    out = {}
    for name, dist in space.items():
        section, _, key = name.partition(".")
        value = getattr(getattr(cfg, section), key)
        inside = (value in dist["choices"] if dist["type"] == "categorical"
                  else dist["low"] <= value <= dist["high"])
        if inside:
            out[name] = value
    return out


def finished(study: Any) -> list[Any]:
    """The study's complete and pruned trials."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


@dataclass
class TuneResult:
    """What :func:`run_tune` did: the study, trials finished, the best trial and the files written."""

    study: Any
    ran: int
    best_value: float | None
    best_json: Path | None
    report: Path


def run_tune(spec: TuneSpec) -> TuneResult:
    """Run (or continue) the study until it holds ``spec.trials`` finished trials; write
    ``best.json`` and the tuning report into ``spec.out``.

    Raises:
        ConfigError: Optuna missing, a bad search space or option. DataError: a bad data root.
    """
    optuna = optuna_or_error()
    if spec.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {spec.trials}")
    if spec.pruner not in ("median", "none"):
        raise ConfigError(f"--pruner {spec.pruner!r} is not one of median, none")
    search_space(spec.preset, ("audio", "video", "text"), spec.space)  # a bad space before any work
    views = _views(spec)
    if spec.modalities is None:
        spec.modalities = fold_modalities(next(iter(views.values())))
    space = search_space(spec.preset, spec.modalities, spec.space)
    if spec.max_epochs is not None:  # an exact epoch cap fixes the budget: nothing to search there
        space = {k: v for k, v in space.items() if k not in BUDGET_FIELDS}
    metric, direction = objective_metric(spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(spec, direction)
    if not study.trials:  # the preset itself is the first trial: tuning starts from it, not below it
        study.enqueue_trial(preset_values(spec, space), skip_if_exists=True)
    before = len(finished(study))
    if before < spec.trials:
        stop = optuna.study.MaxTrialsCallback(spec.trials, states=(optuna.trial.TrialState.COMPLETE,
                                                                   optuna.trial.TrialState.PRUNED))
        study.optimize(_objective(spec, views, space, metric, direction), n_trials=spec.trials - before,
                       callbacks=[stop], show_progress_bar=spec.progress, gc_after_trial=True)
    best = _best_trial(study)
    recipe = None if best is None else best_config_file(spec, best, metric)
    best_json, report = write_outputs(spec, study, best, recipe, metric, direction)
    return TuneResult(study, len(finished(study)) - before, None if best is None else best.value, best_json,
                      report)


def _best_trial(study: Any) -> Any:
    """The best complete trial, or ``None`` while there is none."""
    from optuna.trial import TrialState  # optional: the [tune] extra

    return study.best_trial if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) else None


def best_config_file(spec: TuneSpec, trial: Any, metric: str) -> dict[str, Any]:
    """The ``best.json`` of a trial: preset, fixed switches and the trial's values (and the
    exact epoch cap a tiny tuning budget used), plus where they came from."""
    recipe = base_recipe(spec)
    for name, value in trial.params.items():
        section, _, key = name.partition(".")
        recipe[section][key] = value
    if spec.max_epochs is not None:
        recipe["train"].update(max_epochs=spec.max_epochs, max_updates=0, warmup_updates=0,
                               patience_updates=0, min_updates=0)
    recipe["name"] = "tuned"
    recipe["tuning"] = {
        "study": spec.study, "trial": trial.number, "objective": f"dev {metric}, mean over folds x seeds",
        "dev_score": trial.value, "data_root": str(Path(spec.data_root).resolve()), "folds": list(spec.folds),
        "seeds": list(spec.seeds), "model": spec.model, "modalities": list(spec.modalities or ()),
        "task": spec.task, "per_unit": dict(trial.user_attrs),
    }
    return recipe

