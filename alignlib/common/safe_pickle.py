"""Reading pickles without running code: only numpy arrays, dtypes and scalars and builtin containers
and scalars may be built.

A pickle names the callables that rebuild its objects (``os.system`` as easily as ``numpy.ndarray``);
:func:`load` refuses every name outside :data:`ALLOWED` before anything is called, so a dataset file
from the internet cannot run code when it is opened. Pickles written by numpy 1.x (``numpy.core``)
and numpy 2.x (``numpy._core``), and by Python 2 (``__builtin__``), load alike.
"""
from __future__ import annotations

import importlib
import pickle
from typing import BinaryIO

import numpy as np

_NUMPY_CORE = "numpy._core" if hasattr(np, "_core") else "numpy.core"
_RENAMED = {"__builtin__": "builtins", "numpy.core.multiarray": "numpy._core.multiarray",
            "numpy.core.numeric": "numpy._core.numeric"}
ALLOWED = {
    "builtins": {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float",
                 "complex", "bool"},
    "_codecs": {"encode"},  # how Python 2-protocol pickles store bytes (numpy's array buffers)
    "numpy": {"ndarray", "dtype"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.numeric": {"_frombuffer"},  # protocol 5 array buffers
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside :data:`ALLOWED`; nothing was called."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        canonical = _RENAMED.get(module, module)
        if name not in ALLOWED.get(canonical, ()):
            raise UnsafePickleError(f"refused to load the global {module}.{name} (only numpy arrays, dtypes and "
                                    "builtin containers and scalars are allowed)")
        if canonical.startswith("numpy._core"):
            canonical = canonical.replace("numpy._core", _NUMPY_CORE, 1)
        return getattr(importlib.import_module(canonical), name)


def load(handle: BinaryIO):
    """``pickle.load`` restricted to :data:`ALLOWED`; raises :class:`UnsafePickleError` naming the first
    other global, before any object is built from it."""
    return _RestrictedUnpickler(handle).load()
