"""The one switch between our fast CPU kernels and the authors' computation.

Why: parity checks and benchmarks need the authors' exact ops (``nn.MultiheadAttention``
with ``need_weights=True``, ``nn.GRU``'s own forward) in the *same* model object, with the
same parameter names, as the fast path. The switch is a flag on each torch module that a
kernel replaces; the model's code reads it through :func:`uses_reference`.
"""

from __future__ import annotations

from torch import nn

from selfcross.config import KERNELS
from selfcross.errors import ConfigError

#: Attribute set on every ``nn.MultiheadAttention`` and ``nn.GRU`` that must run the authors' ops.
REFERENCE_FLAG = "selfcross_reference"


def check_kernels(impl: str) -> str:
    """``impl`` if it names a kernel set, else :class:`~selfcross.errors.ConfigError`."""
    if impl not in KERNELS:
        raise ConfigError(f"kernel set {impl!r} is not one of {', '.join(KERNELS)}")
    return impl


def set_kernels(model: nn.Module, impl: str) -> nn.Module:
    """Use ``impl`` for every attention block and every GRU of ``model``; returns ``model``.

    Parameters are untouched, so a model can be switched at any time (also after loading
    weights).
    """
    reference = check_kernels(impl) == "reference"
    for module in model.modules():
        if isinstance(module, (nn.MultiheadAttention, nn.GRU)):
            setattr(module, REFERENCE_FLAG, reference)
    return model


def uses_reference(module: nn.Module) -> bool:
    """Whether :func:`set_kernels` asked ``module`` to run the authors' ops."""
    return bool(getattr(module, REFERENCE_FLAG, False))
