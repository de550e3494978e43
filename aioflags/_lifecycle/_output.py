"""What the lifecycle commands print: a line on stdout or stderr, whatever a path holds.

A file name may hold bytes that are not text (``os.fsdecode`` makes them
lone surrogates): printed as they are, they would end the command with a
``UnicodeEncodeError``. They are written escaped instead.
"""

from __future__ import annotations

import sys

__all__ = ["say"]


def say(text: str, *, err: bool = False, end: str = "\n") -> None:
    """Print ``text``; what the stream cannot encode (a path's stray byte) escaped."""
    stream = sys.stderr if err else sys.stdout
    encoding = stream.encoding or "utf-8"
    text = text.encode(encoding, "backslashreplace").decode(encoding)
    print(text, file=stream, end=end)
