"""Datasets in MMSA's pickle format (``aligned_50.pkl`` / ``unaligned_50.pkl`` of CMU-MOSI and MOSEI).

A file holds ``{"train", "valid", "test"}``, each a dict with ``text (N, T_l, d_l)``,
``audio (N, T_a, d_a)``, ``vision (N, T_v, d_v)``, ``regression_labels (N,)`` and ``id (N,)``;
optionally ``audio_lengths``, ``vision_lengths`` (N,), ``raw_text``, ``text_bert``, ``annotations``
and others, which are kept but not used. Shapes are read from the arrays. As MMSA does for audio,
``-inf`` features are replaced by 0 (here in every modality), and the replacements are counted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from alignlib.common.errors import MissingFileError, UserError, one_line
from alignlib.common import safe_pickle

SPLITS = ("train", "valid", "test")
MODALITIES = ("text", "audio", "vision")
ALIGNED = ("audio", "vision")  # the modalities aligned onto the words
SPOKEN_NAMES = {"text": "text", "audio": "audio", "vision": "video"}  # each modality as the prose calls it
REQUIRED_KEYS = (*MODALITIES, "regression_labels", "id")
DATA_ENV = "ALIGNLIB_DATA"


# the codes of a frame-to-word table beside a word index 0, 1, ...: a padding frame, and a real frame
# that belongs to no word (a pause: silence before, between or after the words)
PADDING = -1
NO_WORD = -2


class MalformedDataError(UserError):
    """The file is not a readable data file (an MMSA pickle, its tables, a computational sequence); the
    message says what is wrong and where."""


@dataclass
class Split:
    """One split: features per modality ``(N, T, d)`` float32, padding masks ``(N, T)`` bool,
    labels ``(N,)`` float32, ids, and the raw dict for the optional keys. ``alignment``: for a
    synthetic file, ``{"audio", "vision": (N, T_m) int64}`` the true word of every frame (:data:`PADDING`
    on padding, :data:`NO_WORD` on a pause), read from the ``.correspondence.npz`` beside it; None otherwise."""

    features: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    labels: np.ndarray
    ids: np.ndarray
    raw: dict = field(repr=False)
    alignment: dict | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class MMSAData:
    splits: dict[str, Split]
    path: Path
    replaced_neg_inf: dict[str, int]

    @property
    def dims(self) -> dict[str, int]:
        """Feature width of each modality, read from the arrays."""
        return {m: self.splits["train"].features[m].shape[2] for m in MODALITIES}

    @property
    def lengths(self) -> dict[str, int]:
        return {m: self.splits["train"].features[m].shape[1] for m in MODALITIES}


def resolve_path(path: str | os.PathLike | None) -> Path:
    """The path given, or the one in ``$ALIGNLIB_DATA``; never a built-in default."""
    if path is None:
        path = os.environ.get(DATA_ENV)
        if not path:
            raise MissingFileError(f"no data path given and ${DATA_ENV} is not set")
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    return path


def _array(split: dict, key: str, dtype, where: str) -> np.ndarray:
    """``split[key]`` as an array of ``dtype``; a value that is not one raises :class:`MalformedDataError`."""
    try:
        return np.asarray(split[key], dtype=dtype)
    except (ValueError, TypeError, OverflowError) as error:
        reason = one_line(error)
        raise MalformedDataError(f"{where}: {key} is not an array{'' if dtype is None else ' of numbers'} ({reason})") from None


def _mask(split: dict, modality: str, features: np.ndarray, where: str) -> np.ndarray:
    """Padding mask from ``<modality>_lengths`` when present (the first ``len`` steps are real), else
    the rows that are not all zero (if a sample is all zeros, every step counts as real)."""
    count, length = features.shape[:2]
    lengths = split.get(f"{modality}_lengths")
    if lengths is not None:
        lengths = _array(split, f"{modality}_lengths", np.int64, where).reshape(-1)
        if lengths.shape != (count,):
            raise MalformedDataError(f"{where}: {modality}_lengths has {lengths.size} values for {count} samples")
        if (lengths < 0).any() or (lengths > length).any():
            raise MalformedDataError(f"{where}: {modality}_lengths outside [0, {length}]")
        mask = np.arange(length)[None, :] < lengths[:, None]
    else:
        mask = np.abs(features).sum(axis=2) > 0
    mask[~mask.any(axis=1)] = True
    return mask


def _load_split(name: str, split, path: Path, replaced: dict[str, int]) -> Split:
    where = f"{path.name}[{name!r}]"
    if not isinstance(split, dict):
        raise MalformedDataError(f"{where}: expected a dict of arrays, got {type(split).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in split]
    if missing:
        raise MalformedDataError(f"{where}: missing key(s) {missing}")
    labels = _array(split, "regression_labels", np.float32, where).reshape(-1)
    count = labels.size
    features, masks = {}, {}
    for modality in MODALITIES:
        array = _array(split, modality, np.float32, where)
        if array.ndim != 3:
            raise MalformedDataError(f"{where}: {modality} should be (N, T, d), got shape {array.shape}")
        if array.shape[0] != count:
            raise MalformedDataError(f"{where}: {modality} has {array.shape[0]} samples but regression_labels has {count}")
        neg_inf = np.isneginf(array)
        replaced[modality] += int(neg_inf.sum())
        array = np.where(neg_inf, np.float32(0), array)
        if not np.isfinite(array).all():
            raise MalformedDataError(f"{where}: {modality} contains NaN or +inf values")
        features[modality] = array
        masks[modality] = _mask(split, modality, array, where)
    if not np.isfinite(labels).all():
        raise MalformedDataError(f"{where}: regression_labels contain NaN or infinite values")
    ids = _array(split, "id", None, where).reshape(-1)
    if ids.size != count:
        raise MalformedDataError(f"{where}: id has {ids.size} entries but regression_labels has {count}")
    return Split(features, masks, labels, ids, split)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (never a pickled object); a damaged file raises :class:`MalformedDataError`."""
    try:
        with path.open("rb") as handle:  # closed on every error, which np.load(path) does not promise
            archive = np.load(handle)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            with archive:
                return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such file") from None
    except Exception as error:  # zipfile, zlib and numpy each raise their own type on a damaged archive
        reason = one_line(error)
        raise MalformedDataError(f"{path}: unreadable tables ({reason}); is the file truncated?") from None


