"""Digit scenes: visual question answering that needs fine detail and spatial relations.

A scene is a 16x16 image made of four of scikit-learn's bundled 8x8 handwritten digits in a 2x2
grid (four distinct classes, one per cell), with one templated question about it:

==============  ============================================  ==========
type            template                                      answer
==============  ============================================  ==========
``digit_at``    which digit is top-left ?                     0-9
``compare``     is the top-left digit larger than the ... ?   yes / no
``relation``    is the 3 left of the 5 ? / is the 3 above ..  yes / no
``count``       how many even digits ? / ... odd digits ?     0-4
``present``     is there a 7 ?  (7 is in the scene)           yes
``absent``      is there a 7 ?  (7 is not in the scene)       no
==============  ============================================  ==========

``present`` and ``absent`` share one template and are drawn equally often, so "is there" cannot be
answered without looking; the false-"yes" rate on ``absent`` is the hallucination probe.
``relation`` draws its answer first (yes or no with equal chance), then a pair of cells that gives it.

The split holds out digit *images*, not just scenes: :func:`image_split` divides the 1797 images
of every class between train and test once (``split_seed``), and test scenes are built only from
test images. Everything is drawn from ``numpy.random.default_rng(seed)``: same arguments, same data.
Pixel values are scaled from 0..16 to [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")  # cell k is at row k // 2, column k % 2
QUESTION_TYPES = ("digit_at", "compare", "relation", "count", "present", "absent")
PAD = "<pad>"
WORDS = (PAD, "which", "digit", "digits", "is", "the", "larger", "than", "left", "of", "above", "how", "many",
         "even", "odd", "there", "a", "?", *POSITIONS, *map(str, range(10)))
ANSWERS = (*map(str, range(10)), "yes", "no")
WORD_INDEX = {word: i for i, word in enumerate(WORDS)}
ANSWER_INDEX = {answer: i for i, answer in enumerate(ANSWERS)}
SCENE_SIZE = 16
SPLITS = ("train", "test")


@dataclass
class DigitScenes:
    """A batch of scenes and questions.

    Attributes:
        images: ``(N, 16, 16)`` float32 in [0, 1].
        tokens: ``(N, T)`` int64 word indices into :data:`WORDS`, right-padded with 0 (``<pad>``).
        mask: ``(N, T)`` bool, True = real word.
        answers: ``(N,)`` int64 indices into :data:`ANSWERS`.
        question_type: ``(N,)`` int64 indices into :data:`QUESTION_TYPES`.
        digits: ``(N, 4)`` int64 class of the digit in each cell (order of :data:`POSITIONS`).
        image_ids: ``(N, 4)`` int64 index of each cell's image in ``sklearn.datasets.load_digits()``.
    """

    images: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    answers: torch.Tensor
    question_type: torch.Tensor
    digits: torch.Tensor
    image_ids: torch.Tensor

    def __len__(self) -> int:
        return len(self.answers)

    def subset(self, index) -> "DigitScenes":
        """The scenes at ``index`` (a slice, an index tensor or a boolean mask)."""
        return DigitScenes(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def batches(self, size: int):
        """Consecutive subsets of at most ``size`` scenes, in order."""
        return (self.subset(slice(start, start + size)) for start in range(0, len(self), size))

    def questions(self) -> list[str]:
        """The questions as text."""
        return [decode(row[m]) for row, m in zip(self.tokens, self.mask)]


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def image_split(test_fraction: float = 0.3, split_seed: int = 0) -> dict[str, np.ndarray]:
    """Indices of scikit-learn's digit images for ``"train"`` and ``"test"``: within every class a
    ``test_fraction`` share of the images goes to test (at least one of each class on both sides)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    _, labels = _digits()
    rng = np.random.default_rng(split_seed)
    train, test = [], []
    for digit in range(10):
        ids = rng.permutation(np.flatnonzero(labels == digit))
        n_test = min(max(1, round(test_fraction * len(ids))), len(ids) - 1)
        test.append(ids[:n_test])
        train.append(ids[n_test:])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


