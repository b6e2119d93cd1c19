"""Helpers every layer of alignlib uses.

* :mod:`~alignlib.common.checks` -- input validation with errors that name the argument;
* :mod:`~alignlib.common.errors` -- :class:`~alignlib.common.errors.UserError`, a user's mistake
  (command lines print it as one line and exit 2; anything else is a bug, with its traceback);
* :mod:`~alignlib.common.files` -- atomic file writes (a reader or a crash never sees half a file);
* :mod:`~alignlib.common.sequences` -- padded sequences: packing real tokens first, masked means,
  proportional windows.
"""