def _attach_alignment(splits: dict[str, Split], path: Path) -> None:
    """Read the frame-to-word tables of a synthetic file (``PATH.correspondence.npz``) into each split."""
    tables = path.with_name(path.name + ".correspondence.npz")
    if not tables.is_file():
        return
    found = read_npz(tables)
    for name, split in splits.items():
        keys = [f"{name}_{m}" for m in ALIGNED]
        if not all(key in found for key in keys):
            raise MalformedDataError(f"{tables}: missing table(s) {[k for k in keys if k not in found]}")
        for m, key in zip(ALIGNED, keys):
            if found[key].shape != split.masks[m].shape:
                raise MalformedDataError(f"{tables}: {key} has shape {found[key].shape}, the {m} features {split.masks[m].shape}")
        split.alignment = {m: found[key].astype(np.int64) for m, key in zip(ALIGNED, keys)}


def load_mmsa(path: str | os.PathLike | None = None) -> MMSAData:
    """Read and validate an MMSA pickle (``path`` or ``$ALIGNLIB_DATA``), with a restricted unpickler
    (:mod:`alignlib.common.safe_pickle`: numpy arrays and builtin containers only, no code runs).

    Raises :class:`MalformedDataError` for an unreadable, truncated or unsafe file, a missing split or key,
    labels of the wrong length, NaN, or splits that disagree on a modality's feature width.
    """
    path = resolve_path(path)
    try:
        with path.open("rb") as handle:
            raw = safe_pickle.load(handle)
    except safe_pickle.UnsafePickleError as error:
        raise MalformedDataError(f"{path}: {error}") from None
    except OSError as error:
        raise UserError(f"{path}: unreadable ({error.strerror or error})") from None
    except Exception as error:  # the restricted unpickler runs no code: any other failure is a damaged file
        reason = one_line(error)
        raise MalformedDataError(f"{path}: not a readable MMSA pickle ({reason}); is the file truncated?") from None
    if not isinstance(raw, dict):
        raise MalformedDataError(f"{path}: expected a dict with splits {SPLITS}, got {type(raw).__name__}")
    missing = [s for s in SPLITS if s not in raw]
    if missing:
        raise MalformedDataError(f"{path}: missing split(s) {missing}")
    replaced = {m: 0 for m in MODALITIES}
    splits = {name: _load_split(name, raw[name], path, replaced) for name in SPLITS}
    _attach_alignment(splits, path)
    for modality in MODALITIES:
        widths = {name: split.features[modality].shape[2] for name, split in splits.items()}
        if len(set(widths.values())) != 1:
            raise MalformedDataError(f"{path}: splits disagree on the {modality} feature width: {widths}")
    return MMSAData(splits, path, replaced)


