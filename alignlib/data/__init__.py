"""Data, the start of the flow: the features every model reads.

* :mod:`~alignlib.data.mmsa` -- MMSA-format datasets (``load_mmsa``, ``MMSADataset``, ``collate`` ->
  ``Batch``); :mod:`~alignlib.data.missing` -- missing modalities; :mod:`~alignlib.data.sampler` --
  length-aware batches;
* :mod:`~alignlib.data.synthetic` -- the synthetic benchmark with its true frame-to-word
  correspondence; command line ``python -m alignlib.data synth --preset tiny|short|mosi|mosei --seed S
  [--n CLIPS] --out FILE``;
* :mod:`~alignlib.data.csd` -- CMU-MultimodalSDK computational sequences (``.csd``), read and validated;
  :mod:`~alignlib.data.from_sdk` -- real data: ``.csd`` words, word vectors, acoustic, visual and label
  sequences -> our pickle and frame-to-word tables; command line ``python -m alignlib.data csd --words W.csd
  --text T.csd --audio A.csd --vision V.csd --labels L.csd --out FILE [--folds FILE]``;
  :mod:`~alignlib.data.csd_sample` -- a small synthetic ``.csd`` sample in the SDK's layout;
* :mod:`~alignlib.data.warped_pairs` -- token-sequence pairs related by a known monotone time warp;
* :mod:`~alignlib.data.digit_scenes` -- EMMA's digit scenes and their questions.
"""
from alignlib.data.missing import missing_modality_mask
from alignlib.data.mmsa import (MODALITIES, NO_WORD, PADDING, Batch, MalformedDataError, MMSADataset, collate,
                                load_mmsa)

__all__ = ["MODALITIES", "NO_WORD", "PADDING", "Batch", "MalformedDataError", "MMSADataset", "collate", "load_mmsa", "missing_modality_mask"]
