"""Fast CPU kernels for the paper's model, behind one switch (:func:`set_kernels`).

Each kernel computes exactly the function of the PyTorch module it stands in for, with that
module's parameters, and falls back to the module where it does not apply:

- :mod:`.pooled_attention`: an attention block followed by its temporal mean, computed as
  one operation without building the attention output (what the model uses);
- :mod:`.gru`: the CPU bidirectional GRU with a hand-written backward;
- :mod:`.threads`: how those kernels spread their blocks over the cores.

``set_kernels(model, "reference")`` makes a model run the authors' ops instead (parity
checks, benchmarks, ``selfcross train --kernels reference``). See docs/performance.md.
"""

from selfcross.models.kernels.gru import gru_forward
from selfcross.models.kernels.pooled_attention import fast_pooled_mha
from selfcross.models.kernels.switch import KERNELS, check_kernels, set_kernels, uses_reference

__all__ = ["KERNELS", "check_kernels", "fast_pooled_mha", "gru_forward", "set_kernels", "uses_reference"]
