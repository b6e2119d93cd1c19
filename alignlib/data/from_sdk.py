"""From CMU-MultimodalSDK computational sequences to our data format: the MMSA pickle and its
``.correspondence.npz`` of frame-to-word tables, so every correspondence analysis runs on real words.

A labelled segment ``<video>[<k>]`` is the ``k``-th interval ``[start, end)`` of the labels sequence;
its label is the first column of that row. Its **words** are the entries of the words sequence
(``sp`` silences left out) whose midpoint lies in the segment, in time order, with their rows of the
word-vector sequence as text features (matched by interval). Its **frames** are the
acoustic and visual rows whose midpoint lies in the segment. A frame's word is the segment word
whose interval ``[start, end)`` holds the frame's midpoint, or :data:`~alignlib.data.NO_WORD` (a
pause, or the part of a word whose midpoint falls in the next segment); padding is
:data:`~alignlib.data.PADDING`. Videos are read one at a time, so only one video of each sequence
is in memory. Segments that cannot be built (a video missing from a sequence, no word or no frame
in a modality) are left out and listed in :attr:`Built.skipped`; none disappears unreported.
"""
from __future__ import annotations

import ast
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from alignlib.common.errors import MissingFileError, UserError, one_line
from alignlib.data.csd import PAUSE, ComputationalSequence, CsdError, Entry
from alignlib.data.mmsa import ALIGNED, NO_WORD, PADDING, SPLITS

SEQUENCES = ("words", "text", "audio", "vision", "labels")
SDK_FOLDS = {"standard_train_fold": "train", "standard_valid_fold": "valid", "standard_test_fold": "test"}


def is_pause(word: str) -> bool:
    """Whether a words sequence's entry marks a silence (the SDK's ``sp``)."""
    return word.strip().lower() == PAUSE


@dataclass
class Segment:
    """One labelled segment: ``text (W, d_l)``, ``frames[m] (F_m, d_m)``, ``tables[m] (F_m,)`` the word
    of each frame, ``word_intervals (W, 2)`` and ``times[m] (F_m,)`` frame midpoints, in seconds."""

    id: str
    label: float
    words: list[str]
    text: np.ndarray
    word_intervals: np.ndarray
    frames: dict[str, np.ndarray]
    times: dict[str, np.ndarray]
    tables: dict[str, np.ndarray]


@dataclass
class Built:
    """What :func:`build` made: ``data`` in MMSA's layout, ``correspondence`` the tables to save beside
    it, ``counts[split]`` segments per split, ``unassigned`` how many of them were in no fold,
    ``skipped[reason]`` the ids left out, ``replaced_neg_inf[sequence]`` -inf features set to 0."""

    data: dict
    correspondence: dict
    counts: dict[str, int]
    unassigned: int
    skipped: dict[str, list[str]] = field(default_factory=dict)
    replaced_neg_inf: dict[str, int] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)


def cut(found: Segment, limits: dict[str, int]) -> tuple[Segment, list[str]]:
    """``found`` with at most ``limits[m]`` words (``"text"``) or frames (``"audio"``, ``"vision"``), the
    first ones kept; a kept frame whose word was cut gets :data:`NO_WORD`. Also the modalities cut."""
    over = [m for m, n in (("text", len(found.words)), *((m, len(found.times[m])) for m in ALIGNED))
            if m in limits and n > limits[m]]
    if not over:
        return found, over
    words = limits.get("text", len(found.words))
    keep = {m: limits.get(m, len(found.times[m])) for m in ALIGNED}
    tables = {m: np.where(found.tables[m][: keep[m]] < words, found.tables[m][: keep[m]], NO_WORD) for m in ALIGNED}
    return Segment(found.id, found.label, found.words[:words], found.text[:words], found.word_intervals[:words],
                   {m: found.frames[m][: keep[m]] for m in ALIGNED}, {m: found.times[m][: keep[m]] for m in ALIGNED},
                   tables), over


