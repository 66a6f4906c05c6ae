"""Data stage: the processed fold layout, its reader and writer, and the synthetic benchmark.

Public API: :func:`read_fold`, :func:`list_folds`, :func:`fingerprint`, :class:`Fold`,
:class:`Split`, :func:`write_split`, :func:`write_classes`, :func:`make_synthetic`,
:func:`import_features` (published MMSA / MulT / MFN feature files -> a data root).
"""

from selfcross.data.feature_import import import_features
from selfcross.data.reader import Fold, Split, fingerprint, is_fold, list_folds, read_fold
from selfcross.data.synthetic import make_synthetic
from selfcross.data.writer import write_classes, write_embedding, write_split

__all__ = [
    "Fold",
    "Split",
    "fingerprint",
    "import_features",
    "is_fold",
    "list_folds",
    "make_synthetic",
    "read_fold",
    "write_classes",
    "write_embedding",
    "write_split",
]
