"""Options shared by several sub-commands, defined once so that they read the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from selfcross.config import load_config_file
from selfcross.errors import ConfigError, DataError


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


def add_config_argument(p: argparse.ArgumentParser) -> None:
    """``--config FILE``: a preset plus switches (the ``best.json`` of ``selfcross tune``)."""
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="a config file (JSON, or YAML): {\"preset\": ..., \"model\": {...}, \"train\": {...}}, such as "
        "the best.json written by selfcross tune; its preset, then its switches, are applied",
    )


def config_file_or_preset(args: argparse.Namespace) -> dict[str, Any]:
    """The config file of ``--config`` (its preset checked against ``--preset``), or the bare preset."""
    if args.config is None:
        return {"preset": args.preset or "paper"}
    d = load_config_file(args.config)
    if args.preset is not None and args.preset != d.get("preset", "paper"):
        raise ConfigError(f"--preset {args.preset} differs from the preset of {args.config} "
                          f"({d.get('preset', 'paper')}); give one of them")
    return d
