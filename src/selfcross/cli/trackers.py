"""``--tensorboard`` and ``--mlflow``: the optional experiment trackers of ``train`` and ``grid``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selfcross.training.callbacks import LoggerOptions


def add_logger_arguments(p: argparse.ArgumentParser) -> None:
    """Add the two tracker options (both off by default; each an optional extra)."""
    g = p.add_argument_group(
        "experiment trackers (optional; the per-epoch history is always in RUN_DIR/metrics.json "
        "and history.csv)"
    )
    g.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="also log each epoch's losses, dev accuracies, learning rate and epoch time for "
        "TensorBoard under DIR/<run name> (pip install 'selfcross[tensorboard]')",
    )
    g.add_argument(
        "--mlflow",
        default=None,
        metavar="URI",
        help="also log the run's settings and per-epoch metrics to MLflow at tracking URI "
        "(file:DIR works offline; experiment 'selfcross'; pip install 'selfcross[mlflow]')",
    )


def logger_options(args: argparse.Namespace) -> LoggerOptions:
    """The :class:`LoggerOptions` named on the command line."""
    # Imported here: the training package pulls in torch, which --help must not wait for.
    from selfcross.training.callbacks import LoggerOptions

    return LoggerOptions(tensorboard=args.tensorboard, mlflow=args.mlflow)
