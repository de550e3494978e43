"""Why a source refused what it was sent, in one line: :func:`cause_of`.

No exception from a document, a payload or a peer ends a source: it fails
that attempt (the last good data stays), and the report says why in one
line, never a traceback. Most refusals are errors the readers raise with
their own words (``FlagFileError``, ``FlagdDocumentError``,
``ProtocolError``); what else reading a document raised is said here.
"""

from __future__ import annotations

__all__ = ["cause_of"]


def cause_of(exc: BaseException) -> str:
    """What ``exc`` says of the document that raised it, in one line."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    if isinstance(exc, MemoryError):
        return "too large to read (out of memory)"
    text = str(exc).strip()
    if isinstance(exc, ValueError):
        for constant in ("NaN", "Infinity"):  # protobuf's words for a Struct's
            if f"serialize {constant}" in text:
                return f"{constant} is not valid JSON"
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
