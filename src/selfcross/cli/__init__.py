"""The ``selfcross`` command line: a thin layer over the Python API.

Each sub-module registers its sub-commands with :func:`register` (one module per stage:
data, training, compat, experiments, store, prepare, predict, explain, tune). Every command
mirrors a Python function; the CLI only parses arguments, calls it, and turns a
:class:`~selfcross.errors.SelfcrossError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from selfcross.errors import SelfcrossError
from selfcross.version import __version__

#: Modules under ``selfcross.cli`` that define ``register(subparsers)``, in --help order.
COMMAND_MODULES: tuple[str, ...] = (
    "data",
    "training",
    "compat",
    "experiments",
    "store",
    "prepare",
    "predict",
    "explain",
    "tune",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every sub-command module that is present)."""
    parser = argparse.ArgumentParser(
        prog="selfcross",
        description=(
            "Self- vs cross-attention for multimodal emotion recognition "
            "(Rajan, Brutti & Cavallaro, ICASSP 2022): build data, train, evaluate, "
            "run the paper's grid and report."
        ),
    )
    parser.add_argument("--version", action="version", version=f"selfcross {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"selfcross.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"selfcross.cli.{name}":
                continue  # stage not installed in this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``selfcross`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except SelfcrossError as e:
        print(f"selfcross {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (NotADirectoryError, FileExistsError) as e:  # a folder to write is an existing file
        print(f"selfcross {args.command}: error: {_blocking_file(e.filename)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"selfcross {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def _blocking_file(filename: object) -> str:
    """``PATH: problem`` for the nearest existing ancestor of ``filename``: the file standing
    where a folder must go (or a path that exists already)."""
    from pathlib import Path

    path = Path(str(filename))
    for p in (path, *path.parents):
        if p.is_file():
            return f"{p}: is a file; this command writes a folder there"
        if p.exists():
            return f"{p}: already exists"
    return f"{path}: cannot be created"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
