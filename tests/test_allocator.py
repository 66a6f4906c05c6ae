"""``tune_malloc``: process-wide, so only the process's owner (the CLI, grid workers) calls it."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from selfcross.cli import main
from selfcross.config import RunConfig
from selfcross.errors import DataError
from selfcross.training import loop, train_run
from selfcross.training.environment import tune_malloc


@pytest.fixture
def malloc_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every ``tune_malloc`` call that ``train_run`` makes (the allocator is left alone)."""
    calls: list[int] = []
    monkeypatch.setattr(loop, "tune_malloc", lambda: calls.append(1) or True)
    return calls


@pytest.mark.parametrize(
    ("options", "expected"), [({}, []), ({"tune_allocator": False}, []), ({"tune_allocator": True}, [1])]
)
def test_train_run_tunes_malloc_only_when_asked(malloc_calls, tmp_path, options, expected):
    # a missing fold stops the run right after the allocator step: nothing trains
    with pytest.raises(DataError):
        train_run(RunConfig(), tmp_path / "no-fold", tmp_path / "run", progress=False, **options)
    assert malloc_calls == expected


@pytest.mark.parametrize(("flags", "expected"), [([], [1]), (["--no-tune-malloc"], [])])
def test_cli_train_tunes_malloc_unless_told_not_to(malloc_calls, tmp_path, flags, expected):
    # explicit modalities: without them the CLI reads the fold's modalities first (and stops there)
    argv = ["train", "--data", str(tmp_path / "no-fold"), "--modalities", "atv",
            "--out", str(tmp_path / "run"), "--quiet", *flags]
    assert main(argv) == 2  # the missing fold, reported after the allocator step
    assert malloc_calls == expected


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or not ctypes.util.find_library("c"),
    reason="mallopt is glibc's",
)
def test_tune_malloc_is_accepted_by_glibc():
    assert tune_malloc() is True
