"""A synthetic multimodal sentiment benchmark in MMSA's pickle format, where alignment matters.

Each clip is a sequence of words. Every word ``j`` has a content vector ``e_j`` and three cues:

* a polarity ``p_j`` in {-1, 0, +1}, seen only in the **language** tokens;
* an emphasis ``q_j`` in {0, 1}, seen only in the **audio** frames of that word;
* a "flip" cue ``f_j`` in {0, 1} (a smirk that turns the word ironic), seen only in the **video**
  frames of that word; the video also shows a clip-wide mood ``g``.

The label is ``y = clip(1.2 * sum_j p_j (1 + q_j)(1 - 2 f_j) / sqrt(1 + #sentiment words) + 0.5 g + noise)``,
rounded to thirds. Language matters most; audio and video change it only through the word they
co-occur with, so a model has to know which frames belong to which word. Audio and video are
time-warped, differently sampled views of the word sequence (each frame shows part of its word's
content), with their own widths, scales, offsets and rotations. The frame-to-word correspondence is
saved beside the data (``FILE.correspondence.npz``) with every word's cues and the clip's mood, so
reference predictors (:func:`alignlib.data.references.score_references`) can say what knowing them is worth.

Four difficulty knobs (:class:`Difficulty`, recorded in the ``.correspondence.npz``) move the data
away from the monotone, every-frame-on-a-word model; at 0 each leaves the data exactly as it was:

* ``pause`` -- the share of each clip's audio and video frames that belong to no word (silences
  before, between and after the words): no content and no cue (video keeps the mood), table entry
  :data:`~alignlib.data.NO_WORD`;
* ``skip`` -- the share of a clip's words that get no frame in a modality (drawn per modality);
* ``faint`` -- how much of its word's content a frame loses (0: a frame shows 0.7 of it; 1: none);
* ``nonlinear`` -- frames are a mix ``(1 - k) * linear map + k * network`` of their latent, the
  network a fixed random two-layer ``tanh`` perceptron per modality.

The knobs draw their randomness from streams of their own, so a seed gives the same words, cues,
labels, frame counts and noise at every knob setting; only the frames' words and content change.
"""
from __future__ import annotations

import math
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from alignlib.common.errors import UserError
from alignlib.common.files import atomic_open
from alignlib.data.mmsa import ALIGNED, NO_WORD, PADDING, read_npz

PRESETS = {
    "tiny": dict(splits=(96, 32, 32), lengths=dict(text=16, audio=40, vision=48), dims=dict(text=32, audio=5, vision=20)),
    "mosi": dict(splits=(1284, 229, 686), lengths=dict(text=50, audio=375, vision=500), dims=dict(text=768, audio=5, vision=20)),
    # mosi's clips and widths with tiny's sequence lengths: 8-16 words, ~3 frames a word, the same
    # warps, cues and labels; converged training of every model is ~10x cheaper than on mosi
    "short": dict(splits=(1284, 229, 686), lengths=dict(text=16, audio=40, vision=48), dims=dict(text=768, audio=5, vision=20)),
    "mosei": dict(splits=(16326, 1871, 4659), lengths=dict(text=50, audio=500, vision=500), dims=dict(text=768, audio=74, vision=35)),
}
CONTENT = 8  # width of the latent word content
LABEL_NOISE = 0.2  # the standard deviation of the label's Gaussian noise, before clipping and rounding to thirds


def noiseless_score(polarity, emphasis, flip, mood):
    """The label before its noise: ``1.2 * sum_j p_j (1 + q_j)(1 - 2 f_j) / sqrt(1 + #sentiment words) + 0.5 g``
    (one clip's word cues ``(W,)``, or a batch ``(N, W)`` with ``mood`` ``(N,)``; padding words are 0)."""
    polarity, emphasis, flip = (np.asarray(c) for c in (polarity, emphasis, flip))
    sentiment = polarity * (1 + emphasis) * (1 - 2 * flip)
    return 1.2 * sentiment.sum(-1) / np.sqrt(1 + np.count_nonzero(polarity, axis=-1)) + 0.5 * mood


