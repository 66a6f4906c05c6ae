"""The fold format: the data-root contract (layout), its reader, its writer.

Public API: :func:`read_fold`, :func:`list_folds`, :func:`is_fold`, :func:`fingerprint`,
:class:`Fold`, :class:`Split`, :func:`write_split`, :func:`write_classes`,
:func:`write_embedding`.
"""

from selfcross.folds.reader import Fold, Split, fingerprint, is_fold, list_folds, read_fold, root_fingerprint
from selfcross.folds.writer import write_classes, write_embedding, write_split

__all__ = [
    "Fold",
    "Split",
    "fingerprint",
    "is_fold",
    "list_folds",
    "read_fold",
    "root_fingerprint",
    "write_classes",
    "write_embedding",
    "write_split",
]
