"""Reading pickles without running code: only numpy arrays, dtypes and scalars and builtin containers
and scalars may be built.

A pickle names the callables that rebuild its objects (``os.system`` as easily as ``numpy.ndarray``);
:func:`load` refuses every name outside :data:`ALLOWED` before anything is called, so a dataset file
from the internet cannot run code when it is opened. Pickles written by numpy 1.x (``numpy.core``)
and numpy 2.x (``numpy._core``), and by Python 2 (``__builtin__``), load alike.

The allowed numpy callables are safe only with an honest dtype: a damaged file can pickle an object
dtype whose flags say "no pointers" (one flipped bit turns ``'i8'`` into ``'O8'``), and numpy would then
read raw bytes as object pointers and crash the interpreter. Every dtype an array or scalar is built
with is therefore checked against a fresh dtype of the same type first (:func:`_checked`).
"""
from __future__ import annotations

import importlib
import math
import pickle
import struct
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
# NPY_ITEM_REFCOUNT | NPY_LIST_PICKLE | NPY_ITEM_IS_POINTER: how numpy treats an item's bytes as pointers;
# an object dtype also needs NPY_NEEDS_INIT (its memory zeroed before pointers are stored).
_POINTER_FLAGS, _NEEDS_INIT = 0x07, 0x08
_CHUNK = 1 << 26  # bytes a large bytearray is read in


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside :data:`ALLOWED`, or builds an array from a dtype that is
    structured or damaged; nothing was called with it."""


def _checked(dtype):
    """``dtype`` when numpy may safely build an array or scalar of it; non-dtypes pass (numpy refuses them)."""
    if not isinstance(dtype, np.dtype):
        return dtype
    if dtype.names is not None or dtype.subdtype is not None:
        raise UnsafePickleError(f"refused an array of the structured dtype {dtype} (only plain dtypes are allowed)")
    fresh = np.dtype(dtype.str)
    compared = _POINTER_FLAGS | (_NEEDS_INIT if fresh.hasobject else 0)
    if (dtype.flags ^ fresh.flags) & compared:
        raise UnsafePickleError(f"the dtype {dtype.str!r} is damaged: its flags {dtype.flags} are not those of "
                                f"its type ({fresh.flags})")
    return dtype


class _CheckedArray(np.ndarray):
    """What the pickle's ``numpy.ndarray`` stands for while loading: an array whose dtype is checked when
    it is created and when its state is set; :func:`load` returns plain arrays."""

    __slots__ = ()

    def __new__(cls, shape, dtype=float, *args, **kwargs):
        return super().__new__(cls, shape, _checked(np.dtype(dtype)), *args, **kwargs)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) in (4, 5):  # ([version,] shape, dtype, is_fortran, data)
            shape, dtype, _, data = state[-4:]
            if _checked(dtype).hasobject and not _fills(shape, data):
                given = f"{len(data)} items" if isinstance(data, list) else type(data).__name__
                raise UnsafePickleError(f"a damaged object array: its shape {shape} is given {given}")
        super().__setstate__(state)


def _fills(shape, items) -> bool:
    """Whether ``items`` is a list of one object per element of ``shape`` (numpy reads past a short one)."""
    return (isinstance(items, list) and isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
            and len(items) == math.prod(shape))


def _reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct`` (an empty array that the pickle's state then fills), for arrays only."""
    if subtype is not _CheckedArray:
        raise UnsafePickleError(f"refused to reconstruct {getattr(subtype, '__name__', subtype)!r} (only numpy arrays)")
    return _CheckedArray(shape, dtype)


def _dtype_checked(build, position: int):
    """``build`` with its argument at ``position``, a dtype, checked before it is called."""
    def checked_build(*args):
        if len(args) > position:
            args = (*args[:position], _checked(args[position]), *args[position + 1:])
        return build(*args)
    return checked_build


class _RestrictedUnpickler(pickle._Unpickler):
    """Python's own unpickler rather than the C one: its memo is a dict, where the C one allocates an array
    up to the largest index a file names (one flipped bit in a memo index asked for 20 GB). Loading an
    MMSA-sized file is as fast (its time is in reading the arrays' bytes)."""

    def load_bytearray8(self):
        """A bytearray read as far as the file goes: Python's own allocates the length the file declares
        first (zero-filled: a flipped bit in it asked for 15 GB)."""
        size, = struct.unpack("<Q", self.read(8))
        data = bytearray()
        while len(data) < size:
            chunk = self.read(min(size - len(data), _CHUNK))
            if not chunk:
                raise pickle.UnpicklingError(f"the file ends inside a bytearray of {size} bytes")
            data += chunk
        self.append(data)

    dispatch = {**pickle._Unpickler.dispatch, pickle.BYTEARRAY8[0]: load_bytearray8}

    def find_class(self, module: str, name: str):
        canonical = _RENAMED.get(module, module)
        if name not in ALLOWED.get(canonical, ()):
            raise UnsafePickleError(f"refused to load the global {module}.{name} (only numpy arrays, dtypes and "
                                    "builtin containers and scalars are allowed)")
        if (canonical, name) == ("numpy", "ndarray"):
            return _CheckedArray
        if name == "_reconstruct":
            return _reconstruct
        if canonical.startswith("numpy._core"):
            canonical = canonical.replace("numpy._core", _NUMPY_CORE, 1)
        found = getattr(importlib.import_module(canonical), name)
        dtype_at = {"scalar": 0, "_frombuffer": 1}.get(name)
        return found if dtype_at is None else _dtype_checked(found, dtype_at)


def _plain(obj, done: dict):
    """``obj`` with every :class:`_CheckedArray` inside it (containers, object arrays) a plain ndarray;
    ``done`` maps what was visited (by ``id``) to its result, so shared and cyclic objects stay so."""
    if id(obj) in done:
        return done[id(obj)]
    if isinstance(obj, np.ndarray):
        plain = done[id(obj)] = obj.view(np.ndarray)
        if plain.dtype.hasobject:
            items = plain.reshape(-1, order="A")  # a view for C and Fortran order
            for i, item in enumerate(items):
                items[i] = _plain(item, done)
        return plain
    done[id(obj)] = obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _plain(value, done)
    elif isinstance(obj, list):
        obj[:] = [_plain(item, done) for item in obj]
    elif isinstance(obj, tuple):
        done[id(obj)] = tuple(_plain(item, done) for item in obj)
    return done[id(obj)]


def load(handle: BinaryIO):
    """``pickle.load`` restricted to :data:`ALLOWED`; raises :class:`UnsafePickleError` naming the first
    other global, or a structured or damaged dtype, before any object is built from it."""
    try:
        loaded = _RestrictedUnpickler(handle).load()
    except (EOFError, struct.error):  # Python's unpickler meeting the end of the file mid-opcode
        raise pickle.UnpicklingError("pickle data was truncated") from None
    return _plain(loaded, {})