@dataclass
class Batch:
    """What every model takes: per-modality ``(B, T, d)`` features and ``(B, T)`` padding masks
    (True = real), labels ``(B,)``, ``present (B, 3)`` (False where a modality is missing, in the
    order text, audio, vision) and ids. ``alignment``: ``{"audio", "vision": (B, T_m)}`` the true
    word of every frame (-1 on padding), only for the control models that are given it."""

    features: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    labels: torch.Tensor
    present: torch.Tensor
    ids: list
    alignment: dict[str, torch.Tensor] | None = None

    def to(self, device) -> "Batch":
        alignment = None if self.alignment is None else {m: x.to(device) for m, x in self.alignment.items()}
        return Batch({m: x.to(device) for m, x in self.features.items()}, {m: x.to(device) for m, x in self.masks.items()},
                     self.labels.to(device), self.present.to(device), self.ids, alignment)


class MMSADataset(torch.utils.data.Dataset):
    """Samples of one split; with ``present (N, 3)`` (see :func:`alignlib.data.missing.missing_modality_mask`)
    the features of a missing modality are zeroed and flagged; with ``alignment=True`` each sample
    carries the split's frame-to-word tables (for the oracle controls; every other model trains
    without them)."""

    def __init__(self, split: Split, present: np.ndarray | None = None, alignment: bool = False):
        if alignment and split.alignment is None:
            raise UserError("this model needs the true frame-to-word tables, which only a synthetic file has "
                             "(its .correspondence.npz beside the pickle)")
        self.split, self.alignment = split, alignment
        if present is not None and tuple(present.shape) != (len(split), len(MODALITIES)):
            raise ValueError(f"present: expected shape {(len(split), len(MODALITIES))}, got {tuple(present.shape)}")
        self.present = np.ones((len(split), len(MODALITIES)), dtype=bool) if present is None else present

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict:
        present = self.present[index]
        return {
            "features": {m: self.split.features[m][index] if present[k] else np.zeros_like(self.split.features[m][index])
                         for k, m in enumerate(MODALITIES)},  # collate copies: no copy here
            "masks": {m: self.split.masks[m][index] for m in MODALITIES},
            "label": self.split.labels[index],
            "present": present,
            "id": self.split.ids[index],
            **({"alignment": {m: t[index] for m, t in self.split.alignment.items()}} if self.alignment else {}),
        }


def collate(samples: list[dict]) -> Batch:
    """Stack samples into a :class:`Batch` (sequences already share their padded length)."""
    return Batch(
        features={m: torch.from_numpy(np.stack([s["features"][m] for s in samples])) for m in MODALITIES},
        masks={m: torch.from_numpy(np.stack([s["masks"][m] for s in samples])) for m in MODALITIES},
        labels=torch.from_numpy(np.array([s["label"] for s in samples], dtype=np.float32)),
        present=torch.from_numpy(np.stack([s["present"] for s in samples])),
        ids=[s["id"] for s in samples],
        alignment=({m: torch.from_numpy(np.stack([s["alignment"][m] for s in samples])) for m in ALIGNED}
                   if "alignment" in samples[0] else None),
    )
