"""The models built from the alignment maths and the SSM blocks, and the checkpoint format.

* :mod:`~alignlib.models.sentiment` -- the multimodal sentiment models (AlignMamba-1 and -2, Coupled
  Mamba, the baselines): one registry (``build_model``), one interface (a ``Batch`` in,
  ``(prediction, aux_losses)`` out);
* :mod:`~alignlib.models.emma` -- EMMA at teaching scale: a small Mamba multimodal LM with pixel-wise
  alignment and multi-scale feature fusion;
* :mod:`~alignlib.models.checkpoint` -- the one checkpoint format of a trained sentiment model, and
  its loader.
"""
