"""User-facing error types.

Everything a user can cause (a bad file, a bad option, an untrusted checkpoint) is raised
as a :class:`SelfcrossError` subclass with a message that names the file and the problem.
The CLI turns these into one line on stderr and exit status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class SelfcrossError(Exception):
    """Base class for errors caused by user input, reported without a traceback."""


class ConfigError(SelfcrossError):
    """An invalid option or configuration (e.g. cross-attention with one modality)."""


class DataError(SelfcrossError):
    """A data file is missing, malformed or inconsistent.

    Args:
        path: the offending file or folder (may be ``None`` when not file-specific).
        problem: what is wrong, in words a user can act on.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class CheckpointError(SelfcrossError):
    """A checkpoint or run folder cannot be loaded (missing tensors, untrusted pickle...)."""


class TrainingError(SelfcrossError):
    """A run cannot produce a model (e.g. its dev selection metric is NaN at every epoch)."""


class StoreError(SelfcrossError):
    """The results database cannot be used (not SQLite, newer schema, ...)."""
