"""One checkpoint format for a trained sentiment model, and its one loader.

A checkpoint is a dict of plain data and tensors, written atomically by :func:`save_checkpoint`
and read by :func:`read_checkpoint` with ``torch.load(..., weights_only=True)``, so a file from
elsewhere cannot run code:

* ``format``: :data:`FORMAT`;
* ``model_name``, ``dims`` (``{modality: feature width}``) and ``config`` (the run's
  :class:`alignlib.train.TrainConfig` as a dict, ``model_options`` the
  :class:`~alignlib.models.sentiment.ModelConfig`): what rebuilds the model (:func:`load_model`);
* ``model``: its weights, a state dict of tensors;
* ``optimizer``, ``scheduler`` (state dicts), ``rng``, ``cuda_rng`` (tensors), ``epoch`` (from 0),
  ``best`` (the best validation MAE so far) and ``stale`` (epochs since): the trainer's state, to
  resume from.

A file that is missing, truncated or not such a checkpoint raises :class:`CheckpointError` with a
one-line message.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn

from alignlib.common.errors import UserError
from alignlib.common.files import atomic_open
from alignlib.models.sentiment import ModelConfig, build_model

FORMAT = "alignlib checkpoint 1"


class CheckpointError(UserError):
    """A checkpoint that cannot be used: missing, unreadable, or made for another model or data."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` (the keys above but ``format``) to ``path``: serialised in memory first, then
    written atomically, so a failure leaves the old file intact."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    with atomic_open(path) as handle:
        handle.write(buffer.getvalue())


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint at ``path``, its tensors on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged or foreign files
        reason = (str(error).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(error).__name__}: {reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an alignlib checkpoint ({FORMAT!r})")
    return state


def load_model(path: str | os.PathLike, checkpoint: str = "best.pt") -> tuple[nn.Module, dict]:
    """The model saved at ``path`` (a ``.pt`` file, or a run folder holding ``checkpoint``), in eval
    mode on the CPU, and its checkpoint (:func:`read_checkpoint`)."""
    path = Path(path)
    state = read_checkpoint(path / checkpoint if path.is_dir() else path)
    model = build_model(state["model_name"], state["dims"], ModelConfig.from_dict(state["config"]["model_options"]))
    model.load_state_dict(state["model"])
    return model.eval(), state
