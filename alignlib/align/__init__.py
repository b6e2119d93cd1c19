"""Alignment maths on token sets ``(B, T, d)`` with padding masks ``(B, T)``.

* :mod:`~alignlib.align.ot` -- local alignment: transport plans (one dispatcher, :func:`~alignlib.align.ot.plan`,
  over the methods ``exact``, ``entropic``, ``relaxed``, ``proportional``), the OT loss and the blur ``BLUR``;
* :mod:`~alignlib.align.mmd` -- global alignment: MMD estimators, the permutation test and the closed
  form for Gaussians.
"""
