r"""Server-sent events read from raw bytes, with strict UTF-8.

httpx-sse reads a stream through httpx's text decoding, which replaces invalid
UTF-8 with U+FFFD: a corrupted payload would be applied as if it were good
(``"v\xff\xfe2"`` served as ``"v\ufffd\ufffd2"``). Here lines are split on
the raw bytes and each line is decoded strictly; a line that is not UTF-8
raises :class:`ProtocolError`, so the stream is restarted as invalid data.

Line ends and fields follow the WHATWG event-stream format: ``\r\n``, ``\r``
or ``\n`` end a line (never inside a multi-byte UTF-8 sequence, so splitting
the bytes first is safe); a leading byte-order mark is skipped; ``retry`` is
honoured only when it is all ASCII digits; an ``id`` containing NUL is
ignored. As with httpx-sse, a blank line dispatches an event when any field
was set since the last one.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Final, cast

from httpx_sse import ServerSentEvent

from aioflags._exceptions import ProtocolError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    import httpx

__all__ = ["LineSplitter", "aiter_sse"]

_BOM: Final = "\ufeff"


class LineSplitter:
    """Splits a byte stream into lines (without their ends), across chunk borders."""

    __slots__ = ("_partial", "_skip_lf")

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # an unfinished line, in pieces
        self._skip_lf = False  # the last chunk ended in CR: drop a leading LF

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines that ``chunk`` completes."""
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = False
        if not chunk:
            return []
        lines: list[bytes] = []
        for piece in chunk.splitlines(keepends=True):
            if piece.endswith(b"\r\n"):
                line = piece[:-2]
            elif piece.endswith((b"\n", b"\r")):
                line = piece[:-1]
            else:  # the last piece, unfinished: kept without copying what came before
                self._partial.append(piece)
                break
            if self._partial:
                line = b"".join((*self._partial, line))
                self._partial = []
            lines.append(line)
        self._skip_lf = chunk.endswith(b"\r")
        return lines


class _EventBuilder:
    """Collects fields until a blank line dispatches them as one event."""

    __slots__ = ("_data", "_event", "_fresh", "_last_id", "_retry")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._last_id = ""  # kept across events, as the format requires
        self._retry: int | None = None
        self._fresh = False  # a field was seen since the last dispatch

    def line(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._fresh:
                return None
            sse = ServerSentEvent(
                event=self._event,
                data="\n".join(self._data),
                id=self._last_id,
                retry=self._retry,
            )
            self._event, self._data, self._retry = "", [], None
            self._fresh = False
            return sse
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" in value:
                return None
            self._last_id = value
        elif name == "retry":
            if not (value.isascii() and value.isdigit()):
                return None
            self._retry = int(value)
        else:
            return None  # unknown fields are ignored
        self._fresh = True
        return None


def _decode(line: bytes, number: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"invalid UTF-8 in stream line {number}, at byte {exc.start} ({exc.reason})"
        ) from None


async def aiter_sse(response: httpx.Response) -> AsyncGenerator[ServerSentEvent, None]:
    """The events in a streaming response's body.

    Raises:
        ProtocolError: a line is not valid UTF-8.
    """
    splitter = LineSplitter()
    builder = _EventBuilder()
    number = 0
    # httpx types aiter_bytes() as an iterator; it is an async generator, and
    # closing it now (not when it is garbage collected) releases the body at once.
    body = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
    async with aclosing(body) as chunks:
        async for chunk in chunks:
            for raw in splitter.feed(chunk):
                number += 1
                line = _decode(raw, number)
                if number == 1 and line.startswith(_BOM):
                    line = line[1:]
                sse = builder.line(line)
                if sse is not None:
                    yield sse
    # Only a blank line dispatches an event: an unterminated last line is dropped.
