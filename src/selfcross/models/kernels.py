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
rules of :mod:`~selfcross.models.threads`.
"""

from __future__ import annotations

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