WORD_CUES = ("polarity", "emphasis", "flip")  # saved per word beside the correspondence, with the clip's mood
KNOB_LIMITS = {"pause": 0.9, "skip": 0.9, "faint": 1.0, "nonlinear": 1.0}  # each knob's range is [0, limit]
HIDDEN = 32  # width of the non-linear map's hidden layer
VISIBLE = 0.7  # the share of its word's content a frame shows at faint 0


@dataclass(frozen=True)
class Difficulty:
    """The generator's difficulty knobs (see the module's docstring); all 0: the original benchmark."""

    pause: float = 0.0
    skip: float = 0.0
    faint: float = 0.0
    nonlinear: float = 0.0

    def __post_init__(self):
        for name, limit in KNOB_LIMITS.items():
            value = getattr(self, name)
            if not 0.0 <= value <= limit:  # NaN fails too
                raise UserError(f"{name}: must be in [0, {limit}], got {value}")

    @property
    def suffix(self) -> str:
        """``_pause0.2_skip0.1`` for the knobs that are not 0 (empty for the original benchmark)."""
        return "".join(f"_{name}{value:g}" for name, value in asdict(self).items() if value)


def split_sizes(preset: str, n_clips: int | None) -> tuple[int, int, int]:
    """Train/valid/test sizes of a preset, scaled to ``n_clips`` in the preset's proportions."""
    sizes = PRESETS[preset]["splits"]
    if n_clips is None:
        return sizes
    if n_clips < 3:
        raise UserError(f"--n must be at least 3 (one clip per split), got {n_clips}")
    total = sum(sizes)
    scaled = [max(1, round(n_clips * s / total)) for s in sizes]
    scaled[0] += n_clips - sum(scaled)
    return tuple(scaled)


def estimated_bytes(preset: str, n_clips: int | None = None) -> int:
    """Size of the float32 features of a generated file."""
    spec = PRESETS[preset]
    per_clip = sum(spec["lengths"][m] * spec["dims"][m] for m in spec["dims"]) * 4
    return per_clip * sum(split_sizes(preset, n_clips))


def _warp(n_frames: int, n_words: int, rng: np.random.Generator) -> np.ndarray:
    """A random monotone map from ``n_frames`` frames onto ``n_words`` words."""
    strength = rng.uniform(-1.5, 1.5)
    s = (np.arange(n_frames) + 0.5) / n_frames
    phi = s if abs(strength) < 1e-6 else np.expm1(strength * s) / math.expm1(strength)
    return np.minimum((phi * n_words).astype(np.int64), n_words - 1)


def _frame_words(n_frames: int, n_words: int, rng: np.random.Generator, difficulty: Difficulty,
                 streams: dict[str, np.random.Generator]) -> np.ndarray:
    """``(n_frames,)`` the word of each frame: the warp of :func:`_warp` (one draw from ``rng``) over
    the words that are not skipped, with ``round(pause * n_frames)`` :data:`NO_WORD` frames spread
    over the gaps before, between and after them (clumped: gap shares from a Dirichlet(0.5))."""
    if not (difficulty.pause or difficulty.skip):
        return _warp(n_frames, n_words, rng)
    kept = np.arange(n_words)
    if difficulty.skip:
        skipped = streams["skip"].choice(n_words, size=min(round(difficulty.skip * n_words), n_words - 1), replace=False)
        kept = np.setdiff1d(kept, skipped)
    n_pause = min(round(difficulty.pause * n_frames), n_frames - 1)
    rank = _warp(n_frames - n_pause, len(kept), rng)  # the place of each word frame's word among the kept ones
    words = kept[rank]
    if n_pause:
        gaps = streams["pause"].multinomial(n_pause, streams["pause"].dirichlet(np.full(len(kept) + 1, 0.5)))
        words = np.insert(words, np.repeat(np.searchsorted(rank, np.arange(len(kept) + 1)), gaps), NO_WORD)
    return words


