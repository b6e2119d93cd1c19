"""Helpers every layer of alignlib uses.

* :mod:`~alignlib.common.checks` -- input validation with errors that name the argument;
* :mod:`~alignlib.common.files` -- atomic file writes (a reader or a crash never sees half a file);
* :mod:`~alignlib.common.sequences` -- padded sequences: packing real tokens first, masked means,
  proportional windows.
"""
