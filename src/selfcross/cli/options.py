"""Options shared by several sub-commands, defined once so that they read the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from selfcross.errors import DataError


def add_no_progress(parser: argparse.ArgumentParser, what: str = "no progress bar") -> None:
    """``--no-progress`` (one name in every command; ``--quiet`` is kept as a hidden alias).

    Why this name: it says exactly what is switched off (results are still printed), and
    most commands already used it; ``--quiet`` keeps working for existing scripts.
    """
    parser.add_argument("--no-progress", dest="no_progress", action="store_true", help=what)
    parser.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)


def add_transcript(parser: argparse.ArgumentParser, what: str = "the words spoken") -> None:
    """``--transcript TEXT`` or ``--transcript-file FILE`` (one of them) for a new clip's words."""
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--transcript", metavar="TEXT", help=what)
    text.add_argument("--transcript-file", type=Path, metavar="FILE", help="file holding the words spoken")


def read_transcript(args: argparse.Namespace) -> str | None:
    """The words given by ``--transcript`` or read (UTF-8, stripped) from ``--transcript-file``.

    Raises:
        DataError: the transcript file cannot be read or is not UTF-8 text.
    """
    if args.transcript_file is None:
        return args.transcript
    try:
        return args.transcript_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(args.transcript_file, f"cannot read the transcript ({e})") from None
