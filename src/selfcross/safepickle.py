"""Restricted unpicklers: a pickle may name only the callables its reader allows.

Why: unpickling a file runs whatever callables the file names (``os.system``, ``open``...).
selfcross reads two kinds of pickles a user may have been given, the authors' whole-model
checkpoints (:mod:`selfcross.serve.compat`) and the MMSA / MulT feature files
(:mod:`selfcross.prepare.feature_formats`); both are read only when the caller trusts the file,
and even then through an :class:`AllowListUnpickler`, which resolves nothing but the globals
on its allow list. What happens to any other global is the subclass's choice: the checkpoint
reader replaces it with an inert stand-in, the feature reader refuses the file.
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np

Global = tuple[str, str]


def _numpy_globals() -> dict[Global, Any]:
    """What ``pickle.dumps(ndarray)`` names, under NumPy 1's and NumPy 2's module paths."""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    found: dict[Global, Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[(module, "_reconstruct")] = multiarray._reconstruct
        found[(module, "scalar")] = multiarray.scalar
    return found


#: Globals that rebuild NumPy arrays and scalars (object arrays included: their elements are
#: unpickled by the same restricted unpickler). ``_codecs.encode`` turns the latin-1 text in
#: which protocol-2 pickles store bytes back into bytes.
NUMPY_GLOBALS: dict[Global, Any] = {**_numpy_globals(), ("_codecs", "encode"): codecs.encode}


class AllowListUnpickler(pickle.Unpickler):
    """Resolves the globals in ``allowed``; any other is handed to :meth:`unknown_global`."""

    def __init__(self, file: BinaryIO, allowed: Mapping[Global, Any], **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.allowed = dict(allowed)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        return self.unknown_global(module, name)

    def unknown_global(self, module: str, name: str) -> Any:
        """Called for a global off the allow list; the default refuses it."""
        raise RefusedGlobal(module, name)


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global the reader does not allow (``module.name`` in ``.qualified``)."""

    def __init__(self, module: str, name: str) -> None:
        self.qualified = f"{module}.{name}"
        super().__init__(f"refused to load {self.qualified}")


def load_restricted(file: BinaryIO, allowed: Mapping[Global, Any]) -> Any:
    """Unpickle ``file`` resolving only ``allowed``; raise :class:`RefusedGlobal` on anything else."""
    return AllowListUnpickler(file, allowed).load()
