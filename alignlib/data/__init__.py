"""Data: MMSA-format datasets, the synthetic benchmark, missing modalities.

Command line: ``python -m alignlib.data synth --preset mosi|mosei|tiny --seed S [--n CLIPS] --out FILE``.
"""
from alignlib.data.missing import missing_modality_mask
from alignlib.data.mmsa import MODALITIES, Batch, MalformedDataError, MMSADataset, collate, load_mmsa

__all__ = ["MODALITIES", "Batch", "MalformedDataError", "MMSADataset", "collate", "load_mmsa", "missing_modality_mask"]
