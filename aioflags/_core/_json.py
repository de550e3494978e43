"""JSON values: the alias used wherever flag data appears, and the one strict parser.

Every byte of JSON that reaches aioflags from outside (poll bodies, stream
events, flag files) goes through :func:`parse`, which cannot be crashed: any
input it cannot use raises :class:`ProtocolError`, never ``RecursionError``.
"""

from __future__ import annotations

import json
from typing import Any, Final, NoReturn, TypeAlias

from ._exceptions import ProtocolError

__all__ = [
    "RAW_DATA",
    "RAW_EVENT",
    "RAW_OBJECT",
    "JSONObject",
    "JSONValue",
    "decode_text",
    "parse",
    "raw_decode",
    "raw_object",
]

#: Any JSON value: None, bool, int, float, str, list or dict of JSON values.
#: Kept as ``Any`` on purpose: flag variations are user data whose shape the
#: type checker cannot know, and a recursive union would force every caller to
#: narrow values they already know the shape of.
JSONValue: TypeAlias = Any
JSONObject: TypeAlias = dict[str, Any]


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


# NaN and Infinity are Python extensions, not JSON: a NaN variation would never
# compare equal to itself. The hook runs only when one is met: no cost otherwise.
_DECODER: Final = json.JSONDecoder(parse_constant=_no_constants)


def parse(data: bytes | str) -> JSONValue:
    """Parse one JSON document, strictly: UTF-8 only (RFC 8259), no NaN or Infinity.

    Invalid UTF-8 is an error, never replaced with U+FFFD: a corrupted payload
    must be rejected, not applied.

    The nesting depth is bounded by the interpreter's recursion limit: the C
    scanner counts its recursion and raises ``RecursionError`` past it, which
    is caught here. That costs nothing on the fast path, where a pre-scan of
    the bytes would cost as much as the parse itself.

    Raises:
        ProtocolError: invalid UTF-8, invalid JSON, or nesting too deep; the
            message says which.
    """
    text = decode_text(data) if isinstance(data, bytes) else data
    if text.startswith("\ufeff"):  # a byte-order mark may be ignored (RFC 8259 §8.1)
        text = text[1:]
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ProtocolError("JSON nested too deeply to parse") from None
    except ValueError as exc:  # JSONDecodeError, and too many digits in a number
        raise ProtocolError(f"invalid JSON: {exc}") from None


def decode_text(data: bytes) -> str:
    """UTF-8 bytes as text, strictly (never U+FFFD).

    Raises:
        ProtocolError: invalid UTF-8.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"invalid UTF-8 at byte {exc.start} ({exc.reason})"
        ) from None


def raw_decode(text: str, pos: int) -> tuple[JSONValue, int]:
    """The JSON value at ``text[pos:]`` and where it ends, as strictly as :func:`parse`.

    Raises:
        ProtocolError: invalid JSON there, or nested too deeply.
    """
    try:
        return _DECODER.raw_decode(text, pos)
    except RecursionError:
        raise ProtocolError("JSON nested too deeply to parse") from None
    except ValueError as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None


#: Where a raw change's object sits in its JSON text.
RAW_OBJECT: Final = 0  # the text is the object itself
RAW_EVENT: Final = 1  # an FDv2 event: {"event": ..., "data": {..., "object": {...}}}
RAW_DATA: Final = 2  # an FDv2 event's data: {"kind": ..., "object": {...}}


def raw_object(raw: str, path: int) -> JSONObject:
    """The object in a raw change's text (the text was validated at ingest)."""
    value = json.loads(raw)
    if path == RAW_EVENT:
        value = value["data"]["object"]
    elif path == RAW_DATA:
        value = value["object"]
    found: JSONObject = value  # validated at ingest
    return found
