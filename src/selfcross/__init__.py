"""selfcross: self- vs cross-attention for multimodal emotion recognition.

A faithful reimplementation of Rajan, Brutti & Cavallaro, "Is cross-attention preferable
to self-attention for multi-modal emotion recognition?" (ICASSP 2022), as a toolkit:
models, fold reader, synthetic benchmark, training, experiment grid, reports.
"""

from __future__ import annotations

from selfcross.version import RESULTS_VERSION, __version__

__all__ = ["RESULTS_VERSION", "__version__"]


def __getattr__(name: str) -> object:
    """Lazy top-level exports: ``selfcross.Predictor`` without importing torch at ``import selfcross``."""
    if name == "Predictor":
        from selfcross.serve.predict import Predictor  # start-up cost: torch, only when asked for

        return Predictor
    raise AttributeError(f"module 'selfcross' has no attribute {name!r}")
