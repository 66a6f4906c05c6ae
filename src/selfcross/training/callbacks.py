"""Per-epoch hooks of a training run, and the optional experiment trackers built on them.

Why a callback interface: the training loop only hands each finished epoch's history row to
whoever listens; TensorBoard and MLflow (optional extras) live here, so the loop neither
imports nor knows them, and a run without loggers computes exactly what it did before.

A history row is ``metrics.json["history"][i]``: ``epoch``, ``train_loss``, ``dev_loss``, the
task's dev scores (``dev_accuracy``, ``dev_balanced_accuracy``, ``dev_f1_macro``, ... for
classification; ``dev_mae``, ``dev_pearson_r`` for regression), ``lr`` and ``epoch_time_s``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from selfcross.errors import ConfigError


def history_columns(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys of a history's rows, first-seen order (``epoch`` first): ``history.csv``'s header."""
    return list(dict.fromkeys(key for row in history for key in row))


class EpochCallback(Protocol):
    """Called by :func:`~selfcross.training.train_run` once per epoch, then closed."""

    def on_epoch(self, row: Mapping[str, Any]) -> None:
        """Receive one epoch's history row (after the dev evaluation)."""

    def close(self) -> None:
        """Flush and release what the callback holds."""


def _scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """Every number of a history row but the epoch (the logged step)."""
    return {k: float(v) for k, v in row.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def import_tensorboard_writer() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or a :class:`ConfigError` naming the extra."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs this package)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs TensorBoard: pip install 'selfcross[tensorboard]'") from None
    return SummaryWriter


def import_mlflow() -> Any:
    """The ``mlflow`` module, or a :class:`ConfigError` naming the extra."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError("--mlflow needs MLflow: pip install 'selfcross[mlflow]'") from None
    return mlflow


class TensorBoardLogger:
    """Writes each epoch's scalars (``train_loss``, ``dev_accuracy``, ...) to ``log_dir/run_name``."""

    def __init__(self, log_dir: str | Path, run_name: str) -> None:
        self.writer = import_tensorboard_writer()(log_dir=str(Path(log_dir) / run_name))

    def on_epoch(self, row: Mapping[str, Any]) -> None:
        for name, value in _scalars(row).items():
            self.writer.add_scalar(name, value, global_step=int(row["epoch"]))

    def close(self) -> None:
        self.writer.close()


def mlflow_client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri`` (file stores allowed, see :class:`MlflowLogger`).

    Raises:
        ConfigError: the extra is missing, or MLflow cannot use ``uri``.
    """
    mlflow = import_mlflow()
    if urlparse(uri).scheme in ("", "file"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    with _mlflow_errors(mlflow, uri):
        return mlflow.tracking.MlflowClient(tracking_uri=uri)


@contextmanager
def _mlflow_errors(mlflow: Any, uri: str) -> Iterator[None]:
    """Turn MLflow's refusal of a tracking URI into one line naming it."""
    try:
        yield
    except mlflow.exceptions.MlflowException as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--mlflow {uri}: MLflow cannot log there ({reason})") from None


class MlflowLogger:
    """One MLflow run per training run: parameters once, each epoch's metrics at its step.

    Uses :class:`mlflow.tracking.MlflowClient` with an explicit tracking URI, so no global
    MLflow state (active run, default URI) is touched. A ``file:`` URI (or a plain folder) is
    a local store that needs no server; MLflow 3 refuses file stores unless
    ``MLFLOW_ALLOW_FILE_STORE`` is set, so it is set to ``true`` here when the user has not
    set it (asking for a file URI is that opt-in; the database backends need SQLAlchemy,
    which ``mlflow-skinny`` does not install).

    Raises:
        ConfigError: MLflow cannot use ``uri`` (its reason, in one line).
    """

    def __init__(self, uri: str, run_name: str, params: Mapping[str, Any] | None = None,
                 experiment: str = "selfcross") -> None:
        mlflow = import_mlflow()
        with _mlflow_errors(mlflow, uri):
            self.client = mlflow_client(uri)
            found = self.client.get_experiment_by_name(experiment)
            exp_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
            self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        for key, value in (params or {}).items():
            self.client.log_param(self.run_id, key, str(value))

    def on_epoch(self, row: Mapping[str, Any]) -> None:
        step = int(row["epoch"])
        for name, value in _scalars(row).items():
            self.client.log_metric(self.run_id, name, value, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


@dataclass(frozen=True)
class LoggerOptions:
    """Which experiment trackers to feed (both off by default).

    Attributes:
        tensorboard: TensorBoard log folder (one sub-folder per run), or ``None``.
        mlflow: MLflow tracking URI (``file:DIR`` for a local store), or ``None``.
    """

    tensorboard: str | None = None
    mlflow: str | None = None

    def check(self) -> None:
        """Fail early (before any training) when a requested logger's extra is not installed.

        Raises:
            ConfigError: naming the extra to install, or an MLflow URI that MLflow refuses.
        """
        if self.tensorboard is not None:
            import_tensorboard_writer()
        if self.mlflow is not None:
            mlflow_client(self.mlflow)

    def open(self, run_name: str, params: Mapping[str, Any] | None = None) -> list[EpochCallback]:
        """The requested loggers for one run, named ``run_name`` (an empty list when none)."""
        self.check()
        loggers: list[EpochCallback] = []
        if self.tensorboard is not None:
            loggers.append(TensorBoardLogger(self.tensorboard, run_name))
        if self.mlflow is not None:
            loggers.append(MlflowLogger(self.mlflow, run_name, params))
        return loggers


def run_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar model and training settings of a ``RunConfig.to_dict()``, as ``model.kind`` etc."""
    out: dict[str, Any] = {"preset": config.get("preset")}
    for section in ("model", "train"):
        for key, value in (config.get(section) or {}).items():
            if value is None or isinstance(value, (str, int, float, bool)):
                out[f"{section}.{key}"] = value
            elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                out[f"{section}.{key}"] = ",".join(value)
    return out


def replay(history: Sequence[Mapping[str, Any]], callbacks: Sequence[EpochCallback]) -> None:
    """Feed a finished run's history to ``callbacks`` and close them (the grid logs this way)."""
    try:
        for row in history:
            for cb in callbacks:
                cb.on_epoch(row)
    finally:
        for cb in callbacks:
            cb.close()