def frame_words(word_intervals: np.ndarray, midpoints: np.ndarray) -> np.ndarray:
    """``(W, 2)`` intervals of a segment's words in time order, ``(F,)`` frame midpoints -> ``(F,)`` int64:
    the index of the word whose ``[start, end)`` holds each midpoint, :data:`NO_WORD` where none does."""
    table = np.full(len(midpoints), NO_WORD, dtype=np.int64)
    if len(word_intervals) == 0:
        return table
    index = np.searchsorted(word_intervals[:, 0], midpoints, side="right") - 1
    inside = (index >= 0) & (midpoints < word_intervals[np.maximum(index, 0), 1])
    table[inside] = index[inside]
    return table


def segment(video: str, k: int, bounds: np.ndarray, label: float, words: Entry, text: np.ndarray,
            streams: dict[str, Entry]) -> Segment:
    """The ``k``-th labelled segment of ``video`` (``bounds = [start, end)``); ``text (T_words, d_l)`` the
    word vectors of the rows of ``words``."""
    start, end = bounds

    def rows(midpoints: np.ndarray) -> np.ndarray:
        chosen = np.flatnonzero((midpoints >= start) & (midpoints < end))
        return chosen[np.argsort(midpoints[chosen], kind="stable")]

    spoken = np.array([not is_pause(w) for w in words.features[:, 0]], dtype=bool)
    kept = rows(np.where(spoken, words.midpoints, np.nan))
    kept = kept[np.argsort(words.intervals[kept, 0], kind="stable")]
    intervals = words.intervals[kept]
    frames, times, tables = {}, {}, {}
    for m in ALIGNED:
        chosen = rows(streams[m].midpoints)
        frames[m], times[m] = streams[m].features[chosen], streams[m].midpoints[chosen]
        tables[m] = frame_words(intervals, times[m])
    return Segment(f"{video}[{k}]", label, [str(w) for w in words.features[kept, 0]], text[kept], intervals,
                   frames, times, tables)


def word_vectors(words: Entry, text: Entry, where: str, words_path: Path) -> np.ndarray:
    """``(T_words, d_l)``: the word-vector row of each word, matched by interval (a vector sequence may
    hold the silences too, as the SDK's ``..._with_SP`` files do, or only the words); zeros for ``sp``."""
    if len(text.intervals) == len(words.intervals) and np.allclose(text.intervals, words.intervals, atol=1e-6):
        return text.features
    rows = {tuple(np.round(interval, 4)): i for i, interval in enumerate(text.intervals)}
    vectors = np.zeros((len(words.intervals), text.features.shape[1]), dtype=np.float32)
    for i, (word, interval) in enumerate(zip(words.features[:, 0], words.intervals)):
        if is_pause(word):
            continue
        row = rows.get(tuple(np.round(interval, 4)))
        if row is None:
            raise CsdError(f"{where}: no word vector for the word {str(word)!r} at {interval[0]:.3f}-{interval[1]:.3f} s "
                           f"of {words_path}")
        vectors[i] = text.features[row]
    return vectors


