"""A user's mistake, told apart from a bug.

:class:`UserError` is raised for what the person running alignlib can fix: a bad option or value,
missing or malformed data, an unusable checkpoint, a sweep folder in the way. The command lines
print its message as one line ``error: ...`` and exit 2; any other exception is a bug in alignlib
and shows its traceback (exit 1). It is a ``ValueError``, so callers that catch those still do.
"""
from __future__ import annotations


class UserError(ValueError):
    """A mistake of the user's, with a one-line message that names what is wrong."""


class MissingFileError(UserError, FileNotFoundError):
    """A file the user named (or ``$ALIGNLIB_DATA``) does not exist."""


def one_line(error: BaseException) -> str:
    """``"Type: message"`` of ``error`` on one line (a library's message may span several), for the
    one-line errors that wrap it."""
    return " ".join(f"{type(error).__name__}: {error}".split())
