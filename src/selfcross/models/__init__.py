"""Models: per-modality encoders, attention blocks, pooling and the fusion model.

Public API: :class:`FusionModel` (built from a :class:`selfcross.config.ModelConfig`),
:func:`attention_pairs`, and the parts :class:`ModalityEncoder`, :class:`Attention`,
:class:`Pooling`. The fast CPU kernels these parts run by default live in
:mod:`selfcross.models.kernels`; ``set_kernels(model, "reference")`` switches a model to the
authors' ops. The linear floor (scikit-learn, no torch) is :mod:`selfcross.models.linear`.
"""

from selfcross.models.attention import Attention
from selfcross.models.encoders import ModalityEncoder
from selfcross.models.kernels import set_kernels
from selfcross.models.model import FusionModel, attention_pairs
from selfcross.models.pooling import Pooling

__all__ = ["Attention", "FusionModel", "ModalityEncoder", "Pooling", "attention_pairs", "set_kernels"]
