"""CMU-MultimodalSDK computational sequences (``.csd`` files, HDF5), read one video at a time.

The SDK's layout: one root group named after the sequence (``COVAREP``, ``words``, ...) holding
``data/<video id>/features (T, d)`` and ``data/<video id>/intervals (T, 2)`` (start and end of every
row, in seconds) and ``metadata/<key>`` (one JSON string each). A words sequence stores one word per
row as bytes, ``sp`` for a silence; a labels sequence one row per labelled segment.

:class:`ComputationalSequence` opens a file and validates it as it is read: a foreign HDF5 file, a
missing group, ``features`` and ``intervals`` of different lengths, an interval that ends before it
starts, or NaN / ``+inf`` features raise :class:`CsdError`, one line naming the file, the video and
what is wrong. As MMSA does for COVAREP, ``-inf`` features are replaced by 0 and counted.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from alignlib.common.errors import MissingFileError, one_line
from alignlib.common.files import atomic_write_bytes
from alignlib.data.mmsa import MalformedDataError

PAUSE = "sp"  # the words sequence's entry for a silence
# what h5py raises on a damaged file, depending on where the damage is
_READ_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError)


class CsdError(MalformedDataError):
    """The file is not a valid computational sequence; the message names the file, the video and the problem."""


@dataclass
class Entry:
    """One video of a sequence: ``features (T, d)`` float32 (``str`` for words) and ``intervals (T, 2)``
    float64 seconds."""

    features: np.ndarray
    intervals: np.ndarray

    @property
    def midpoints(self) -> np.ndarray:
        return self.intervals.mean(axis=1)


class ComputationalSequence:
    """An open ``.csd`` file: ``name`` (the root group), ``metadata`` (dict), ``videos`` (ids);
    :meth:`read` loads one video, validated. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"{self.path}: no such file")
        self.replaced_neg_inf = 0
        try:
            self._file = h5py.File(self.path, "r")
        except _READ_ERRORS as error:
            raise CsdError(f"{self.path}: not a readable HDF5 file ({one_line(error)}); is it truncated?") from None
        try:
            with self._reading("the file"):
                roots = list(self._file.keys())
                if len(roots) != 1 or not isinstance(self._file[roots[0]], h5py.Group):
                    raise CsdError(f"{self.path}: not a computational sequence: expected one root group named after "
                                   f"the sequence, found {roots}")
                self.name = roots[0]
                root = self._file[self.name]
                missing = [g for g in ("data", "metadata") if not isinstance(root.get(g), h5py.Group)]
                if missing:
                    raise CsdError(f"{self.path}: not a computational sequence: group {self.name!r} has no "
                                   f"{' or '.join(repr(g) for g in missing)} group")
                self._data = root["data"]
                self.metadata = {key: _metadata_value(root["metadata"][key]) for key in root["metadata"]}
                self.videos = list(self._data.keys())
                self._known = set(self.videos)
        except BaseException:
            self._file.close()
            raise

    @contextlib.contextmanager
    def _reading(self, where: str):
        try:
            yield
        except CsdError:
            raise
        except _READ_ERRORS as error:
            raise CsdError(f"{self.path}: {where}: unreadable ({one_line(error)}); is the file truncated?") from None

    def __contains__(self, video: str) -> bool:
        return video in self._known

    def read(self, video: str) -> Entry:
        """The ``features`` and ``intervals`` of ``video``, validated (see the module's docstring)."""
        where = f"{self.path}: video {video!r}"
        with self._reading(f"video {video!r}"):
            group = self._data.get(video)
            if not isinstance(group, h5py.Group):
                raise CsdError(f"{where}: no group data/{video} in this sequence")
            missing = [k for k in ("features", "intervals") if not isinstance(group.get(k), h5py.Dataset)]
            if missing:
                raise CsdError(f"{where}: missing {' and '.join(missing)}")
            features, intervals = group["features"][()], group["intervals"][()]
        if features.ndim == 1:
            features = features[:, None]
        if intervals.ndim != 2 or intervals.shape[1] != 2 or intervals.dtype.kind not in "fiu":
            raise CsdError(f"{where}: intervals should be (T, 2) numbers, got shape {intervals.shape} of {intervals.dtype}")
        if features.ndim != 2:
            raise CsdError(f"{where}: features should be (T, d) or (T,), got shape {features.shape}")
        if len(features) != len(intervals):
            raise CsdError(f"{where}: features has {len(features)} rows but intervals has {len(intervals)}")
        intervals = intervals.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(intervals).all(1) | (intervals[:, 1] < intervals[:, 0]))
        if bad.size:
            start, end = intervals[bad[0]]
            raise CsdError(f"{where}: interval {bad[0]} runs backwards or is not finite ({start} to {end})")
        return Entry(self._features(features, where), intervals)

    def _features(self, features: np.ndarray, where: str) -> np.ndarray:
        if features.dtype.kind in "SOU":
            return np.array([[_text(v) for v in row] for row in features], dtype=str).reshape(features.shape)
        if features.dtype.kind not in "fiub":
            raise CsdError(f"{where}: features of dtype {features.dtype}, expected numbers or words")
        features = features.astype(np.float32)
        neg_inf = np.isneginf(features)
        self.replaced_neg_inf += int(neg_inf.sum())
        features[neg_inf] = 0
        bad = np.flatnonzero(~np.isfinite(features).all(1))
        if bad.size:
            raise CsdError(f"{where}: features row {bad[0]} holds NaN or +inf ({bad.size} such row(s))")
        return features

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ComputationalSequence":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _metadata_value(dataset):
    """A metadata entry as the SDK writes it: a one-element string dataset holding JSON (or plain text)."""
    if not isinstance(dataset, h5py.Dataset):
        return None
    value = dataset[()]
    value = _text(value.reshape(-1)[0] if isinstance(value, np.ndarray) and value.size else value)
    try:
        return json.loads(value)
    except ValueError:
        return value


def write_csd(path: str | os.PathLike, name: str, entries: dict[str, tuple[np.ndarray, np.ndarray]],
              metadata: dict) -> Path:
    """Write a computational sequence in the SDK's layout, atomically: ``entries[video] = (features (T, d),
    intervals (T, 2))`` (``str`` features, the words, are stored as UTF-8 bytes as the SDK does), and
    ``metadata`` each value as a one-element JSON string."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        root = handle.create_group(name)
        data = root.create_group("data")
        for video, (features, intervals) in entries.items():
            features = np.asarray(features)
            if features.dtype.kind == "U":
                features = np.char.encode(features, "utf-8")
            group = data.create_group(video)
            group.create_dataset("features", data=features)
            group.create_dataset("intervals", data=np.asarray(intervals, dtype=np.float64))
        meta = root.create_group("metadata")
        for key, value in metadata.items():
            meta.create_dataset(key, data=[json.dumps(value)], dtype=h5py.string_dtype())
    return atomic_write_bytes(path, buffer.getvalue())
