r"""Server-sent events read from raw bytes, with strict UTF-8.

httpx-sse reads a stream through httpx's text decoding, which replaces invalid
UTF-8 with U+FFFD: a corrupted payload would be applied as if it were good
(``"v\xff\xfe2"`` served as ``"v\ufffd\ufffd2"``). Here lines are split on
the raw bytes and each line is decoded strictly; a line that is not UTF-8
raises :class:`ProtocolError`, so the stream is restarted as invalid data.

Line ends and fields follow the WHATWG event-stream format: ``\r\n``, ``\r``
or ``\n`` end a line (never inside a multi-byte UTF-8 sequence, so splitting
the bytes first is safe); a leading byte-order mark is skipped; ``retry`` is
honoured only when it is all ASCII digits, at most nine of them (11 days
in milliseconds; a longer one is no sane delay, and past 4,300 digits
``int()`` refuses it); an ``id`` containing NUL is
ignored, and so is one that could not be sent back as ``Last-Event-ID``
(anything but printable ASCII, or spaces at either end): the last good one
stays. As with httpx-sse, a blank line dispatches an event when any field
was set since the last one.

A line, and an event's ``data`` lines together, may be at most
``Config.max_payload_bytes`` long (an FDv1 ``put`` is the whole data set in
one line): one that goes on past it raises :class:`ProtocolError` as soon as
it does, with at most that much of it held. The body is read through
:func:`._body.body_pieces`, decompressed in bounded pieces, with the event
loop given a turn every few milliseconds.
"""

from __future__ import annotations

import sys
from contextlib import aclosing
from typing import TYPE_CHECKING, AnyStr, Final

from httpx_sse import ServerSentEvent

from aioflags._core._checks import header_value
from aioflags._core._exceptions import ProtocolError
from aioflags._core._logname import client_logger
from aioflags._datasystem._payloads import over_limit

from ._body import body_pieces

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable

    import httpx

__all__ = ["LineSplitter", "aiter_sse"]

logger = client_logger("aioflags.datasource")

_BOM: Final = "\ufeff"
_MAX_RETRY_DIGITS: Final = 9


class LineSplitter:
    """Splits a byte stream into strictly decoded lines, across chunk borders.

    Each chunk is cut after its last line end; the complete lines before it
    are decoded and split in one go (C speed), the rest waits in one buffer
    for the line's end. A line longer than ``max_line`` bytes raises as soon
    as that many bytes of it are held.
    """

    __slots__ = ("_lines", "_max_line", "_partial", "_skip_lf")

    def __init__(self, max_line: int | None = None) -> None:
        # An unfinished line, in one buffer: a list of the network's chunks
        # cost the allocator several times their size (each was cut from a
        # bigger read), and a line may be megabytes long.
        self._partial = bytearray()
        self._max_line = sys.maxsize if max_line is None else max_line
        self._skip_lf = False  # the last block ended in CR: drop a leading LF
        self._lines = 0  # lines returned so far (for error messages)

    def _hold(self, piece: bytes) -> None:
        """Keep ``piece`` of an unfinished line, unless the line is then too long."""
        if len(self._partial) + len(piece) > self._max_line:
            raise over_limit("a stream line", self._max_line)
        self._partial += piece

    def feed(self, chunk: bytes) -> list[str]:
        """The lines, without their ends, that ``chunk`` completes.

        Raises:
            ProtocolError: a completed line is not valid UTF-8, or a line is
                longer than ``max_line`` bytes.
        """
        if not chunk:
            return []
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        # A CR that ends the chunk may be the first half of a CR LF.
        self._skip_lf = chunk.endswith(b"\r")
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) + 1
        if not end:
            if chunk:
                self._hold(chunk)
            return []
        block: bytes | bytearray = chunk[:end]
        if self._partial:
            self._partial += block
            block, self._partial = self._partial, bytearray()
        # (A block no longer than the limit holds no line longer than it.)
        if len(block) > self._max_line and any(
            len(line) > self._max_line for line in _split(bytes(block))
        ):
            raise over_limit("a stream line", self._max_line)
        if end < len(chunk):
            self._hold(chunk[end:])
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self._lines + len(_split(bytes(block[: exc.start])))
            raise ProtocolError(
                f"invalid UTF-8 in stream line {line} ({exc.reason})"
            ) from None
        lines = _split(text)
        lines.pop()  # the block ends with a line end: nothing follows it
        self._lines += len(lines)
        return lines


def _split(text: AnyStr) -> list[AnyStr]:
    """Split on CR LF, CR or LF only (str.splitlines knows more line ends)."""
    if isinstance(text, str):
        return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")


class _EventBuilder:
    """Collects fields until a blank line dispatches them as one event.

    The ``data`` lines of one event may hold ``max_data`` characters together.
    """

    __slots__ = (
        "_data",
        "_event",
        "_fresh",
        "_last_id",
        "_max_data",
        "_retry",
        "_size",
    )

    def __init__(self, max_data: int | None = None) -> None:
        self._event = ""
        self._data: list[str] = []
        self._size = 0  # the characters in _data
        self._max_data = sys.maxsize if max_data is None else max_data
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
            self._size = 0
            self._fresh = False
            return sse
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value)
            if self._size > self._max_data:
                raise over_limit("a stream event", self._max_data)
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" in value:
                return None
            if not header_value(value):
                logger.debug(
                    "Ignoring a stream event id that is not a valid header value: %r",
                    value,
                )
                return None
            self._last_id = value
        elif name == "retry":
            if not (
                value.isascii() and value.isdigit() and len(value) <= _MAX_RETRY_DIGITS
            ):
                return None
            self._retry = int(value)
        else:
            return None  # unknown fields are ignored
        self._fresh = True
        return None


async def aiter_sse(
    response: httpx.Response,
    *,
    max_bytes: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> AsyncGenerator[ServerSentEvent, None]:
    """The events in a streaming response's body.

    ``max_bytes`` (``Config.max_payload_bytes``) bounds a line, and an
    event's ``data`` lines together. ``on_bytes``: as ``body_pieces``'.

    Raises:
        ProtocolError: a line is not valid UTF-8, or a line or an event is
            over ``max_bytes``.
    """
    splitter = LineSplitter(max_bytes)
    builder = _EventBuilder(max_bytes)
    first = True
    # Closed now (not when it is garbage collected): the body is released at once.
    async with aclosing(body_pieces(response, on_bytes=on_bytes)) as chunks:
        async for chunk in chunks:
            for line in splitter.feed(chunk):
                if first:
                    first = False
                    if line.startswith(_BOM):
                        line = line[1:]
                sse = builder.line(line)
                if sse is not None:
                    yield sse
    # Only a blank line dispatches an event: an unterminated last line is dropped.