def _networks(spec: dict, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per aligned modality a fixed random two-layer map ``tanh(v W1 + b1) W2`` of the frame latent
    (``W1 (k, HIDDEN)``, ``b1 (HIDDEN,)``, ``W2 (HIDDEN, width)``), from a stream of its own."""
    rng = np.random.default_rng([seed, 3])
    inputs = {"audio": 4 + 1, "vision": 4 + 2}
    # gain 4 saturates tanh: the best linear read-out of the content from the network's output keeps
    # about 0.6 of its variance, a nearest-neighbour one 0.8; the output's scale matches the linear map's
    return {m: (rng.standard_normal((k, HIDDEN)) * 4 / math.sqrt(k), rng.standard_normal(HIDDEN),
                rng.standard_normal((HIDDEN, spec["dims"][m])) / math.sqrt(HIDDEN)) for m, k in inputs.items()}


def _maps(spec: dict, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Per-modality linear maps (latent -> features), offsets and scales, fixed for the dataset."""
    dims = spec["dims"]
    inputs = {"text": CONTENT + 1, "audio": 4 + 1, "vision": 4 + 2}
    scales = {"text": 1.0, "audio": 10.0, "vision": 0.5}
    maps = {}
    for modality, width in dims.items():
        matrix = rng.standard_normal((inputs[modality], width)) / math.sqrt(inputs[modality])
        maps[modality] = (matrix, rng.standard_normal(width) * (3.0 if modality == "audio" else 1.0), scales[modality])
    return maps


def _clip(spec, maps, rng, difficulty=Difficulty(), streams=None, networks=None):
    lengths = spec["lengths"]
    n_words = int(rng.integers(lengths["text"] // 2, lengths["text"] + 1))
    content = rng.standard_normal((n_words, CONTENT))
    polarity = rng.choice([-1.0, 0.0, 1.0], size=n_words, p=[0.15, 0.7, 0.15])
    emphasis = (rng.random(n_words) < 0.3).astype(float)
    flip = (rng.random(n_words) < 0.15).astype(float)
    mood = rng.standard_normal()

    features, lengths_out, correspondence = {}, {}, {}
    latent = {"text": np.c_[content, 2.0 * polarity]}
    for modality in ALIGNED:
        n_frames = int(rng.integers(int(0.6 * lengths[modality]), lengths[modality] + 1))
        word = _frame_words(n_frames, n_words, rng, difficulty, streams)
        on = np.maximum(word, 0)  # pause frames read word 0 here and are blanked below
        visible = VISIBLE * (1 - difficulty.faint)
        if modality == "audio":
            latent[modality] = np.c_[visible * content[on, :4], 3.0 * emphasis[on]]
        else:
            latent[modality] = np.c_[visible * content[on, 4:], 3.0 * flip[on], np.full(n_frames, mood)]
        latent[modality][word == NO_WORD, :5] = 0.0  # a pause shows no content and no cue (video keeps the mood)
        correspondence[modality] = word
    for modality, values in latent.items():
        matrix, offset, scale = maps[modality]
        image = values @ matrix
        if difficulty.nonlinear and modality != "text":
            first, bias, second = networks[modality]
            image = (1 - difficulty.nonlinear) * image + difficulty.nonlinear * (np.tanh(values @ first + bias) @ second)
        tokens = scale * (image + offset + 0.3 * rng.standard_normal((len(values), matrix.shape[1])))
        padded = np.zeros((lengths[modality], matrix.shape[1]), dtype=np.float32)
        padded[: len(tokens)] = tokens
        features[modality], lengths_out[modality] = padded, len(tokens)

    score = noiseless_score(polarity, emphasis, flip, mood) + LABEL_NOISE * rng.standard_normal()
    label = np.round(np.clip(score, -3, 3) * 3) / 3
    cues = {"polarity": polarity, "emphasis": emphasis, "flip": flip, "mood": mood}
    return features, lengths_out, correspondence, label, cues


def generate(preset: str = "tiny", seed: int = 0, n_clips: int | None = None, **knobs: float) -> tuple[dict, dict]:
    """Generate a dataset: ``(mmsa_dict, correspondence)`` where ``mmsa_dict`` has MMSA's layout and
    ``correspondence[f"{split}_{audio|vision}"]`` is ``(N, T)`` int16, the word index of each frame
    (:data:`~alignlib.data.PADDING` -1 on padding, :data:`~alignlib.data.NO_WORD` -2 on a pause);
    ``correspondence[f"{split}_{polarity|emphasis|flip}"]`` ``(N, T_l)`` float32 the latent cues of
    each word (NaN on padding), ``correspondence[f"{split}_mood"]`` ``(N,)`` the clip's mood and
    ``correspondence[f"difficulty_{knob}"]`` the knobs (``pause``, ``skip``, ``faint``, ``nonlinear``
    given as keywords; :class:`Difficulty`)."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    difficulty = Difficulty(**knobs)
    spec = PRESETS[preset]
    rng = np.random.default_rng(seed)
    maps = _maps(spec, rng)
    streams = {"pause": np.random.default_rng([seed, 1]), "skip": np.random.default_rng([seed, 2])}
    networks = _networks(spec, seed) if difficulty.nonlinear else None
    data, correspondence = {}, {f"difficulty_{name}": np.float64(value) for name, value in asdict(difficulty).items()}
    for split, size in zip(("train", "valid", "test"), split_sizes(preset, n_clips)):
        clips = [_clip(spec, maps, rng, difficulty, streams, networks) for _ in range(size)]
        data[split] = {
            "text": np.stack([c[0]["text"] for c in clips]),
            "audio": np.stack([c[0]["audio"] for c in clips]),
            "vision": np.stack([c[0]["vision"] for c in clips]),
            "audio_lengths": np.array([c[1]["audio"] for c in clips]),
            "vision_lengths": np.array([c[1]["vision"] for c in clips]),
            "regression_labels": np.array([c[3] for c in clips], dtype=np.float32),
            "id": np.array([f"{preset}-{seed}-{split}-{i}" for i in range(size)]),
            "raw_text": np.array([" ".join(["w"] * c[1]["text"]) for c in clips]),
        }
        for modality in ALIGNED:
            table = np.full((size, spec["lengths"][modality]), PADDING, dtype=np.int16)
            for i, clip in enumerate(clips):
                table[i, : clip[1][modality]] = clip[2][modality]
            correspondence[f"{split}_{modality}"] = table
        for cue in WORD_CUES:
            table = np.full((size, spec["lengths"]["text"]), np.nan, dtype=np.float32)
            for i, clip in enumerate(clips):
                table[i, : clip[1]["text"]] = clip[4][cue]
            correspondence[f"{split}_{cue}"] = table
        correspondence[f"{split}_mood"] = np.array([c[4]["mood"] for c in clips], dtype=np.float32)
    return data, correspondence


def correspondence_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".correspondence.npz")


def write(path: str | Path, data: dict, correspondence: dict) -> Path:
    """Write the pickle and its ``.correspondence.npz`` atomically."""
    with atomic_open(path) as handle:
        pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
    with atomic_open(correspondence_path(path)) as handle:
        np.savez_compressed(handle, **correspondence)
    return Path(path)


def load_correspondence(path: str | Path) -> dict[str, np.ndarray]:
    """The frame-to-word tables saved beside a generated or converted file."""
    return read_npz(correspondence_path(path))


def difficulty(path: str | Path) -> Difficulty:
    """The knobs a generated file was made with (all 0 for a file made before the knobs)."""
    tables = load_correspondence(path)
    return Difficulty(**{name: float(tables.get(f"difficulty_{name}", 0.0)) for name in KNOB_LIMITS})