def read_folds(path: str | os.PathLike) -> dict[str, str]:
    """``{id: split}`` from a file of ids: JSON ``{"train": [...], "valid": [...], "test": [...]}``, or the
    SDK's standard folds module (``cmu_mosi_std_folds.py``, ``cmu_mosei_std_folds.py``: its
    ``standard_{train,valid,test}_fold`` lists, read as literals, never run). Ids are video ids or
    segment ids ``<video>[<k>]``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix == ".py":
            found = {SDK_FOLDS[node.targets[0].id]: ast.literal_eval(node.value) for node in ast.parse(text).body
                     if isinstance(node, ast.Assign) and len(node.targets) == 1
                     and isinstance(node.targets[0], ast.Name) and node.targets[0].id in SDK_FOLDS}
        else:
            found = json.loads(text)
    except (SyntaxError, ValueError) as error:
        raise UserError(f"{path}: not a file of folds ({one_line(error)})") from None
    if not isinstance(found, dict) or not found or set(found) - set(SPLITS):
        names = sorted(found) if isinstance(found, dict) else type(found).__name__
        raise UserError(f"{path}: expected folds named among {list(SPLITS)} (or the SDK's {sorted(SDK_FOLDS)}), found {names}")
    folds = {}
    for split, ids in found.items():
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise UserError(f"{path}: fold {split!r} should be a list of id strings")
        for i in ids:
            if folds.setdefault(i, split) != split:
                raise UserError(f"{path}: id {i!r} is in both {folds[i]!r} and {split!r}")
    return folds


def _open_all(paths: dict[str, str | os.PathLike]) -> dict[str, ComputationalSequence]:
    missing = [s for s in SEQUENCES if s not in paths]
    if missing:
        raise UserError(f"missing sequence(s) {missing}")
    opened = {}
    try:
        for name in SEQUENCES:
            opened[name] = ComputationalSequence(paths[name])
    except BaseException:
        for sequence in opened.values():
            sequence.close()
        raise
    return opened


def _segments(sequences: dict[str, ComputationalSequence], progress: bool, skipped: dict[str, list[str]]):
    """Every buildable segment, video by video in the labels' order."""
    labels = sequences["labels"]
    # on a terminal only, and cleared when done (or on an error, before it is printed)
    with tqdm(labels.videos, desc="videos", unit="video", disable=None if progress else True, leave=False) as videos:
        for video in videos:
            yield from _video_segments(sequences, video, skipped)


def _video_segments(sequences: dict[str, ComputationalSequence], video: str, skipped: dict[str, list[str]]):
    """The buildable segments of one video; the others go to ``skipped``."""
    marks = sequences["labels"].read(video)
    ids = [f"{video}[{k}]" for k in range(len(marks.intervals))]
    absent = [s for s in SEQUENCES[:-1] if video not in sequences[s]]
    if absent:
        skipped[f"video missing from {' and '.join(absent)}"] += ids
        return
    words, text = sequences["words"].read(video), sequences["text"].read(video)
    if words.features.dtype.kind != "U":
        raise CsdError(f"{sequences['words'].path}: video {video!r}: features should be words, got numbers")
    streams = {m: sequences[m].read(video) for m in ALIGNED}
    for m, entry in (("text", text), *streams.items(), ("labels", marks)):
        if entry.features.dtype.kind == "U" or entry.features.shape[1] == 0:
            raise CsdError(f"{sequences[m].path}: video {video!r}: features should be numbers, got "
                           f"{'words' if entry.features.shape[1] else 'no column'}")
    vectors = word_vectors(words, text, f"{sequences['text'].path}: video {video!r}", sequences["words"].path)
    for k, bounds in enumerate(marks.intervals):
        found = segment(video, k, bounds, float(marks.features[k, 0]), words, vectors, streams)
        empty = [m for m, n in (("words", len(found.words)), *((m, len(found.times[m])) for m in ALIGNED)) if n == 0]
        if empty:
            skipped[f"no {' and no '.join(empty)} in the segment"].append(found.id)
        else:
            yield found


