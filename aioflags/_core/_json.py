"""JSON values: the alias used wherever flag data appears, and the one strict parser.

Every byte of JSON that reaches aioflags from outside (poll bodies, stream
events, flag files) goes through :func:`parse`, which cannot be crashed: any
input it cannot use raises :class:`ProtocolError`, never ``RecursionError``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, NoReturn, TypeAlias

from ._exceptions import ProtocolError

__all__ = [
    "RAW_DATA",
    "RAW_EVENT",
    "RAW_OBJECT",
    "TOO_DEEP",
    "JSONObject",
    "JSONValue",
    "decode_text",
    "parse",
    "parse_or_cut",
    "raw_decode",
    "raw_object",
    "same_json",
    "shallow_decode",
]

#: Any JSON value: None, bool, int, float, str, list or dict of JSON values.
#: Kept as ``Any`` on purpose: flag variations are user data whose shape the
#: type checker cannot know, and a recursive union would force every caller to
#: narrow values they already know the shape of.
JSONValue: TypeAlias = Any
JSONObject: TypeAlias = dict[str, Any]


#: What a value nested past the JSON scanner's recursion limit is refused with.
TOO_DEEP: Final = "JSON nested too deeply to parse"


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
        raise ProtocolError(TOO_DEEP) from None
    except ValueError as exc:  # JSONDecodeError, and too many digits in a number
        raise ProtocolError(f"invalid JSON: {exc}") from None


def parse_or_cut(data: bytes | str) -> tuple[JSONValue, bool]:
    """One JSON document as :func:`parse` reads it, and whether it was read whole.

    A document nested past the scanner's recursion limit, which
    :func:`parse` refuses, is read with each container past 32 levels as
    None (False: see :func:`shallow_decode`), for a caller that can use
    its top (an FDv2 object's kind and key, to name it as unusable).

    Raises:
        ProtocolError: invalid UTF-8 or JSON, or more after the value.
    """
    text = decode_text(data) if isinstance(data, bytes) else data
    if text.startswith("\ufeff"):  # (as parse)
        text = text[1:]
    try:
        return _DECODER.decode(text), True
    except RecursionError:
        pass  # (read shallowly below, outside the handler's frame)
    except ValueError as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None
    value, end = shallow_decode(text)
    if text[_WHITESPACE.match(text, end).end() :]:  # type: ignore[union-attr]
        raise ProtocolError(f"invalid JSON: extra data at char {end}")
    return value, False


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
        raise ProtocolError(TOO_DEEP) from None
    except ValueError as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None


#: How deep the containers :func:`shallow_decode` keeps may nest.
SHALLOW_DEPTH: Final = 32
#: A JSON string, or a bracket (what nesting is counted from).
_TOKENS: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[][{}]')
_CLOSING: Final = {"[": "]", "{": "}"}
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")


def shallow_decode(text: str, pos: int = 0) -> tuple[JSONValue, int]:
    """The JSON value at ``text[pos:]``, each container past 32 levels read as None; where it ends.

    For a value :func:`raw_decode` refuses as nested too deeply (:data:`TOO_DEEP`): what is
    near its top (an FDv2 object's ``kind``, ``key`` and ``version``) can
    still be read, in linear time and with no recursion past
    :data:`SHALLOW_DEPTH`. The cut containers' brackets must match; what
    else they hold is not checked (the value is unusable anyway: the
    caller says so). What is kept is checked as strictly as :func:`parse`.

    Raises:
        ProtocolError: the value is invalid JSON, or does not end in ``text``.
    """
    start = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]  # "*" always matches
    if text[start : start + 1] not in _CLOSING:
        return raw_decode(text, start)  # a scalar: nothing nests
    kept: list[str] = []
    last = start
    opened: list[str] = []  # the closing bracket of each open container
    cut = -1  # where the container being cut began
    for match in _TOKENS.finditer(text, start):
        token = match.group()
        if token in _CLOSING:
            opened.append(_CLOSING[token])
            if len(opened) == SHALLOW_DEPTH + 1:
                cut = match.start()
        elif token[0] != '"':  # a closing bracket
            if not opened or opened.pop() != token:
                raise ProtocolError(
                    f"invalid JSON: unmatched {token!r} at char {match.start()}"
                )
            if cut >= 0 and len(opened) == SHALLOW_DEPTH:
                kept += (text[last:cut], "null")
                last, cut = match.end(), -1
            if not opened:
                kept.append(text[last : match.end()])
                flat = "".join(kept)
                value, size = raw_decode(flat, 0)
                if size != len(flat):
                    raise ProtocolError("invalid JSON: a value ends early")
                return value, match.end()
    raise ProtocolError("invalid JSON: the value does not end")


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


def same_json(a: object, b: object) -> bool:
    """Whether two JSON values are the same value (``true`` is not ``1``; ``1`` is ``1.0``)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b
