"""Numeric conventions shared by data preparation and training.

One home, so that the speaker normalisation written into a data root and the training
split's standardization treat a (nearly) constant feature alike.
"""

from __future__ import annotations

#: A feature whose standard deviation is below this is only centred, not scaled: a constant
#: descriptor (or one whose spread is float32 rounding noise, ~1e-7 relative) would otherwise
#: be blown up to unit variance, or divided by zero.
MIN_STD = 1e-6