def _pad(rows: list[np.ndarray], length: int, fill, dtype) -> np.ndarray:
    out = np.full((len(rows), length, *rows[0].shape[1:]) if rows else (0, length), fill, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _assemble(by_split: dict[str, list[Segment]], widths: dict[str, int]) -> tuple[dict, dict]:
    everything = [s for segments in by_split.values() for s in segments]
    lengths = {"text": max(len(s.words) for s in everything), **{m: max(len(s.times[m]) for s in everything) for m in ALIGNED}}
    data, correspondence = {}, {}
    for split in SPLITS:
        segments = by_split.get(split, [])
        n = len(segments)

        def features(rows, m):
            return _pad(rows, lengths[m], 0, np.float32) if n else np.zeros((0, lengths[m], widths[m]), np.float32)

        data[split] = {
            "text": features([s.text for s in segments], "text"),
            **{m: features([s.frames[m] for s in segments], m) for m in ALIGNED},
            **{f"{m}_lengths": np.array([len(s.words) if m == "text" else len(s.times[m]) for s in segments], dtype=np.int64)
               for m in ("text", *ALIGNED)},
            "regression_labels": np.array([s.label for s in segments], dtype=np.float32),
            "id": np.array([s.id for s in segments], dtype=object),
            "raw_text": np.array([" ".join(s.words) for s in segments], dtype=object),
        }
        for m in ALIGNED:
            correspondence[f"{split}_{m}"] = _pad([s.tables[m] for s in segments], lengths[m], PADDING, np.int16)
            correspondence[f"{split}_{m}_times"] = _pad([s.times[m] for s in segments], lengths[m], np.nan, np.float32)
        intervals = np.full((n, lengths["text"], 2), np.nan, dtype=np.float32)
        for i, s in enumerate(segments):
            intervals[i, : len(s.words)] = s.word_intervals
        correspondence[f"{split}_word_intervals"] = intervals
    return data, correspondence


def build(paths: dict[str, str | os.PathLike], folds: dict[str, str] | None = None, unassigned: str = "train",
          progress: bool = False, limits: dict[str, int] | None = None) -> Built:
    """Build our data format from the computational sequences ``paths[name]`` for each name in
    :data:`SEQUENCES` (``words``, ``text`` word vectors, ``audio``, ``vision``, ``labels``).

    ``folds`` maps video or segment ids to a split (:func:`read_folds`; a segment id wins over its
    video's); a segment in no fold goes to ``unassigned``. ``limits`` caps the words (``"text"``) or
    frames (``"audio"``, ``"vision"``) kept per segment (:func:`cut`; ``Built.cut`` counts the segments
    cut per modality), else every sequence is padded to its longest segment. The correspondence holds, per split,
    ``{split}_{audio,vision}`` ``(N, T_m)`` int16 tables, ``{split}_{audio,vision}_times`` the frames'
    midpoints and ``{split}_word_intervals (N, T_l, 2)`` the words' intervals (seconds, NaN on padding)."""
    if unassigned not in SPLITS:
        raise UserError(f"unassigned: unknown split {unassigned!r}; choose one of {list(SPLITS)}")
    folds, limits = folds or {}, limits or {}
    if any(n < 1 for n in limits.values()):
        raise UserError(f"limits must be at least 1, got {limits}")
    sequences = _open_all(paths)
    try:
        by_split, skipped, widths, counted, cuts = defaultdict(list), defaultdict(list), {}, 0, defaultdict(int)
        for found in _segments(sequences, progress, skipped):
            found, over = cut(found, limits)
            for m in over:
                cuts[m] += 1
            split = folds.get(found.id) or folds.get(found.id.rsplit("[", 1)[0])
            counted += split is None
            by_split[split or unassigned].append(found)
            for m, rows in (("text", found.text), *((m, found.frames[m]) for m in ALIGNED)):
                if widths.setdefault(m, rows.shape[1]) != rows.shape[1]:
                    raise CsdError(f"{sequences[m].path}: segment {found.id}: {rows.shape[1]} features per row, "
                                   f"other videos have {widths[m]}")
        if not by_split:
            reasons = "; ".join(f"{reason}: {len(ids)}" for reason, ids in skipped.items()) or "the labels hold no segment"
            raise CsdError(f"{sequences['labels'].path}: no segment could be built ({reasons})")
        replaced = {name: s.replaced_neg_inf for name, s in sequences.items()}
    finally:
        for sequence in sequences.values():
            sequence.close()
    data, correspondence = _assemble(by_split, widths)
    return Built(data, correspondence, {s: len(by_split.get(s, [])) for s in SPLITS}, counted, dict(skipped), replaced,
                 dict(cuts))
