"""A small, made-up set of computational sequences in CMU-MultimodalSDK's layout (``data_samples/csd_synthetic``):
SYNTHETIC, not CMU-MOSI or any real recording; it exists to show and test the path from ``.csd`` files
to our data format (:mod:`alignlib.data.from_sdk`) without downloading anything.

Each video is a few labelled segments of spoken words with silences (``sp``) between them. A word has
a made-up vector (its "GloVe" row); every acoustic frame (20 per second, 5 features) and visual frame
(15 per second, 6 features) shows a noisy linear view of the word being spoken, and noise in a
pause, so the true frame-to-word tables can be recovered from the features. Regenerate with
``python -m alignlib.data.csd_sample --out data_samples/csd_synthetic`` (the same seed writes the same arrays).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from alignlib.common.files import atomic_write_json
from alignlib.data.csd import PAUSE, write_csd

VOCABULARY = ("good", "bad", "film", "plot", "actor", "really", "not", "great", "boring", "fun", "story", "ok")
RATES = {"audio": 20.0, "vision": 15.0}  # frames per second
WIDTHS = {"text": 8, "audio": 5, "vision": 6}
FILES = {"words": "words.csd", "text": "word_vectors.csd", "audio": "acoustic.csd", "vision": "visual.csd",
         "labels": "labels.csd"}
DESCRIPTION = "SYNTHETIC sample made by alignlib.data.csd_sample; not real data"


def _timeline(rng: np.random.Generator, n_segments: int):
    """Words ``[(word, start, end)]`` (``sp`` for silences) and segment bounds ``[(start, end)]`` of one video."""
    words, segments, time = [], [], 0.0
    for _ in range(n_segments):
        start = time
        for _ in range(int(rng.integers(3, 7))):
            if rng.random() < 0.4:
                pause = float(rng.uniform(0.1, 0.5))
                words.append((PAUSE, time, time + pause))
                time += pause
            duration = float(rng.uniform(0.15, 0.6))
            words.append((str(rng.choice(VOCABULARY)), time, time + duration))
            time += duration
        pause = float(rng.uniform(0.2, 0.6))
        words.append((PAUSE, time, time + pause))
        time += pause
        segments.append((start, time))
    return words, segments


def _frames(words, duration: float, rate: float, view: np.ndarray, vectors: dict, rng: np.random.Generator):
    """Frames at ``rate`` per second over ``duration``: the spoken word's vector seen through ``view``, plus noise."""
    starts = np.arange(int(duration * rate)) / rate
    intervals = np.c_[starts, starts + 1 / rate]
    features = 0.4 * rng.standard_normal((len(starts), view.shape[1]))
    for word, start, end in words:
        inside = (intervals.mean(1) >= start) & (intervals.mean(1) < end)
        if word != PAUSE:
            features[inside] += vectors[word] @ view
    return features.astype(np.float32), intervals


def generate(seed: int = 0, n_videos: int = 4) -> tuple[dict, dict]:
    """``(entries, folds)``: ``entries[sequence][video] = (features, intervals)`` for each of :data:`FILES`,
    and ``folds`` ``{"train": [...], "valid": [...], "test": [...]}`` of video ids."""
    rng = np.random.default_rng(seed)
    vectors = {w: rng.standard_normal(WIDTHS["text"]).astype(np.float32) for w in VOCABULARY}
    polarity = {w: float(rng.choice([-1.0, 0.0, 1.0])) for w in VOCABULARY}
    views = {m: rng.standard_normal((WIDTHS["text"], WIDTHS[m])) / np.sqrt(WIDTHS["text"]) for m in RATES}
    entries = {name: {} for name in FILES}
    for v in range(n_videos):
        video = f"synth{v:02d}"
        words, segments = _timeline(rng, int(rng.integers(2, 4)))
        intervals = np.array([(s, e) for _, s, e in words])
        entries["words"][video] = (np.array([w for w, _, _ in words])[:, None], intervals)
        entries["text"][video] = (np.array([np.zeros(WIDTHS["text"], np.float32) if w == PAUSE else vectors[w]
                                            for w, _, _ in words]), intervals)
        for m, rate in RATES.items():
            entries[m][video] = _frames(words, segments[-1][1], rate, views[m], vectors, rng)
        labels = [np.clip(sum(polarity[w] for w, s, e in words if w != PAUSE and a <= (s + e) / 2 < b), -3, 3)
                  for a, b in segments]
        entries["labels"][video] = (np.array(labels, dtype=np.float32)[:, None], np.array(segments))
    videos = sorted(entries["labels"])
    return entries, {"train": videos[:-2], "valid": videos[-2:-1], "test": videos[-1:]}


def write(folder: str | Path, seed: int = 0, n_videos: int = 4) -> dict[str, Path]:
    """Write the sample's five ``.csd`` files and ``folds.json`` into ``folder``; returns their paths by sequence."""
    folder = Path(folder)
    entries, folds = generate(seed, n_videos)
    dimensions = {"words": ["word"], "text": [f"vector_{i}" for i in range(WIDTHS["text"])],
                  "audio": [f"acoustic_{i}" for i in range(WIDTHS["audio"])],
                  "vision": [f"visual_{i}" for i in range(WIDTHS["vision"])], "labels": ["sentiment"]}
    paths = {}
    for name, file in FILES.items():
        metadata = {"root name": name, "computational sequence description": DESCRIPTION,
                    "dimension names": dimensions[name], "dataset name": "alignlib synthetic sample (not real data)",
                    "computational sequence version": "1.0", "creator": "alignlib.data.csd_sample"}
        paths[name] = write_csd(folder / file, name, entries[name], metadata)
    paths["folds"] = atomic_write_json(folder / "folds.json", folds)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alignlib.data.csd_sample", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the .csd files and folds.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write(args.out, args.seed)
    print(json.dumps({name: str(path) for name, path in paths.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
