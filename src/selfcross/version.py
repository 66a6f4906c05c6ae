"""The package version and the version of the numbers a run produces.

A module of its own so that the modules recording them (the run environment, the linear
floor, the CLI's ``--version``) import no package ``__init__``.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: Version of the numbers a run produces. Bump it with any change that can change a trained
#: run's metrics for the same config and data (model math, kernels, dropout or batch order,
#: training loop); every run records it, and ``grid`` / ``report`` say when a store mixes
#: versions. The package version does not track this.
RESULTS_VERSION = 2
