"""Where a run executes: device choice, seeding, thread count, determinism, provenance.

Why: the paper's seed-to-seed spread (~2 points) is as large as the differences it
studies. A run is only reproducible if the same seed, device and thread count give the
same numbers *and* ``config.json`` records them. Everything that touches process-wide
state lives here: torch's settings behind :func:`runtime`, which restores them on exit so
that library users (and tests) are not left with changed globals, and the allocator setting
:func:`tune_malloc`, which only a process's owner applies.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.utils.deterministic

from selfcross.config import DTYPES as config_dtypes
from selfcross.errors import ConfigError
from selfcross.version import RESULTS_VERSION, __version__

#: Torch dtype of each ``TrainConfig.dtype`` value (the names: :data:`selfcross.config.DTYPES`).
DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in config_dtypes}


def resolve_device(spec: str) -> torch.device:
    """Turn ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` into a device that exists.

    ``auto`` picks CUDA when available, else CPU. Asking for CUDA on a machine without it
    is a :class:`ConfigError`, not a silent fall-back: the numbers would differ.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"device {spec!r} is not one of auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} asked for, but this torch build sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ConfigError(f"device {spec!r} is not supported (use auto, cpu or cuda)")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def runtime(num_threads: int | None = None, deterministic: bool = True) -> Iterator[None]:
    """Set torch's thread count and deterministic algorithms for a block, then restore them.

    Deterministic mode uses ``warn_only=True``: an op without a deterministic kernel warns
    instead of failing the run. On CUDA, cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` for
    deterministic matmuls; it is set (if unset) before the first CUDA call.
    """
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    old_fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        if num_threads is not None:
            if num_threads < 1:
                raise ConfigError(f"num_threads must be >= 1, got {num_threads}")
            torch.set_num_threads(num_threads)
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.utils.deterministic.fill_uninitialized_memory = False
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old_cudnn
        torch.utils.deterministic.fill_uninitialized_memory = old_fill


def environment_info(device: torch.device) -> dict[str, Any]:
    """Everything about the machine and software that can change a run's numbers.

    Call inside :func:`runtime` so that ``threads`` is the count actually used.
    """
    info: dict[str, Any] = {
        "selfcross_version": __version__,
        "results_version": RESULTS_VERSION,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
    if device.type == "cuda":
        info["cuda_device_name"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
        info["cudnn_version"] = torch.backends.cudnn.version()
    return info


def tune_malloc(mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1) -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the kernel.

    Why: a training step frees and reallocates the same large buffers every time; with
    glibc's defaults each is a fresh ``mmap`` whose pages fault in again on first touch
    (docs/performance.md). This changes the whole process for good, so only the process's
    owner calls it: the CLI (``--no-tune-malloc`` to skip) and the grid's worker processes;
    :func:`~selfcross.training.train_run` does so only when asked. Returns ``False`` where
    ``mallopt`` is unavailable (not glibc).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, int(mmap_threshold)) == 1
        return bool(libc.mallopt(m_trim_threshold, int(trim_threshold)) == 1 and ok)
    except (OSError, AttributeError):
        return False
