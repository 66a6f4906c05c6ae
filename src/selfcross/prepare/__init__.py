"""Preparation: raw media, corpus adapters, CSV manifests and published feature files -> a data root.

Public API: :func:`import_features` (MMSA / MulT / MFN feature files). The media pipelines
are :mod:`selfcross.prepare.pipeline` (records -> folds), :mod:`~selfcross.prepare.manifest`,
:mod:`~selfcross.prepare.iemocap` and :mod:`~selfcross.prepare.adapters`.
"""

from selfcross.prepare.feature_import import import_features

__all__ = ["import_features"]
