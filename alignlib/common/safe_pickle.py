"""Reading pickles without running code: only numpy arrays, dtypes and scalars and builtin containers
and scalars may be built.

A pickle names the callables that rebuild its objects (``os.system`` as easily as ``numpy.ndarray``);
:func:`load` refuses every name outside :data:`ALLOWED` before anything is called, so a dataset file
from the internet cannot run code when it is opened. Pickles written by numpy 1.x (``numpy.core``)
and numpy 2.x (``numpy._core``), and by Python 2 (``__builtin__``), load alike.

The allowed callables are safe only as numpy's own pickles use them, so a damaged or crafted file is
held to that use before numpy sees its values (numpy trusts them, and a wrong one crashes the
interpreter: one flipped bit turns ``'i8'`` into an object dtype whose flags say "no pointers", and
numpy reads raw bytes as pointers):

- an array is made empty by ``_reconstruct`` and given its state once; a dtype is made by
  ``numpy.dtype`` (always a new one) and given its state once, before anything uses it; no other
  object's state may be set;
- a dtype's state has the form of a fresh dtype's of its type, and the dtype it gives matches a
  fresh one's size, alignment and pointer flags (:func:`_checked`); structured dtypes are refused;
- an object array's state lists one item per element of its shape;
- ``bytes`` and ``bytearray`` are built from content, not from a size, and a ``BYTEARRAY8`` is read
  only as far as the file goes (Python's unpickler is used: its memo is a dict, where C's sizes an
  array to the largest index a file names).
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
_MULTIARRAY, _NUMERIC = (importlib.import_module(f"{_NUMPY_CORE}.{name}") for name in ("multiarray", "numeric"))


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside :data:`ALLOWED`, or uses an allowed one otherwise than numpy's
    own pickles do (a damaged or crafted file); nothing was built from it."""


class _ArrayName:
    """What the pickle's ``numpy.ndarray`` stands for: the first argument of ``_reconstruct``, never called."""

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError("refused to call numpy.ndarray (numpy's pickles make arrays by _reconstruct)")


_ARRAY = _ArrayName()


def _checked(dtype: np.dtype) -> np.dtype:
    """``dtype`` when numpy may safely build an array or scalar of it: plain (not structured), and its
    size, alignment and pointer flags those of a fresh dtype of its type."""
    if dtype.names is not None or dtype.subdtype is not None:
        raise UnsafePickleError(f"refused an array of the structured dtype {dtype} (only plain dtypes are allowed)")
    fresh = np.dtype(dtype.str)
    compared = _POINTER_FLAGS | (_NEEDS_INIT if fresh.hasobject else 0)
    if (dtype.flags ^ fresh.flags) & compared or (dtype.itemsize, dtype.alignment) != (fresh.itemsize, fresh.alignment):
        raise UnsafePickleError(f"the dtype {dtype.str!r} is damaged: its flags, size and alignment "
                                f"{dtype.flags}, {dtype.itemsize}, {dtype.alignment} are not those of its type "
                                f"({fresh.flags}, {fresh.itemsize}, {fresh.alignment})")
    return dtype


def _has_form(state, template: tuple) -> bool:
    """Whether a dtype's pickled ``state`` has the form of ``template`` (a fresh dtype's): its length and
    the type of each entry (numpy crashes on a datetime's state without its metadata)."""
    return (isinstance(state, tuple) and len(state) == len(template)
            and all(type(entry) is type(expected) for entry, expected in zip(state, template)))


def _fills(shape, items) -> bool:
    """Whether ``items`` is a list of one object per element of ``shape`` (numpy reads past a short one)."""
    return (isinstance(items, list) and isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
            and len(items) == math.prod(shape))


def _from_content(build):
    """``bytes`` or ``bytearray``, refusing a size (``bytearray(2**31)`` fills 2 GB with zeros)."""
    def from_content(*args):
        if args and isinstance(args[0], int):
            raise UnsafePickleError(f"refused {build.__name__} of a size ({args[0]}); only of content")
        return build(*args)
    return from_content


