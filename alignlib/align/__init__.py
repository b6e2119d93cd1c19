"""Alignment maths on token sets ``(B, T, d)`` with padding masks ``(B, T)``.

* :mod:`~alignlib.align.ot` -- local alignment: transport plans (one dispatcher, :func:`~alignlib.align.ot.plan`,
  over the methods ``exact``, ``entropic``, ``relaxed``, ``time_prior``, ``proportional``, ``oracle``, ``shuffled``,
  ``monotone``), the OT loss and the blur ``BLUR``;
* :mod:`~alignlib.align.monotone` -- monotone (time-ordered) alignment: the forward-backward
  recursion (optionally with a "no word" state for pauses), the ``monotone`` plan method and
  :class:`~alignlib.align.monotone.MonotoneAligner`, a plan learned without correspondence tables;
* :mod:`~alignlib.align.mmd` -- global alignment: MMD estimators, the permutation test and the closed
  form for Gaussians.
"""

from alignlib.align import monotone  # noqa: E402,F401  (registers the ``monotone`` plan method)
