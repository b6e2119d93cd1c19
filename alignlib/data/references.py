"""The synthetic benchmark's reference lines: what predictors given the generator's latent cues reach.

The generator saves every word's cues and the clip's mood beside the data
(:func:`alignlib.data.synthetic.load_correspondence`). :func:`score_references` fits scikit-learn's
gradient boosting on four sets of per-clip features of them (:func:`cue_features`) and scores it on
the test split: ``constant`` (the training mean), ``text_only`` (what the words say), ``set_level``
(also the clip's bags of audio and video cues: the best without knowing which frame belongs to
which word) and ``bound`` (also the cues bound to their words: what perfect alignment gives, a cue
oracle). :func:`label_noise_floor` is the analytic floor below them all: the label's own noise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from alignlib.data import synthetic
from alignlib.data.mmsa import load_mmsa
from alignlib.metrics import msa_metrics

REFERENCES = ("constant", "text_only", "set_level", "bound")


def cue_features(cues: dict[str, np.ndarray], split: str, reference: str) -> np.ndarray:
    """``(N, k)`` per-clip features of a reference predictor from the generator's cues
    (:func:`alignlib.data.synthetic.load_correspondence`: per word polarity ``p``, emphasis ``q``,
    flip ``f``; per clip mood ``g``).

    ``text_only``: what the words say (counts of positive and negative words, their sum, the
    label's normalised sum); ``set_level``: also the clip's *bags* of audio and video cues (how many
    emphasised and flipped words, the mood), all that a model that ignores which frame belongs to
    which word can know; ``bound``: also the cues bound to their words (``sum p q``, ``sum p f``,
    ``sum p q f`` and the label's own ``sum p (1 + q)(1 - 2 f) / sqrt(1 + #sentiment words)``)."""
    p, q, f = (np.nan_to_num(cues[f"{split}_{c}"]) for c in synthetic.WORD_CUES)
    mood = cues[f"{split}_mood"]
    words = (~np.isnan(cues[f"{split}_polarity"])).sum(1)
    scale = np.sqrt(1 + (p != 0).sum(1))
    columns = {"constant": [],
               "text_only": [p.sum(1), (p > 0).sum(1), (p < 0).sum(1), words, p.sum(1) / scale]}
    columns["set_level"] = columns["text_only"] + [q.sum(1), f.sum(1), mood, q.sum(1) / words, f.sum(1) / words]
    sentiment = p * (1 + q) * (1 - 2 * f)
    columns["bound"] = columns["set_level"] + [(p * q).sum(1), (p * f).sum(1), (p * q * f).sum(1),
                                               sentiment.sum(1), sentiment.sum(1) / scale]
    if reference not in columns:
        raise ValueError(f"reference: unknown {reference!r}; choose one of {REFERENCES}")
    return np.stack(columns[reference], 1) if columns[reference] else np.zeros((len(mood), 0))


def score_references(path: str | Path, seeds=(0, 1, 2)) -> dict[str, list[dict]]:
    """The reference lines of a synthetic file: ``{reference: [test metrics per seed]}``.

    ``constant`` predicts the training mean; the others are scikit-learn's
    ``HistGradientBoostingRegressor`` (absolute error, early stopping on a seeded tenth of the
    training split) on :func:`cue_features`, fitted on the training split and scored on the test
    split with :func:`alignlib.metrics.msa_metrics`. A model that ignores alignment can at best
    reach ``set_level``; one that binds every cue to its word can reach ``bound``."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    data, cues = load_mmsa(path), synthetic.load_correspondence(path)
    if "train_mood" not in cues:
        raise ValueError(f"{path}: no latent cues beside it (made before the generator saved them); generate it again")
    labels = {s: data.splits[s].labels for s in ("train", "test")}
    found = {}
    for reference in REFERENCES:
        found[reference] = []
        for seed in seeds:
            if reference == "constant":
                prediction = np.full(len(labels["test"]), labels["train"].mean())
            else:
                model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=500, learning_rate=0.05,
                                                      early_stopping=True, random_state=seed)
                model.fit(cue_features(cues, "train", reference), labels["train"])
                prediction = model.predict(cue_features(cues, "test", reference))
            found[reference].append(msa_metrics(prediction.astype(np.float32), labels["test"]))
    return found


def label_noise_floor(cues: dict[str, np.ndarray], split: str = "test") -> float:
    """The expected MAE of the best possible predictor of a synthetic file's ``split`` labels, from its
    cues (:func:`alignlib.data.synthetic.load_correspondence`, or what ``generate`` returns beside the data): the
    label is its noiseless score ``s`` (:func:`alignlib.data.synthetic.noiseless_score`) plus Gaussian
    noise (sd :data:`~alignlib.data.synthetic.LABEL_NOISE`), clipped to [-3, 3] and rounded to thirds,
    so given ``s`` it takes the value ``k/3`` with probability ``Φ((k/3 + 1/6 - s)/σ) - Φ((k/3 - 1/6 - s)/σ)``
    (the ends take the tails). The best prediction of an absolute error is that distribution's median;
    the floor is its expected absolute deviation, averaged over the clips. No model, however aligned,
    has a lower expected MAE; ``bound`` (a model given every cue) sits above it by what its fit misses."""
    from scipy.stats import norm

    p, q, f = (np.nan_to_num(cues[f"{split}_{c}"]) for c in synthetic.WORD_CUES)
    score = synthetic.noiseless_score(p, q, f, cues[f"{split}_mood"])
    values = np.arange(-9, 10) / 3                                            # the labels a clip can take
    edges = np.r_[-np.inf, (values[:-1] + values[1:]) / 2, np.inf]             # rounding's cells; the ends absorb the clip
    cdf = norm.cdf((edges[None, :] - score[:, None]) / synthetic.LABEL_NOISE)
    probability = np.diff(cdf, axis=1)                                         # (N, 19)
    median = values[np.argmax(np.cumsum(probability, axis=1) >= 0.5, axis=1)]  # (N,)
    return float((probability * np.abs(values[None, :] - median[:, None])).sum(1).mean())
