"""The paper's optimizer, Adam(lr), with PyTorch's fused kernel on the fast path."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from selfcross.models.kernels import check_kernels


def make_adam(params: Iterable[torch.nn.Parameter], lr: float, kernels: str = "fast") -> torch.optim.Adam:
    """Adam(lr); with ``kernels="fast"`` PyTorch's fused Adam kernel.

    Why fused: the same update (to float rounding) in one kernel over all parameters instead
    of a dozen ``foreach`` passes (docs/performance.md). ``kernels="reference"`` keeps the
    default implementation (the authors' ops); a torch without the fused kernel for this
    device gets the default too.
    """
    params = list(params)
    if check_kernels(kernels) == "fast":
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except RuntimeError:  # fused Adam not built for this device in this torch: same update
            pass
    return torch.optim.Adam(params, lr=lr)
