"""Options shared by several sub-commands, defined once so that they read the same everywhere."""

from __future__ import annotations

import argparse


def add_no_progress(parser: argparse.ArgumentParser, what: str = "no progress bar") -> None:
    """``--no-progress`` (one name in every command; ``--quiet`` is kept as a hidden alias).

    Why this name: it says exactly what is switched off (results are still printed), and
    most commands already used it; ``--quiet`` keeps working for existing scripts.
    """
    parser.add_argument("--no-progress", dest="no_progress", action="store_true", help=what)
    parser.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)
