"""Switch a model between our fast CPU kernels and the authors' computation (issue 8).

Why: benchmarks and parity checks need the exact computation of the authors' code
(``nn.MultiheadAttention(..., need_weights=True)`` and PyTorch's own ``nn.GRU``) in the
*same* model object, with the same parameter names, so that both paths can be timed side
by side. Training and inference always use ``fast`` unless told otherwise
(``TrainConfig(kernels="reference")`` / ``selfcross train --kernels reference`` trains with
the authors' ops, to check that the fast path learns as well).

``fast`` = :mod:`~selfcross.models.pooled_attention` (the attention's temporal mean computed
exactly without its full output), :mod:`~selfcross.models.fast_attention` (the full output,
when asked for) and :mod:`~selfcross.models.fast_rnn` (the CPU BiGRU), with the threading
rules of :mod:`~selfcross.models.threads`; and, for training, PyTorch's fused Adam
(:func:`make_adam`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from selfcross.errors import ConfigError
from selfcross.models.fast_attention import ATTENTION_IMPLS, set_attention_impl

#: Kernel sets: ``fast`` (default) or ``reference`` (the authors' ops).
KERNELS: tuple[str, ...] = ATTENTION_IMPLS


def set_kernels(model: nn.Module, impl: str) -> nn.Module:
    """Use ``impl`` for every attention block and every GRU of ``model``; returns ``model``.

    ``reference`` = ``nn.MultiheadAttention`` with attention weights requested and
    ``nn.GRU``'s own forward; ``fast`` = :mod:`~selfcross.models.fast_attention` and
    :mod:`~selfcross.models.fast_rnn` where they apply. Parameters are untouched.
    """
    if impl not in KERNELS:
        raise ConfigError(f"kernel set {impl!r} is not one of {', '.join(KERNELS)}")
    set_attention_impl(model, impl)
    for module in model.modules():
        if isinstance(module, nn.GRU):
            module.selfcross_reference = impl == "reference"
    return model


def tune_malloc(mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1) -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the kernel.

    Why: a training step allocates and frees the same large buffers every time; with
    glibc's defaults each one is a fresh ``mmap`` whose pages fault in again on first touch.
    In this project's micro-VM that costs ~0.7 ms per MB (measured: filling a fresh 200 MB
    tensor 139 ms, a reused one 21 ms). Process-wide and harmless elsewhere; returns
    ``False`` where ``mallopt`` is unavailable (not glibc).
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


def make_adam(params: Any, lr: float, kernels: str = "fast") -> torch.optim.Adam:
    """The paper's optimizer, Adam(lr); with ``kernels="fast"`` PyTorch's fused Adam kernel.

    Why fused: the same update (to float rounding) in one kernel over all parameters instead
    of a dozen ``foreach`` passes; measured on this 2-core CPU (2 threads, the paper's
    models, ~1.7 M parameters): 10.9 -> 2.1 ms per step (Self), 12.7 -> 2.7 ms (Cross).
    ``kernels="reference"`` keeps the default implementation (the authors' ops). A torch too
    old for the fused kernel on this device (CPU support came in 2.4) gets the default.
    """
    params = list(params)
    if kernels == "fast":
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except RuntimeError:  # fused Adam not built for this device in this torch: same update
            pass
    return torch.optim.Adam(params, lr=lr)