def encode(words: list[str]) -> list[int]:
    """Word indices of a question given as a list of words."""
    unknown = [w for w in words if w not in WORD_INDEX]
    if unknown:
        raise ValueError(f"words not in the vocabulary: {unknown}")
    return [WORD_INDEX[w] for w in words]


def decode(tokens) -> str:
    """A question as text from its word indices (padding dropped)."""
    return " ".join(WORDS[int(t)] for t in tokens if int(t) != 0)


def _question(kind: str, digits: np.ndarray, rng: np.random.Generator) -> tuple[list[str], str]:
    """One question of type ``kind`` about a scene whose cells hold ``digits`` (4,)."""
    if kind == "digit_at":
        cell = rng.integers(4)
        return ["which", "digit", "is", POSITIONS[cell], "?"], str(digits[cell])
    if kind == "compare":
        a, b = rng.choice(4, size=2, replace=False)
        words = ["is", "the", POSITIONS[a], "digit", "larger", "than", "the", POSITIONS[b], "digit", "?"]
        return words, "yes" if digits[a] > digits[b] else "no"
    if kind == "relation":
        relation = ("left", "of") if rng.integers(2) == 0 else ("above",)
        axis = 1 if relation[0] == "left" else 0  # compare columns for "left of", rows for "above"
        want = bool(rng.integers(2))
        pairs = [(a, b) for a in range(4) for b in range(4)
                 if a != b and ((divmod(a, 2)[axis] < divmod(b, 2)[axis]) == want)]
        a, b = pairs[rng.integers(len(pairs))]
        return ["is", "the", str(digits[a]), *relation, "the", str(digits[b]), "?"], "yes" if want else "no"
    if kind == "count":
        parity = "even" if rng.integers(2) == 0 else "odd"
        count = int(np.sum(digits % 2 == (0 if parity == "even" else 1)))
        return ["how", "many", parity, "digits", "?"], str(count)
    pool = digits if kind == "present" else np.setdiff1d(np.arange(10), digits)
    return ["is", "there", "a", str(pool[rng.integers(len(pool))]), "?"], "yes" if kind == "present" else "no"


def make_digit_scenes(n: int, split: str = "train", seed: int = 0, test_fraction: float = 0.3,
                      split_seed: int = 0) -> DigitScenes:
    """``n`` scenes with one question each, built from the ``split``'s digit images.

    Question types cycle through :data:`QUESTION_TYPES` in a shuffled order, so every type has
    ``n // 6`` or ``n // 6 + 1`` questions. Deterministic in all arguments.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    pixels, labels = _digits()
    pool = image_split(test_fraction, split_seed)[split]
    by_class = [pool[labels[pool] == d] for d in range(10)]
    rng = np.random.default_rng(seed)
    kinds = rng.permutation(np.arange(n) % len(QUESTION_TYPES))
    images = np.zeros((n, SCENE_SIZE, SCENE_SIZE), dtype=np.float32)
    digits = np.zeros((n, 4), dtype=np.int64)
    image_ids = np.zeros((n, 4), dtype=np.int64)
    questions, answers = [], []
    for i in range(n):
        digits[i] = rng.choice(10, size=4, replace=False)
        for cell, digit in enumerate(digits[i]):
            image_ids[i, cell] = by_class[digit][rng.integers(len(by_class[digit]))]
            row, col = divmod(cell, 2)
            images[i, 8 * row:8 * row + 8, 8 * col:8 * col + 8] = pixels[image_ids[i, cell]]
        words, answer = _question(QUESTION_TYPES[kinds[i]], digits[i], rng)
        questions.append(encode(words))
        answers.append(ANSWER_INDEX[answer])
    length = max(map(len, questions))
    tokens = torch.zeros(n, length, dtype=torch.int64)
    for i, q in enumerate(questions):
        tokens[i, :len(q)] = torch.tensor(q)
    return DigitScenes(images=torch.from_numpy(images), tokens=tokens, mask=tokens != 0,
                       answers=torch.tensor(answers), question_type=torch.from_numpy(kinds.astype(np.int64)),
                       digits=torch.from_numpy(digits), image_ids=torch.from_numpy(image_ids))