class _RestrictedUnpickler(pickle._Unpickler):
    """Python's own unpickler (its opcodes can be held to numpy's use, and its memo is a dict), with
    :data:`ALLOWED` and the rules of the module's docstring. Loading an MMSA-sized file takes as long as
    with C's: its time is in reading the arrays' bytes."""

    def __init__(self, file):
        super().__init__(file)
        self._unbuilt: dict[int, object] = {}  # arrays and dtypes made here whose state is still to come, by id

    def find_class(self, module: str, name: str):
        canonical = _RENAMED.get(module, module)
        if name not in ALLOWED.get(canonical, ()):
            raise UnsafePickleError(f"refused to load the global {module}.{name} (only numpy arrays, dtypes and "
                                    "builtin containers and scalars are allowed)")
        own = {"ndarray": _ARRAY, "dtype": self._dtype, "_reconstruct": self._reconstruct, "scalar": self._scalar,
               "_frombuffer": self._frombuffer}
        if name in own:
            return own[name]
        found = getattr(importlib.import_module(canonical), name)
        return _from_content(found) if name in ("bytes", "bytearray") else found

    def _usable(self, dtype) -> np.dtype:
        """``dtype``, :func:`_checked`, which from now on no state may change (something uses it)."""
        if not isinstance(dtype, np.dtype):
            raise UnsafePickleError(f"expected a dtype, got {type(dtype).__name__}")
        self._unbuilt.pop(id(dtype), None)
        return _checked(dtype)

    def _dtype(self, spec, align=False, copy=True):
        """``numpy.dtype``, always a new one (a state set on one of numpy's shared dtypes would change it)."""
        dtype = np.dtype(spec, align, True)
        self._unbuilt[id(dtype)] = dtype
        return dtype

    def _reconstruct(self, subtype, shape, dtype):
        """numpy's ``_reconstruct``: the empty array that the pickle's state then fills."""
        if subtype is not _ARRAY or shape != (0,):
            raise UnsafePickleError("refused to reconstruct anything but an empty numpy array")
        array = np.ndarray((0,), np.dtype(dtype))
        self._unbuilt[id(array)] = array
        return array

    def _scalar(self, dtype, *data):
        return _MULTIARRAY.scalar(self._usable(dtype), *data)

    def _frombuffer(self, buffer, dtype, *layout):
        return _NUMERIC._frombuffer(buffer, self._usable(dtype), *layout)

    def load_build(self):
        """Sets the state of an array or dtype made here, once, after checking it."""
        state = self.stack.pop()
        target = self.stack[-1]
        if self._unbuilt.pop(id(target), None) is not target:
            raise UnsafePickleError(f"refused to set the state of a {type(target).__name__} (only once, of an "
                                    "array or dtype just made)")
        if isinstance(target, np.dtype):
            template = target.__reduce__()[2]
            if isinstance(state, tuple) and len(state) > 4 and state[2:5] != (None, None, None):
                raise UnsafePickleError("refused a structured dtype (only plain dtypes are allowed)")
            if not _has_form(state, template):
                raise UnsafePickleError(f"a damaged dtype: its state {state!r:.80} is not of the form {template!r}")
            target.__setstate__(state)
            _checked(target)
            return
        if not (isinstance(state, tuple) and len(state) in (4, 5)):  # ([version,] shape, dtype, is_fortran, data)
            raise UnsafePickleError(f"a damaged array: expected a state of 4 or 5 entries, got {state!r:.80}")
        shape, dtype, _, data = state[-4:]
        if self._usable(dtype).hasobject and not _fills(shape, data):
            given = f"{len(data)} items" if isinstance(data, list) else type(data).__name__
            raise UnsafePickleError(f"a damaged object array: its shape {shape} is given {given}")
        target.__setstate__(state)

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

    dispatch = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: load_build, pickle.BYTEARRAY8[0]: load_bytearray8}



def load(handle: BinaryIO):
    """``pickle.load`` restricted to :data:`ALLOWED` and to numpy's own use of it; raises
    :class:`UnsafePickleError` naming the first other global or use, before anything is built from it."""
    try:
        return _RestrictedUnpickler(handle).load()
    except (EOFError, struct.error):  # Python's unpickler meeting the end of the file mid-opcode
        raise pickle.UnpicklingError("pickle data was truncated") from None
